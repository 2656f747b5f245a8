"""The simulator's media generators (pure) and the image request parser."""
from __future__ import annotations

import struct
import zlib

import pytest

from gateway import errors
from gateway.media import images
from gateway.simulator import media


def _chunks(png: bytes):
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    i = 8
    while i < len(png):
        (n,) = struct.unpack(">I", png[i:i + 4])
        kind, data = png[i + 4:i + 8], png[i + 8:i + 8 + n]
        assert struct.unpack(">I", png[i + 8 + n:i + 12 + n])[0] == zlib.crc32(kind + data)
        yield kind, data
        i += 12 + n


def test_png_is_valid_and_decodes_to_its_size():
    png = media.png(5, 3, b"seed")
    chunks = dict(_chunks(png))
    w, h, depth, ctype = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert (w, h, depth, ctype) == (5, 3, 8, 2)
    assert len(zlib.decompress(chunks[b"IDAT"])) == h * (1 + 3 * w)
    assert b"IEND" in chunks


def test_generation_is_deterministic_and_seed_sensitive():
    a = media.generate_images("p", 2, seed=1)
    assert a == media.generate_images("p", 2, seed=1)
    assert a != media.generate_images("p", 2, seed=2)
    assert a[0] != a[1]
    assert media.generate_images("p", 1, references=(b"r",)) != media.generate_images("p", 1)


@pytest.mark.parametrize("size,aspect,want", [
    (None, None, (16, 16)), ("1792x1024", None, (28, 16)), (None, "16:9", (16, 9)),
    (None, "9:16", (9, 16)), ("99999x1", None, (64, 1)), ("bogus", "0:0", (16, 16))])
def test_image_size(size, aspect, want):
    assert media.image_size(size, aspect) == want


def test_mp4_boxes():
    data = media.mp4(b"x")
    i, kinds = 0, []
    while i < len(data):
        (n,) = struct.unpack(">I", data[i:i + 4])
        kinds.append(data[i + 4:i + 8])
        i += n
    assert i == len(data) and kinds == [b"ftyp", b"moov", b"mdat"]


def test_video_status_progresses_with_time():
    vid = media.video_id("x [[sim video_delay=4]]", 1000.0)
    assert media.video_status(vid, 1000.5)[0] == "queued"
    assert media.video_status(vid, 1002.0) == ("in_progress", 50)
    assert media.video_status(vid, 1004.0) == ("completed", 100)
    bad = media.video_id("x [[sim video_delay=1 fail=1]]", 0.0)
    assert media.video_status(bad, 5.0)[0] == "failed"
    assert media.video_status("nope")[0] == "missing"


def test_parse_and_upstream_body():
    req = images.parse({"model": "m", "prompt": "p", "n": 2, "image_url": "https://e/x.png",
                        "seed": 7, "aspect_ratio": "3:2", "response_format": "b64_json"})
    body = images.upstream_body(req, "up")
    assert body == {"model": "up", "prompt": "p", "n": 2, "response_format": "b64_json",
                    "aspect_ratio": "3:2", "seed": 7, "image_url": ["https://e/x.png"]}
    with pytest.raises(errors.InvalidRequest):
        images.parse({"model": "m", "prompt": "p", "n": True})
