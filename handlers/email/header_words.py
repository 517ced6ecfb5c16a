"""Header text of a received letter: RFC 2047 encoded words and RFC 2231 MIME parameters, decoded
leniently through the charsets of decode.py."""

from __future__ import annotations

import base64
import binascii
import quopri
import re
import urllib.parse

from handlers.email.decode import decode_bytes, raw_to_str

# ---------------------------------------------------------------------------------------------
# RFC 2047 encoded words, leniently: no whitespace required around them, adjacent words in one
# charset joined as bytes before decoding (clients split a character across two words), base64
# padding repaired, unknown charsets guessed.

_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?]*)\?=")
FOLD = re.compile(r"\r?\n[ \t]")


def decode_header_text(value: str, hint: str | None = None) -> tuple[str, list[str]]:
    """Decode an unstructured header (Subject, a display name); return (text, problems).
    `hint`: the letter's text charset, for raw 8-bit bytes (raw_to_str)."""
    problems: list[str] = []
    text, eight_bit = raw_to_str(FOLD.sub(" ", value), hint)
    if eight_bit:
        problems.append("header_8bit")
    out: list[str] = []
    pending: tuple[str, bytearray] | None = None  # (charset, bytes) of adjacent encoded words
    pos = 0
    for match in _ENCODED_WORD.finditer(text):
        between = text[pos : match.start()]
        charset = match.group(1).split("*")[0]  # RFC 2231 §5 language suffix
        data = _decode_word(match.group(2), match.group(3))
        if data is None:
            problems.append("header_bad_encoded_word")
            data = match.group(0).encode("ascii", "replace")
            charset = "us-ascii"
        if pending is not None and not between.strip() and pending[0].lower() == charset.lower():
            pending[1].extend(data)
        else:
            if pending is not None:
                out.append(_flush(pending, problems))
                pending = None
            if between and not (between.isspace() and pos > 0):  # RFC 2047 §6.2
                out.append(between)
            pending = (charset, bytearray(data))
        pos = match.end()
    if pending is not None:
        out.append(_flush(pending, problems))
    out.append(text[pos:])
    return " ".join("".join(out).split()), problems


def _decode_word(encoding: str, payload: str) -> bytes | None:
    try:
        if encoding in "bB":
            # The URL-safe alphabet (-_ for +/) from web mailers, then anything else dropped.
            payload = re.sub(r"[^A-Za-z0-9+/]", "", payload.replace("-", "+").replace("_", "/"))
            payload += "=" * (-len(payload) % 4)
            return base64.b64decode(payload)
        return quopri.decodestring(payload.replace("_", " ").encode("ascii"), header=False)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return None


def _flush(pending: tuple[str, bytearray], problems: list[str]) -> str:
    text, problem = decode_bytes(bytes(pending[1]), pending[0])
    if problem:
        problems.append(problem)
    return text


# ---------------------------------------------------------------------------------------------
# MIME parameters (file names): RFC 2231 / RFC 5987 `name*=charset'lang'%XX`, continuations
# `name*0*=`, encoded words inside quotes (Outlook, QQ), raw 8-bit bytes.

_PARAM = re.compile(r'\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"?|[^;]*)')
_SECTION = re.compile(r"^(.+?)(?:\*(\d+))?(\*)?$")


def header_params(value: str) -> dict[str, str]:
    """Parameters of a Content-Type / Content-Disposition value, decoded, keys lower-case."""
    value = FOLD.sub(" ", value)
    plain: dict[str, str] = {}
    sections: dict[str, dict[int, tuple[str, bool]]] = {}
    for match in _PARAM.finditer(value, value.find(";") + 1 if ";" in value else len(value)):
        key, raw = match.group(1).lower(), match.group(2).strip()
        if raw.startswith('"'):
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1] if raw.endswith('"') else raw[1:])
        section = _SECTION.match(key) if "*" in key else None
        if section:
            number = int(section.group(2) or 0)
            sections.setdefault(section.group(1), {})[number] = (raw, bool(section.group(3)))
        else:
            plain[key] = decode_header_text(raw)[0]
    for key, parts in sections.items():
        plain[key] = _join_extended(parts)
    return plain


def _join_extended(parts: dict[int, tuple[str, bool]]) -> str:
    charset = "us-ascii"
    data = bytearray()
    for number in sorted(parts):
        raw, extended = parts[number]
        if extended:
            if number == 0 and raw.count("'") >= 2:
                charset, _, raw = raw.split("'", 2)
            data.extend(urllib.parse.unquote_to_bytes(raw))
        else:
            data.extend(raw.encode("utf-8", "surrogateescape"))
    return decode_bytes(bytes(data), charset or "utf-8")[0]
