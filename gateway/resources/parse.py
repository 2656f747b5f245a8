"""Turning an uploaded file into plain text for chunking: plain text, Markdown, JSON,
HTML and PDF (through pypdf). Runs on a worker thread; a file it cannot read raises
UnreadableFile with a message the vector-store file's last_error shows."""
from __future__ import annotations

import html.parser
import io
import json
import os


class UnreadableFile(Exception):
    pass


_TEXT_EXT = {".txt", ".md", ".markdown", ".rst", ".csv", ".tsv", ".py", ".js", ".ts",
             ".java", ".c", ".cpp", ".h", ".go", ".rb", ".php", ".sh", ".css", ".tex",
             ".yaml", ".yml", ".toml", ".xml", ".log"}


class _HTMLText(html.parser.HTMLParser):
    _SKIP = {"script", "style", "head", "noscript"}
    _BLOCK = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section",
              "article", "pre", "table", "ul", "ol", "blockquote"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag, attrs) -> None:
        if tag in self._SKIP:
            self.skipping += 1
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag) -> None:
        if tag in self._SKIP and self.skipping:
            self.skipping -= 1
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_data(self, data) -> None:
        if not self.skipping:
            self.parts.append(data)


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        if b"\x00" in data[:8192]:
            raise UnreadableFile("the file is binary, not text") from None
        return data.decode("latin-1")


def _json_text(value, prefix: str = "") -> list[str]:
    # key paths keep their meaning when a chunk holds only part of a document
    if isinstance(value, dict):
        return [line for k, v in value.items() for line in _json_text(v, f"{prefix}{k}.")]
    if isinstance(value, list):
        return [line for i, v in enumerate(value) for line in _json_text(v, f"{prefix}{i}.")]
    return [f"{prefix[:-1]}: {value}" if prefix else str(value)]


def _pdf_text(data: bytes) -> str:
    import pypdf
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        pages = [page.extract_text() or "" for page in reader.pages]
    except Exception as exc:   # pypdf raises many types for broken files
        raise UnreadableFile(f"the PDF could not be read: {type(exc).__name__}") from None
    return "\n\n".join(pages)


def extract_text(filename: str, data: bytes) -> str:
    ext = os.path.splitext(filename.lower())[1]
    if ext == ".pdf" or data[:5] == b"%PDF-":
        text = _pdf_text(data)
    elif ext in (".html", ".htm"):
        p = _HTMLText()
        p.feed(_decode(data))
        text = "".join(p.parts)
    elif ext == ".json":
        try:
            text = "\n".join(_json_text(json.loads(_decode(data))))
        except json.JSONDecodeError as exc:
            raise UnreadableFile(f"the JSON is invalid: {exc.msg} at line {exc.lineno}") from None
    elif ext in _TEXT_EXT or ext == "":
        text = _decode(data)
    else:
        raise UnreadableFile(f"files of type {ext!r} are not supported for search; use text, "
                             "Markdown, JSON, HTML or PDF")
    if not text.strip():
        raise UnreadableFile("the file contains no text")
    return text
