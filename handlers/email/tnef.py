"""winmail.dat (TNEF, [MS-OXTNEF]): what Outlook sends in "rich text" instead of MIME parts.

Without it a complainant's attached evidence is one opaque file. Read here: the files
(attAttachTitle + attAttachData) and the plain body (attBody), in the letter's OEM code page
(attOemCodepage; Chinese Outlook writes 936). Anything odd ends the reading: what was found
so far is kept.
"""

from __future__ import annotations

import struct

SIGNATURE = 0x223E9F78
_BODY, _ATTACH_DATA, _ATTACH_TITLE, _ATTACH_START, _CODEPAGE = (
    0x800C, 0x800F, 0x8010, 0x9002, 0x9007
)  # fmt: skip
MAX_FILES = 50


def is_tnef(data: bytes) -> bool:
    return len(data) >= 6 and struct.unpack_from("<I", data)[0] == SIGNATURE


def read_tnef(data: bytes) -> tuple[str, list[tuple[str, bytes]]]:
    """(the plain body, [(file name, bytes)]) of a TNEF stream."""
    if not is_tnef(data):
        return "", []
    position, codepage = 6, "cp936"
    body = b""
    files: list[tuple[str, bytes]] = []
    name, content = "", b""
    started = False
    while position + 9 <= len(data) and len(files) < MAX_FILES:
        _level, attribute, length = struct.unpack_from("<BII", data, position)
        position += 9
        value = data[position : position + length]
        if len(value) < length:
            break  # cut short: keep what was read
        position += length + 2  # the checksum
        kind = attribute & 0xFFFF
        if kind == _CODEPAGE and length >= 4:
            codepage = f"cp{struct.unpack_from('<I', value)[0]}"
        elif kind == _BODY:
            body = value
        elif kind == _ATTACH_START:
            if started:
                files.append((name, content))
            started, name, content = True, "", b""
        elif kind == _ATTACH_TITLE:
            name = _text(value, codepage)
        elif kind == _ATTACH_DATA:
            content = value
    if started:
        files.append((name, content))
    return _text(body, codepage), [(n, c) for n, c in files if c]


def _text(value: bytes, codepage: str) -> str:
    raw = value.split(b"\x00", 1)[0]
    try:
        return raw.decode(codepage)
    except (LookupError, UnicodeDecodeError):
        return raw.decode("gb18030", "replace")


__all__ = ["is_tnef", "read_tnef"]
