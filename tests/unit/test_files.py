"""Type sniffing, file-name sanitising and content-addressed storage (bot/files.py)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from bot.domain import files
from bot.domain.files import sanitise_filename, sniff_type
from storage import files as storage_files
from storage.files import store_bytes
from tests.fixtures.mail_corpus import (
    jpeg_bytes,
    ole_bytes,
    ooxml_bytes,
    pdf_bytes,
    png_bytes,
    zip_bytes,
)


@pytest.mark.parametrize(
    ("data", "mime"),
    [
        (pdf_bytes(), files.PDF),
        (jpeg_bytes(), files.JPEG),
        (png_bytes(), files.PNG),
        (ooxml_bytes("word/document.xml"), files.DOCX),
        (ooxml_bytes("xl/workbook.xml"), files.XLSX),
        (ooxml_bytes("ppt/presentation.xml"), files.PPTX),
        (ole_bytes("WordDocument"), files.DOC),
        (ole_bytes("Workbook"), files.XLS),
        (zip_bytes(), files.ZIP),
        (ole_bytes("SummaryInformation"), None),  # an OLE file that is no Office document
        (zip_bytes()[:40], None),  # a cut-off archive
        (b"MZ\x90\x00", None),
        (b"<html><body>", None),
        (b"", None),
    ],
)
def test_sniff_type(data: bytes, mime: str | None) -> None:
    assert sniff_type(data) == mime


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("申诉材料.pdf", "申诉材料.pdf"),
        ("../../etc/passwd", "passwd"),
        ("..\\..\\Windows\\win.ini", "win.ini"),
        ("C:\\Users\\张伟\\证据.jpg", "证据.jpg"),
        ("a\x00b\r\nc.txt", "a b c.txt"),
        ("合同\u202efdp.exe", "合同 fdp.exe"),
        ('what?<>:"|*.doc', "what_______.doc"),
        ("  .hidden  ", "hidden"),
        ("...", "attachment"),
        ("", "attachment"),
        (None, "attachment"),
        ("../", "attachment"),
        ("CON.txt", "_CON.txt"),
        ("ｆｕｌｌ　ｗｉｄｔｈ.pdf", "ｆｕｌｌ ｗｉｄｔｈ.pdf"),
    ],
)
def test_sanitise_filename(name: str | None, expected: str) -> None:
    assert sanitise_filename(name) == expected


def test_sanitise_filename_bounds_length_and_keeps_extension() -> None:
    name = "监督审核不符合项整改报告" * 30 + ".xlsx"
    cleaned = sanitise_filename(name)
    assert len(cleaned.encode()) <= files.MAX_NAME_BYTES
    assert cleaned.endswith("报告.xlsx") or cleaned.endswith(".xlsx")
    assert cleaned.startswith("监督审核")
    cleaned.encode("utf-8")  # never cut inside a character


def test_sanitise_filename_default() -> None:
    assert sanitise_filename("/", default="photo.jpg") == "photo.jpg"


def test_store_bytes_is_content_addressed_and_idempotent(tmp_path: Path) -> None:
    data = pdf_bytes()
    digest, relative = store_bytes(tmp_path, data)
    assert digest == hashlib.sha256(data).hexdigest()
    assert relative == f"files/{digest[:2]}/{digest[2:4]}/{digest}"
    assert (tmp_path / relative).read_bytes() == data
    assert store_bytes(str(tmp_path), data) == (digest, relative)
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != digest]
    assert leftovers == []


def test_store_bytes_leaves_no_temporary_file_on_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(storage_files.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        store_bytes(tmp_path, b"x")
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
