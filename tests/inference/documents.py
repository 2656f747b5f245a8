"""Test documents made from scratch: PDFs with a text layer, PDFs whose pages are only
an image of the simulator's page code (no text layer), and PNG pages."""
from __future__ import annotations

import zlib

from gateway.simulator import sim_ocr


def _pdf(objects: list[bytes]) -> bytes:
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, obj in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + obj + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def pdf(pages: list[tuple[str, bool]]) -> bytes:
    """One page per (text, as_image): a text layer in Helvetica, or an image only."""
    objs: list[bytes] = [b"", b""]       # catalog and page tree filled in below
    kids = []
    font = None
    for text, as_image in pages:
        if as_image:
            gray = sim_ocr.render(text)
            h, w = gray.shape
            img = zlib.compress(gray.tobytes())
            objs.append(f"<< /Type /XObject /Subtype /Image /Width {w} /Height {h} /ColorSpace /DeviceGray "
                        f"/BitsPerComponent 8 /Filter /FlateDecode /Length {len(img)} >>\nstream\n".encode()
                        + img + b"\nendstream")
            img_ref = len(objs)
            content = f"q {w} 0 0 {h} 20 20 cm /Im0 Do Q".encode()
            resources = f"<< /XObject << /Im0 {img_ref} 0 R >> >>"
            width, height = w + 40, h + 40
        else:
            if font is None:
                objs.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
                font = len(objs)
            safe = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            content = f"BT /F1 12 Tf 40 750 Td ({safe}) Tj ET".encode()
            resources = f"<< /Font << /F1 {font} 0 R >> >>"
            width, height = 612, 792
        objs.append(f"<< /Length {len(content)} >>\nstream\n".encode() + content + b"\nendstream")
        content_ref = len(objs)
        objs.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {width} {height}] "
                    f"/Resources {resources} /Contents {content_ref} 0 R >>".encode())
        kids.append(len(objs))
    objs[0] = b"<< /Type /Catalog /Pages 2 0 R >>"
    objs[1] = (f"<< /Type /Pages /Kids [{' '.join(f'{k} 0 R' for k in kids)}] "
               f"/Count {len(kids)} >>").encode()
    return _pdf(objs)


def page_png(text: str) -> bytes:
    return sim_ocr.png(sim_ocr.render(text))
