"""The MIME walk of a received letter: which parts are its text, which are files.

The stdlib parser gives the structure and the transfer decoding; here the parts are visited
(the text/plain or HTML alternative chosen, HTML turned into text), attachments sniffed and
sized, and what a bounce report embeds (delivery-status blocks, the original headers) kept for
parse.py. One bad part never costs the whole message: it becomes a problem.
"""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import mimetypes
import quopri
import re
from dataclasses import dataclass, field
from email import errors
from email.message import Message

from bot.domain.files import EXTENSIONS, sanitise_filename, sniff_type
from bot.domain.mail import Attachment
from handlers.email.decode import decode_bytes, raw_to_str
from handlers.email.header_words import header_params
from handlers.email.htmltext import calendar_to_text, html_to_text, meta_charset
from handlers.email.salvage import salvage, signed_content
from handlers.email.tnef import is_tnef, read_tnef

# ---------------------------------------------------------------------------------------------
# Walking the MIME tree


@dataclass
class Walk:
    """What the walk found: the texts shown, the files, the problems, a bounce report's parts."""

    max_attachment_bytes: int
    max_attachments: int = 25
    hint: str | None = None  # the charset the letter declares for its text (raw 8-bit headers)
    skipped: int = 0  # files past max_attachments: counted, neither decoded nor kept
    texts: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    dsn_blocks: list[Message] = field(default_factory=list)
    embedded_headers: list[Message] = field(default_factory=list)
    forwarded: list[Message] = field(default_factory=list)  # message/rfc822 parts, not reports

    def problem(self, text: str) -> None:
        if text not in self.problems:
            self.problems.append(text)

    def wants_more_text(self) -> bool:
        """No words found yet (a winmail.dat's body is then the letter's)."""
        return not any(t.strip() for t in self.texts)


# Deeper than this is recorded (no client nests so), but still walked: the words are kept.
_MAX_DEPTH = 30
# Parts visited of one letter: the walk's cost is bounded whatever the nesting or the count.
MAX_PARTS = 20_000
# Files kept of one letter: a letter of 10,000 files must not cost 10,000 writes and fsyncs.
MAX_ATTACHMENTS = 25


def walk(
    msg: Message,
    max_attachment_bytes: int,
    max_attachments: int = MAX_ATTACHMENTS,
    hint: str | None = None,
) -> Walk:
    """Visit every part of `msg`, depth first in order, without recursion (a letter nested
    thousands deep costs no stack); never raises for a malformed part."""
    acc = Walk(max_attachment_bytes, max_attachments, hint=hint)
    for defect in msg.defects:
        acc.problem(f"defect: {type(defect).__name__}")
    stack: list[tuple[Message, _Where]] = [(msg, _Where())]
    visited = 0
    while stack:
        part, where = stack.pop()
        visited += 1
        if visited > MAX_PARTS:
            acc.problem(f"too_many_parts: more than {MAX_PARTS}, the rest not read")
            break
        if where.depth > _MAX_DEPTH:
            acc.problem("too_deeply_nested")
        try:
            children = _visit(part, acc, where)
        except Exception as exc:  # one bad part never costs the whole message
            acc.problem(f"part_unreadable: {where.path}: {type(exc).__name__}")
            continue
        stack.extend(reversed(children))
    if not any(t.strip() for t in acc.texts):
        # Only a forwarded letter ("Fw:" with nothing added, a client that forwards as an
        # attachment): its words are what the sender sends us. Read one level, never deeper.
        for inner in acc.forwarded[:3]:
            shown = _texts_of(inner, max_attachment_bytes, hint)
            acc.texts.extend(shown)
            if shown:
                break
    if any(
        p.startswith(("defect: CloseBoundaryNotFound", "defect: StartBoundaryNotFound"))
        for p in acc.problems
    ):
        acc.problem("truncated_multipart")
    if acc.skipped:
        acc.problem(
            f"too_many_attachments: {acc.skipped} more not kept (at most {acc.max_attachments})"
        )
    return acc


def _texts_of(msg: Message, max_attachment_bytes: int, hint: str | None) -> list[str]:
    inner = Walk(max_attachment_bytes=max_attachment_bytes, max_attachments=0, hint=hint)
    stack: list[tuple[Message, _Where]] = [(msg, _Where())]
    visited = 0
    while stack and visited < MAX_PARTS:
        part, where = stack.pop()
        visited += 1
        try:
            stack.extend(reversed(_visit(part, inner, where)))
        except Exception:  # its problems are the forwarded letter's, not this one's
            continue
    return [t for t in inner.texts if t.strip()]


def raw_header(part: Message, name: str) -> str | None:
    """The raw value of the first header `name`, bypassing the policy's (strict) parsing."""
    for key, value in part.raw_items():
        if key.lower() == name:
            return str(value)
    return None


def raw_headers(part: Message, name: str) -> list[str]:
    return [str(v) for k, v in part.raw_items() if k.lower() == name]


def _content_type(part: Message, hint: str | None = None) -> tuple[str, dict[str, str]]:
    raw = raw_header(part, "content-type")
    if raw is None:
        return part.get_default_type(), {}
    value, _ = raw_to_str(raw, hint)
    mime = value.split(";", 1)[0].strip().lower()
    if "/" not in mime:
        mime = "text/plain"  # RFC 2045 §5.2: an invalid type is treated as text/plain
    return mime, header_params(value)


def _disposition(part: Message, hint: str | None = None) -> tuple[str, dict[str, str]]:
    raw = raw_header(part, "content-disposition")
    if raw is None:
        return "", {}
    value, _ = raw_to_str(raw, hint)
    return value.split(";", 1)[0].strip().lower(), header_params(value)


@dataclass(frozen=True)
class _Where:
    path: str = "1"  # MIME part number, for problems
    depth: int = 0
    parent: str = ""  # the enclosing multipart type
    wants_text: bool = True  # False in the alternatives not chosen: files only

    def child(self, number: int, parent: str, wants_text: bool) -> _Where:
        return _Where(f"{self.path}.{number}", self.depth + 1, parent, wants_text)


def _visit(part: Message, acc: Walk, where: _Where) -> list[tuple[Message, _Where]]:
    """Take what `part` holds; return its children to visit next."""
    mime, params = _content_type(part, acc.hint)
    disposition, dparams = _disposition(part, acc.hint)
    filename = dparams.get("filename") or params.get("name")
    path = where.path
    if mime == "message/delivery-status":
        payload = part.get_payload()
        acc.dsn_blocks.extend(p for p in payload if isinstance(p, Message))
    elif mime in ("text/rfc822-headers", "message/rfc822-headers"):
        acc.embedded_headers.append(email.message_from_bytes(_payload_bytes(part, acc, path)))
    elif mime == "message/rfc822":
        inner = part.get_payload()
        if isinstance(inner, list) and inner and isinstance(inner[0], Message):
            acc.embedded_headers.append(inner[0])  # the original, should this be a bounce
            if where.parent != "multipart/report":
                acc.forwarded.append(inner[0])
        if where.parent != "multipart/report":  # a report returns our own message
            _add_attachment(part, acc, path, mime, filename or "message.eml", disposition)
    elif part.is_multipart():
        if mime == "multipart/encrypted":
            acc.problem(f"encrypted: part {path}")
        children = [p for p in part.get_payload() if isinstance(p, Message)]
        chosen = _pick_alternative(children, acc, path) if mime == "multipart/alternative" else None
        # Alternatives not shown still carry files (QQ pastes screenshots into the HTML).
        return [
            (child, where.child(n, mime, where.wants_text and (chosen is None or child is chosen)))
            for n, child in enumerate(children, 1)
        ]
    elif mime.startswith("multipart/"):
        # No boundary, or one that never occurs: the stdlib leaves the body as one string.
        found = salvage(part, acc)
        return [(c, where.child(n, mime, where.wants_text)) for n, c in enumerate(found, 1)]
    elif mime in _PKCS7:
        _add_attachment(part, acc, path, mime, filename, disposition)
        inner = signed_content(_payload_bytes(part, acc, path))
        if inner is None:  # enveloped: only the recipient's key opens it
            acc.problem(f"encrypted: part {path}")
            return []
        letter = email.message_from_bytes(inner, policy=email.policy.compat32)
        return [(letter, where.child(1, mime, where.wants_text))]
    elif disposition == "attachment" or filename or not mime.startswith("text/"):
        _add_attachment(part, acc, path, mime, filename, disposition)
    elif where.wants_text:
        data = _payload_bytes(part, acc, path)
        if mime == "text/html":
            charset = params.get("charset") or meta_charset(data)
            acc.texts.append(html_to_text(_decode_part(data, charset, acc, path)))
        elif mime == "text/calendar":
            acc.texts.append(calendar_to_text(_decode_part(data, params.get("charset"), acc, path)))
        else:
            acc.texts.append(_decode_part(data, params.get("charset"), acc, path))
    return []


def _pick_alternative(children: list[Message], acc: Walk, path: str) -> Message | None:
    """Prefer a non-empty text/plain; else the HTML branch (possibly multipart/related)."""
    for child in children:
        mime, _ = _content_type(child)
        if mime == "text/plain" and _payload_bytes(child, acc, path).strip():
            return child
    for child in reversed(children):
        mime, _ = _content_type(child)
        if mime == "text/html" or mime.startswith("multipart/"):
            return child
    return children[0] if children else None


def _payload_bytes(part: Message, acc: Walk, path: str) -> bytes:
    cte = _transfer_encoding(part)
    if cte is not None:  # written loosely ("base64 ", quoted, with parameters): the stdlib
        payload = part.get_payload(decode=False)  # would hand back the encoded text
        raw = payload.encode("utf-8", "surrogateescape") if isinstance(payload, str) else b""
        if cte == "unknown":  # "bas64", "x-gzip64": the stdlib passes the text through
            acc.problem(f"transfer_encoding_unknown: part {path}")
            return lenient_base64(raw) if _LOOKS_BASE64.fullmatch(raw) else raw
        acc.problem(f"transfer_encoding_loose: part {path}")
        return lenient_base64(raw) if cte == "base64" else quopri.decodestring(raw)
    if _bare_cr_qp(part):  # old Mac line ends: "=\r" soft breaks the stdlib does not see
        payload = part.get_payload(decode=False)
        if isinstance(payload, str):
            lines = re.sub(r"\r*\n|\r", "\n", payload).encode("utf-8", "surrogateescape")
            return quopri.decodestring(lines)
    data = part.get_payload(decode=True)
    for defect in part.defects:
        acc.problem(f"defect: {type(defect).__name__}")
    if any(isinstance(d, _BASE64_DEFECTS) for d in part.defects):
        # The stdlib returns the base64 text itself for a bad length, and a line of junk in the
        # middle (a signature, a client's note) shifts every byte after it: decode leniently.
        payload = part.get_payload(decode=False)
        if isinstance(payload, str):
            data = lenient_base64(payload.encode("utf-8", "surrogateescape"))
    return data if isinstance(data, bytes) else b""


def _bare_cr_qp(part: Message) -> bool:
    raw = (raw_header(part, "content-transfer-encoding") or "").strip().lower()
    payload = part.get_payload(decode=False) if raw == "quoted-printable" else None
    return isinstance(payload, str) and re.search(r"\r(?!\n)", payload) is not None


def _transfer_encoding(part: Message) -> str | None:
    """base64 or quoted-printable when the header says so in a form the stdlib misses."""
    raw = raw_header(part, "content-transfer-encoding")
    if raw is None or part.is_multipart():
        return None
    exact = raw.lower()
    loose = re.split(r"[;\s]", raw.strip().strip("\"'").lower(), maxsplit=1)[0]
    if loose in ("base64", "quoted-printable") and exact != loose:
        return loose
    if loose not in _KNOWN_ENCODINGS:
        return "unknown"
    return None


_PKCS7 = ("application/pkcs7-mime", "application/x-pkcs7-mime")
_KNOWN_ENCODINGS = frozenset(
    ("", "7bit", "8bit", "binary", "base64", "quoted-printable", "x-uuencode", "uuencode",
     "x-uue", "uue")
)  # fmt: skip
# Only base64's alphabet in lines, at least a few of them: data, whatever the header says.
_LOOKS_BASE64 = re.compile(rb"\s*(?:[A-Za-z0-9+/]{16,}={0,2}\s*)+")


_BASE64_DEFECTS = (
    errors.InvalidBase64LengthDefect,
    errors.InvalidBase64CharactersDefect,
    errors.InvalidBase64PaddingDefect,
)
_B64_FOREIGN_ASCII = re.compile(rb"[\x21-\x2a\x2c-\x2e\x3a-\x3c\x3e-\x40\x5b-\x60\x7b-\x7e]")


def lenient_base64(encoded: bytes) -> bytes:
    """Decode base64 that a client or a relay damaged, keeping every line that can be kept.

    A line of short words, or mostly of ASCII that base64 never uses ("-- ", "Sent from my
    phone", a scanner's note), is text, not data: it is dropped. Stray
    characters inside a data line (8-bit bytes, controls, a few "!") are removed. A short
    line in the middle that would shift the rest is dropped; padding ends a run; a cut-off
    end is decoded as far as it goes.
    """
    lines = []
    for raw_line in encoded.splitlines():
        words = raw_line.split()
        if not words or any(len(word) < 4 for word in words):
            continue  # blank, or words of text ("Sent from my phone", "-- ")
        line = b"".join(words)
        foreign = len(_B64_FOREIGN_ASCII.findall(line))
        if foreign * 4 > len(line):
            continue
        line = bytes(b for b in line if b < 0x80 and (chr(b).isalnum() or b in b"+/="))
        if line:
            lines.append(line)
    kept = bytearray()
    for n, line in enumerate(lines):
        last = n == len(lines) - 1
        if not last and len(line) % 4 and (len(kept) % 4 == 0) and b"=" not in line:
            continue  # a stray short line among full ones
        kept.extend(line)
    out = bytearray()
    for run in re.split(rb"=+", bytes(kept)):
        whole = run[: len(run) // 4 * 4]
        rest = run[len(whole) :]
        out.extend(base64.b64decode(whole))
        if len(rest) >= 2:  # a padded (or cut-off) end: 2 or 3 characters give 1 or 2 bytes
            out.extend(base64.b64decode(rest + b"=" * (-len(rest) % 4)))
    return bytes(out)


def _decode_part(data: bytes, charset: str | None, acc: Walk, path: str) -> str:
    text, problem = decode_bytes(data, charset)
    if problem:
        acc.problem(f"{problem} (part {path})")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _add_attachment(
    part: Message, acc: Walk, path: str, mime: str, filename: str | None, disposition: str
) -> None:
    if len(acc.attachments) >= acc.max_attachments:
        acc.skipped += 1
        return
    if mime == "message/rfc822":
        inner = part.get_payload()
        first = inner[0] if isinstance(inner, list) and inner else None
        data = first.as_bytes() if isinstance(first, Message) else b""
    else:
        data = _payload_bytes(part, acc, path)
    add_file(acc, data, mime, filename, disposition == "inline")
    if is_tnef(data):  # Outlook's winmail.dat: the files and the words inside it
        body, files = read_tnef(data)
        if body.strip() and acc.wants_more_text():
            acc.texts.append(body.replace("\r\n", "\n"))
        for name, content in files:
            if len(acc.attachments) >= acc.max_attachments:
                acc.skipped += 1
                continue
            add_file(acc, content, "application/octet-stream", name, False)


def add_file(acc: Walk, data: bytes, mime: str, filename: str | None, inline: bool) -> None:
    sniffed = sniff_type(data)
    name = sanitise_filename(filename, default=_default_name(sniffed or mime))
    if sniffed is None and mime != "message/rfc822":
        acc.problem(f"attachment_type_unrecognised: {name}")
    too_large = len(data) > acc.max_attachment_bytes
    if too_large:
        acc.problem(f"attachment_too_large: {name} ({len(data)} bytes)")
    acc.attachments.append(
        Attachment(
            filename=name,
            content_type=sniffed or _UNVERIFIED.get(mime, "application/octet-stream"),
            declared_type=mime,
            sniffed_type=sniffed,
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            data=None if too_large else data,
            inline=inline,
        )
    )


# Types we may state without sniffing: a forwarded message is parsed, so it is one.
_UNVERIFIED = {"message/rfc822": "message/rfc822"}


def _default_name(mime: str) -> str:
    extension = EXTENSIONS.get(mime) or mimetypes.guess_extension(mime) or ""
    return "attachment" + extension
