"""Parts of a letter the stdlib parser could not split: the sender's words must survive.

- A multipart without a boundary parameter, or whose boundary never occurs in its body (a
  hand-written or relayed letter, a boundary changed on the way): the stdlib leaves the body
  as one string, and the walk would show it as one opaque file. The boundary actually used is
  found from the body's own `--…` lines; with none, the body is its text.
- A letter nested deeper than the stdlib parser's recursion allows (about a thousand levels):
  every part between the boundaries the letter declares is read flat.
"""

from __future__ import annotations

import email
import email.policy
import re
from collections import Counter
from email.message import Message
from typing import Protocol

# A delimiter line: "--" and 1–70 characters of a boundary (RFC 2046 §5.1.1), "--" to close.
_DELIMITER = re.compile(r"^--([^\s-][^\r\n]{0,69}?)(--)?[ \t]*\r?$", re.M)
_DECLARED = re.compile(rb"""boundary\s*=\s*(?:"([^"\r\n]{1,200})"|([^\s;"]{1,200}))""", re.I)
_ANY_DELIMITER = re.compile(rb"^--([^\r\n]*?)(?:--)?[ \t]*\r?(?:\n|$)", re.M)
_HEADER_LINE = re.compile(r"^[A-Za-z][A-Za-z0-9-]*:", re.M)
# Parts read flat from one letter; past this the rest is left in the raw bytes.
MAX_FLAT_PARTS = 5_000


class _Problems(Protocol):
    def problem(self, text: str) -> None: ...


def _bytes(text: str) -> bytes:
    """The stdlib's str payload back to its bytes (8-bit bytes are smuggled as surrogates)."""
    return text.encode("utf-8", "surrogateescape")


def _part(data: bytes) -> Message:
    return email.message_from_bytes(data, policy=email.policy.compat32)


def salvage(part: Message, acc: _Problems) -> list[Message]:
    """The parts of a multipart the stdlib left unsplit (its payload one string)."""
    # The raw payload: get_payload() would decode 8-bit bytes with the part's charset label
    # (a multipart has none: ASCII), replacing every one of them.
    payload: object = getattr(part, "_payload", None)
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, Message)]
    text = payload if isinstance(payload, str) else ""
    boundary = _used_boundary(text)
    if boundary is None:
        acc.problem("multipart_salvaged: no boundary, the body read as text")
        encoding = part.get("content-transfer-encoding")
        head = b"Content-Type: text/plain\r\n"
        if encoding:
            head += b"Content-Transfer-Encoding: " + _bytes(str(encoding)) + b"\r\n"
        return [_part(head + b"\r\n" + _bytes(text))]
    acc.problem(f"multipart_salvaged: boundary {boundary!r} found in the body")
    chunks = _split(text, boundary)
    return [_part(_bytes(chunk)) for chunk in chunks]


def _used_boundary(text: str) -> str | None:
    """The boundary the body's delimiter lines use most often, when the part after its first
    occurrence starts with header lines (or a blank line: a part with default headers)."""
    counts = Counter(m.group(1) for m in _DELIMITER.finditer(text))
    for boundary, _ in counts.most_common(3):
        start = re.search(rf"^--{re.escape(boundary)}[ \t]*\r?\n", text, re.M)
        if start is None:
            continue
        after = text[start.end() : start.end() + 200]
        if _HEADER_LINE.match(after) or after.startswith(("\r\n", "\n")):
            return boundary
    return None


def _split(text: str, boundary: str) -> list[str]:
    """The parts between delimiter lines of `boundary`: preamble and epilogue left out."""
    delimiter = re.compile(rf"^--{re.escape(boundary)}(--)?[ \t]*\r?(?:\n|$)", re.M)
    parts: list[str] = []
    position: int | None = None
    for match in delimiter.finditer(text):
        if position is not None:
            parts.append(text[position : match.start()])
        if match.group(1):  # the closing delimiter
            position = None
            break
        position = match.end()
    if position is not None:  # never closed: the rest is the last part
        parts.append(text[position:])
    return [p for p in parts if p.strip()]


def flattened(raw: bytes, head: bytes) -> Message:
    """`raw` read flat: its header (`head`) over a multipart/mixed of every leaf part found
    between the boundaries the letter declares, in order (the nesting itself is dropped)."""
    declared = {
        (m.group(1) or m.group(2)).decode("ascii", "replace") for m in _DECLARED.finditer(raw)
    }
    outer = _part(head + b"\r\n\r\n")
    del outer["content-type"]
    outer["Content-Type"] = "multipart/mixed"
    leaves: list[Message | str] = []
    body = raw[len(head) :]
    starts = [
        (m.start(), m.end())
        for m in _ANY_DELIMITER.finditer(body)
        if m.group(1).decode("ascii", "replace") in declared
    ]
    for (_, end), (start, _) in zip(starts, [*starts[1:], (len(body), len(body))], strict=True):
        chunk = body[end:start]
        if len(leaves) >= MAX_FLAT_PARTS:
            break
        if not chunk.strip():
            continue
        leaf = _part(chunk)
        ctype = (leaf.get("content-type") or "").strip().lower()
        if not ctype.startswith("multipart/"):
            leaves.append(leaf)
    outer.defects = []  # those of the header alone, over a body it no longer has
    outer.set_payload(leaves)
    return outer


__all__ = ["MAX_FLAT_PARTS", "flattened", "salvage"]


# ---------------------------------------------------------------------------------------------
# S/MIME: an opaque signed letter (application/pkcs7-mime; smime-type=signed-data, Outlook's
# "smime.p7m") carries the letter itself inside its DER; an enveloped (encrypted) one does not.

_ID_DATA = bytes.fromhex("06092a864886f70d010701")  # OID 1.2.840.113549.1.7.1 (id-data)


def _der_length(data: bytes, at: int) -> tuple[int, int] | None:
    """(length, offset of the content) of the DER length at `at`; None when indefinite/bad."""
    if at >= len(data):
        return None
    first = data[at]
    if first < 0x80:
        return first, at + 1
    count = first & 0x7F
    if count == 0 or count > 4 or at + 1 + count > len(data):
        return None
    return int.from_bytes(data[at + 1 : at + 1 + count], "big"), at + 1 + count


def signed_content(der: bytes) -> bytes | None:
    """The MIME entity inside a CMS SignedData (the first id-data with content), or None."""
    start = 0
    while (found := der.find(_ID_DATA, start)) >= 0:
        start = found + len(_ID_DATA)
        if der[start : start + 1] != b"\xa0":  # [0] EXPLICIT eContent
            continue
        outer = _der_length(der, start + 1)
        if outer is None:
            continue
        at = outer[1]
        if der[at : at + 1] == b"\x04":  # OCTET STRING, primitive
            inner = _der_length(der, at + 1)
            if inner is not None and inner[0] > 0:
                return der[inner[1] : inner[1] + inner[0]]
    return None
