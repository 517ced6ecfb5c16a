"""Files received from users (Telegram uploads, e-mail attachments): their type and shown name.

The type is taken from the bytes, never from the name or the declared MIME type; the name is only
ever shown, never used as a path (storage.files stores the bytes by content hash).
"""

from __future__ import annotations

import io
import re
import unicodedata
import zipfile

PDF = "application/pdf"
JPEG = "image/jpeg"
PNG = "image/png"
ZIP = "application/zip"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
DOC = "application/msword"
XLS = "application/vnd.ms-excel"
PPT = "application/vnd.ms-powerpoint"

EXTENSIONS = {
    PDF: ".pdf",
    JPEG: ".jpg",
    PNG: ".png",
    ZIP: ".zip",
    DOCX: ".docx",
    XLSX: ".xlsx",
    PPTX: ".pptx",
    DOC: ".doc",
    XLS: ".xls",
    PPT: ".ppt",
}

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# OLE directory entries name their streams in UTF-16LE; the main stream tells the application.
_OLE_STREAMS = (
    ("WordDocument".encode("utf-16-le"), DOC),
    ("Workbook".encode("utf-16-le"), XLS),
    ("Book".encode("utf-16-le") + b"\x00\x00", XLS),  # Excel 5/95
    ("PowerPoint Document".encode("utf-16-le"), PPT),
)
_OOXML_PARTS = (("word/", DOCX), ("xl/", XLSX), ("ppt/", PPTX))


def sniff_type(data: bytes) -> str | None:
    """The MIME type of an accepted file format recognised from its bytes, else None."""
    if data.startswith(b"%PDF-"):
        return PDF
    if data.startswith(b"\xff\xd8\xff"):
        return JPEG
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if data.startswith(_OLE_MAGIC):
        return next((t for marker, t in _OLE_STREAMS if marker in data), None)
    if data.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return _sniff_zip(data)
    return None


def _sniff_zip(data: bytes) -> str | None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, ValueError, OSError):
        return None  # truncated or corrupt: refuse rather than guess
    if "[Content_Types].xml" in names:
        for prefix, mime in _OOXML_PARTS:
            if any(n.startswith(prefix) for n in names):
                return mime
    return ZIP


# Characters Windows refuses in names; replaced so a saved copy opens everywhere.
_RESERVED_CHARS = re.compile(r'[<>:"|?*]')
_WINDOWS_DEVICES = re.compile(r"^(con|prn|aux|nul|com\d|lpt\d)(\..*)?$", re.IGNORECASE)
_SPACE_BEFORE_EXTENSION = re.compile(r"(?<=\S) +\.(?=[^.\s]{1,10}$)")
MAX_NAME_BYTES = 180  # well under the 255-byte limit of common file systems, in UTF-8


def sanitise_filename(name: str | None, *, default: str = "attachment") -> str:
    """A display name with no path parts or control characters, bounded, never empty."""
    text = unicodedata.normalize("NFC", name or "")
    # Cc: control characters; Cf: format characters such as U+202E, which can disguise ".exe".
    text = "".join(" " if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") else c for c in text)
    # "../../x" and "C:\\x" keep only "x"; "x.pdf/" (a trailing separator) is still "x.pdf".
    text = text.replace("\\", "/").rstrip("/ ").split("/")[-1]
    text = _RESERVED_CHARS.sub("_", text)
    text = " ".join(text.split()).strip(" .")
    text = _SPACE_BEFORE_EXTENSION.sub(".", text)  # "report\x07.pdf": "report.pdf"
    if _WINDOWS_DEVICES.match(text):
        text = "_" + text
    text = _truncate(text, MAX_NAME_BYTES)
    return text or default


def _truncate(name: str, limit: int) -> str:
    if len(name.encode("utf-8")) <= limit:
        return name
    stem, dot, ext = name.rpartition(".")
    if not dot or len(ext) > 10 or not stem:
        stem, ext = name, ""
    suffix = f".{ext}" if ext else ""
    room = limit - len(suffix.encode("utf-8"))
    # Cut on a character boundary, never inside a multi-byte sequence.
    cut = stem.encode("utf-8")[:room].decode("utf-8", "ignore").rstrip(" .")
    return cut + suffix
