"""Turn the raw bytes of a received e-mail into what the intake records (`ParsedMail`).

Complainants write from QQ Mail, 163/126, Foxmail and Outlook, in Chinese: charset labels lie
(GBK text labelled gb2312), headers arrive as raw 8-bit bytes, encoded words are split in the
middle of a character. The stdlib parser gives the MIME structure and transfer decoding; the text
(headers, bodies, file names) is decoded here, leniently. Nothing in a message makes parsing
fail: what went wrong is listed in `problems`.

Each problem is "code" or "code: detail"; the codes:
  no_message_id, header_8bit, header_bad_encoded_word, charset_guessed (no/unknown label),
  charset_mismatch (label lied; a detector chose), defect (a stdlib MIME defect, by class),
  truncated_multipart, attachment_too_large, attachment_type_unrecognised (not a format
  bot.domain.files.sniff_type accepts), case_ref_conflict (subject tag and threading disagree),
  part_unreadable, too_deeply_nested, unparseable (nothing but the raw bytes could be kept).
"""

from __future__ import annotations

import base64
import binascii
import codecs
import email
import email.policy
import hashlib
import mimetypes
import quopri
import re
import urllib.parse
from dataclasses import dataclass, field
from datetime import datetime
from email import errors
from email.message import Message
from email.utils import getaddresses, parseaddr, parsedate_to_datetime
from html.parser import HTMLParser
from typing import Any, Literal

from charset_normalizer import from_bytes as detect_charset

from bot.domain.files import EXTENSIONS, sanitise_filename, sniff_type
from bot.domain.letters import (
    automatic_reasons,
    case_ref_in_subject,
    classify_text,
    normalise_message_id,
)

Kind = Literal["appeal", "complaint", "dispute", "reply", "enquiry"]

# ---------------------------------------------------------------------------------------------
# Charsets


# Labels that mean a codec other than their name: GB2312/GBK-labelled text is routinely GBK or
# GB18030 (Outlook, QQ), GB18030 is their superset; Big5 mail from Windows uses MS extensions.
_CHARSET_ALIASES = {
    "gb2312": "gb18030",
    "gb_2312": "gb18030",
    "gb_2312-80": "gb18030",
    "gb2312-80": "gb18030",
    "csgb2312": "gb18030",
    "euc-cn": "gb18030",
    "x-euc-cn": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "cp936": "gb18030",
    "ms936": "gb18030",
    "windows-936": "gb18030",
    "chinese": "gb18030",
    "gb18030": "gb18030",
    "big5": "big5hkscs",
    "x-big5": "big5hkscs",
    "cn-big5": "big5hkscs",
    "csbig5": "big5hkscs",
    "big5-hkscs": "big5hkscs",
    "cp950": "cp950",
    "ks_c_5601-1987": "cp949",
    "utf8": "utf-8",
    "unicode-1-1-utf-8": "utf-8",
}
_NO_CHARSET = {"", "unknown", "unknown-8bit", "x-unknown", "x-user-defined", "default", "8bit"}
# Labels under which any byte decodes, so a lie is never noticed by decoding alone.
_SINGLE_BYTE = {"ascii", "iso8859-1", "cp1252", "iso8859-15"}
_CHINESE_CODECS = {"gb18030", "big5hkscs", "cp950"}


def codec_for(label: str | None) -> str | None:
    """The Python codec to use for a MIME charset label, or None when it names none we know."""
    name = (label or "").strip().strip("\"'").lower()
    if name in _NO_CHARSET:
        return None
    name = _CHARSET_ALIASES.get(name, name)
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def decode_bytes(data: bytes, label: str | None) -> tuple[str, str | None]:
    """Decode `data` declared as `label`; return (text, problem or None)."""
    if data.isascii():
        return data.decode("ascii"), None
    codec = codec_for(label)
    if codec is None:
        text, found = _detect(data)
        what = f"unknown charset {label!r}" if label else "no charset"
        return text, f"charset_guessed: {what}, decoded as {found}"
    if codec in _SINGLE_BYTE:
        # A single-byte label never fails, so look for a better fit first (GBK labelled latin-1).
        text, found = _detect(data)
        if found in ("utf-8", "gb18030", "big5hkscs", "cp950"):
            return text, f"charset_mismatch: declared {label}, decoded as {found}"
    try:
        text = data.decode(codec)
    except UnicodeDecodeError:
        text, found = _detect(data)
        return text, f"charset_mismatch: declared {label}, decoded as {found}"
    if codec in _CHINESE_CODECS and _chinese_score(text, codec) < 0.5:
        # GB18030 decodes UTF-8 bytes without error, into rare characters: web forms do this.
        try:
            return data.decode("utf-8"), f"charset_mismatch: declared {label}, decoded as utf-8"
        except UnicodeDecodeError:
            pass
    return text, None


def _detect(data: bytes) -> tuple[str, str]:
    """Best-effort decoding of bytes whose charset is unknown or wrong: (text, codec used)."""
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    # charset-normalizer guesses badly on a few Chinese words; score the two Chinese codecs first.
    scored = []
    for codec in ("gb18030", "big5hkscs"):
        try:
            text = data.decode(codec)
        except UnicodeDecodeError:
            continue
        scored.append((_chinese_score(text, codec), codec == "gb18030", codec, text))
    if scored:
        score, _, codec, text = max(scored)
        if score >= 0.6:
            return text, codec
    best = detect_charset(data).best()
    if best is not None:
        found = codec_for(best.encoding) or best.encoding
        return str(best), found
    return data.decode("gb18030", "replace"), "gb18030"


def _chinese_score(text: str, codec: str) -> float:
    """Share of non-ASCII characters that are frequent in `codec`'s own table.

    Text decoded with the wrong one of GB18030/Big5 lands on rare characters and symbol rows.
    GB2312 level 1 (rows B0–D7) holds the 3,755 most used hanzi; Big5 A440–C67E the 5,401
    frequent ones; row A1 is punctuation in both, A3 full-width forms in GB2312.
    """
    table, frequent, punctuation = (
        ("gb2312", range(0xB0, 0xD8), (0xA1, 0xA3))
        if codec == "gb18030"
        else ("big5", range(0xA4, 0xC7), (0xA1,))
    )
    wide = [c for c in text if ord(c) > 0x7F]
    if not wide:
        return 1.0
    hits = 0
    for char in wide:
        try:
            lead = char.encode(table)[0]
        except UnicodeEncodeError:
            continue
        hits += lead in frequent or lead in punctuation
    return hits / len(wide)


def _raw_to_str(value: str) -> tuple[str, bool]:
    """A raw header value as parsed (8-bit bytes smuggled as surrogates) → (text, was 8-bit)."""
    try:
        value.encode("ascii")
        return value, False
    except UnicodeEncodeError:
        pass
    data = value.encode("ascii", "surrogateescape") if _has_surrogates(value) else None
    if data is None:
        return value, True  # already text (a str message); nothing to undo
    text, _ = _detect(data)
    return text, True


def _has_surrogates(value: str) -> bool:
    return any("\udc80" <= c <= "\udcff" for c in value)


# ---------------------------------------------------------------------------------------------
# RFC 2047 encoded words, leniently: no whitespace required around them, adjacent words in one
# charset joined as bytes before decoding (clients split a character across two words), base64
# padding repaired, unknown charsets guessed.

_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?]*)\?=")
_FOLD = re.compile(r"\r?\n[ \t]")


def decode_header_text(value: str) -> tuple[str, list[str]]:
    """Decode an unstructured header (Subject, a display name); return (text, problems)."""
    problems: list[str] = []
    text, eight_bit = _raw_to_str(_FOLD.sub(" ", value))
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
            payload = re.sub(r"[^A-Za-z0-9+/]", "", payload)
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
    value = _FOLD.sub(" ", value)
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


# ---------------------------------------------------------------------------------------------
# HTML → text


class _HtmlText(HTMLParser):
    _BLOCK = frozenset(
        (
            "address", "article", "aside", "blockquote", "dd", "div", "dl", "dt", "footer",
            "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "ol", "p", "pre",
            "section", "table", "tr", "ul",
        )
    )  # fmt: skip
    _SKIP = frozenset(("script", "style", "head", "title", "template", "noscript"))

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self.skipping = 0
        self.pre = 0

    def _line_break(self) -> None:
        # Blocks start on a new line without adding blank lines (Outlook wraps every line in <p>).
        for chunk in reversed(self.chunks):
            if chunk.strip(" "):
                if not chunk.rstrip(" ").endswith("\n"):
                    self.chunks.append("\n")
                return

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self.skipping += 1
        elif tag == "br":
            self.chunks.append("\n")
        elif tag in self._BLOCK:
            self._line_break()
            if tag == "li":
                self.chunks.append("- ")
        elif tag in ("td", "th"):
            self.chunks.append(" ")
        if tag == "pre":
            self.pre += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag in self._BLOCK:
            self._line_break()
        if tag == "pre":
            self.pre = max(0, self.pre - 1)

    def handle_data(self, data: str) -> None:
        if self.skipping:
            return
        self.chunks.append(data if self.pre else re.sub(r"[ \t\r\n\f\xa0]+", " ", data))


def html_to_text(html: str) -> str:
    parser = _HtmlText()
    parser.feed(html)
    parser.close()
    lines = [line.strip() for line in "".join(parser.chunks).split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([A-Za-z0-9_.:-]+)""", re.I)


# ---------------------------------------------------------------------------------------------
# Results


@dataclass
class Attachment:
    filename: str  # sanitised, for display only
    content_type: str  # sniffed from the bytes; application/octet-stream when unrecognised
    declared_type: str
    sniffed_type: str | None  # None: not a format we accept (bot.domain.files.sniff_type)
    size: int
    sha256: str
    data: bytes | None = field(repr=False)  # None when larger than the limit
    inline: bool = False

    @property
    def acceptable(self) -> bool:
        """Stored like an upload only when within the size limit and of a recognised type."""
        return self.data is not None and self.sniffed_type is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "filename": self.filename,
            "content_type": self.content_type,
            "size": self.size,
            "sha256": self.sha256,
        }


@dataclass
class Bounce:
    original_message_id: str | None  # the Message-ID of our message that bounced
    failed_recipients: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "original_message_id": self.original_message_id,
            "failed_recipients": self.failed_recipients,
        }


@dataclass
class ParsedMail:
    """What the intake records; `to_json()` is what `certdesk email parse --json` prints."""

    message_id: str | None  # "<…>" as sent; None when missing (use raw_sha256 then)
    from_addr: str | None
    from_name: str
    reply_to: str | None
    to: list[str]
    subject: str
    date: datetime | None
    in_reply_to: list[str]
    references: list[str]
    kind: Kind
    case_ref: str | None
    automatic: bool
    automatic_reasons: list[str]
    bounce: Bounce | None
    text: str
    attachments: list[Attachment]
    problems: list[str]
    raw_sha256: str

    def to_json(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "from": self.from_addr,
            "subject": self.subject,
            "kind": self.kind,
            "case_ref": self.case_ref,
            "automatic": self.automatic,
            "bounce": self.bounce.to_json() if self.bounce else None,
            "text": self.text,
            "attachments": [a.to_json() for a in self.attachments],
            "problems": self.problems,
        }


# ---------------------------------------------------------------------------------------------
# Walking the MIME tree


@dataclass
class _Walk:
    max_attachment_bytes: int
    texts: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    dsn_blocks: list[Message] = field(default_factory=list)
    embedded_headers: list[Message] = field(default_factory=list)

    def problem(self, text: str) -> None:
        if text not in self.problems:
            self.problems.append(text)


_MAX_DEPTH = 30


def _raw_header(part: Message, name: str) -> str | None:
    """The raw value of the first header `name`, bypassing the policy's (strict) parsing."""
    for key, value in part.raw_items():
        if key.lower() == name:
            return str(value)
    return None


def _raw_headers(part: Message, name: str) -> list[str]:
    return [str(v) for k, v in part.raw_items() if k.lower() == name]


def _content_type(part: Message) -> tuple[str, dict[str, str]]:
    raw = _raw_header(part, "content-type")
    if raw is None:
        return part.get_default_type(), {}
    value, _ = _raw_to_str(raw)
    mime = value.split(";", 1)[0].strip().lower()
    if "/" not in mime:
        mime = "text/plain"  # RFC 2045 §5.2: an invalid type is treated as text/plain
    return mime, header_params(value)


def _disposition(part: Message) -> tuple[str, dict[str, str]]:
    raw = _raw_header(part, "content-disposition")
    if raw is None:
        return "", {}
    value, _ = _raw_to_str(raw)
    return value.split(";", 1)[0].strip().lower(), header_params(value)


@dataclass(frozen=True)
class _Where:
    path: str = "1"  # MIME part number, for problems
    depth: int = 0
    parent: str = ""  # the enclosing multipart type
    wants_text: bool = True  # False in the alternatives not chosen: files only

    def child(self, number: int, parent: str, wants_text: bool) -> _Where:
        return _Where(f"{self.path}.{number}", self.depth + 1, parent, wants_text)


def _walk(part: Message, acc: _Walk, where: _Where) -> None:
    if where.depth > _MAX_DEPTH:
        acc.problem("too_deeply_nested")
        return
    try:
        _visit(part, acc, where)
    except Exception as exc:  # one bad part never costs the whole message
        acc.problem(f"part_unreadable: {where.path}: {type(exc).__name__}")


def _visit(part: Message, acc: _Walk, where: _Where) -> None:
    mime, params = _content_type(part)
    disposition, dparams = _disposition(part)
    filename = dparams.get("filename") or params.get("name")
    path = where.path
    if mime == "message/delivery-status":
        payload = part.get_payload()
        acc.dsn_blocks.extend(p for p in payload if isinstance(p, Message))
    elif mime in ("text/rfc822-headers", "message/rfc822-headers"):
        acc.embedded_headers.append(email.message_from_bytes(_payload_bytes(part, acc, path)))
    elif mime == "message/rfc822":
        inner = part.get_payload()
        if isinstance(inner, list) and inner:
            acc.embedded_headers.append(inner[0])  # the original, should this be a bounce
        if where.parent != "multipart/report":  # a report returns our own message
            _add_attachment(part, acc, path, mime, filename or "message.eml", disposition)
    elif part.is_multipart():
        children = [p for p in part.get_payload() if isinstance(p, Message)]
        chosen = _pick_alternative(children, acc, path) if mime == "multipart/alternative" else None
        for number, child in enumerate(children, 1):
            # Alternatives not shown still carry files (QQ pastes screenshots into the HTML).
            wants_text = where.wants_text and (chosen is None or child is chosen)
            _walk(child, acc, where.child(number, mime, wants_text))
    elif disposition == "attachment" or filename or not mime.startswith("text/"):
        _add_attachment(part, acc, path, mime, filename, disposition)
    elif where.wants_text:
        data = _payload_bytes(part, acc, path)
        if mime == "text/html":
            charset = params.get("charset") or _meta_charset(data)
            acc.texts.append(html_to_text(_decode_part(data, charset, acc, path)))
        else:
            acc.texts.append(_decode_part(data, params.get("charset"), acc, path))


def _pick_alternative(children: list[Message], acc: _Walk, path: str) -> Message | None:
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


def _payload_bytes(part: Message, acc: _Walk, path: str) -> bytes:
    data = part.get_payload(decode=True)
    for defect in part.defects:
        acc.problem(f"defect: {type(defect).__name__}")
    if any(isinstance(d, errors.InvalidBase64LengthDefect) for d in part.defects):
        # The stdlib then returns the base64 text itself; a cut-off file is worth more decoded.
        data = _lenient_base64(part)
    return data if isinstance(data, bytes) else b""


def _lenient_base64(part: Message) -> bytes:
    payload = part.get_payload(decode=False)
    text = payload.encode("ascii", "surrogateescape") if isinstance(payload, str) else b""
    clean = re.sub(rb"[^A-Za-z0-9+/]", b"", text)
    return base64.b64decode(clean[: len(clean) // 4 * 4])


def _meta_charset(data: bytes) -> str | None:
    match = _META_CHARSET.search(data[:4096])
    return match.group(1).decode("ascii") if match else None


def _decode_part(data: bytes, charset: str | None, acc: _Walk, path: str) -> str:
    text, problem = decode_bytes(data, charset)
    if problem:
        acc.problem(f"{problem} (part {path})")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _add_attachment(
    part: Message, acc: _Walk, path: str, mime: str, filename: str | None, disposition: str
) -> None:
    if mime == "message/rfc822":
        inner = part.get_payload()
        data = inner[0].as_bytes() if isinstance(inner, list) and inner else b""
    else:
        data = _payload_bytes(part, acc, path)
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
            inline=disposition == "inline",
        )
    )


# Types we may state without sniffing: a forwarded message is parsed, so it is one.
_UNVERIFIED = {"message/rfc822": "message/rfc822"}


def _default_name(mime: str) -> str:
    extension = EXTENSIONS.get(mime) or mimetypes.guess_extension(mime) or ""
    return "attachment" + extension


# ---------------------------------------------------------------------------------------------
# Headers of the message itself

_MESSAGE_ID = re.compile(r"<[^<>\s]+>")


def _message_ids(value: str | None) -> list[str]:
    if not value:
        return []
    text = _FOLD.sub(" ", value)
    found = _MESSAGE_ID.findall(text)
    # Some clients drop the angle brackets.
    return found or [f"<{t}>" for t in text.split() if "@" in t]


def _address(value: str | None, acc: _Walk, header: str) -> tuple[str | None, str]:
    if value is None:
        return None, ""
    text, eight_bit = _raw_to_str(_FOLD.sub(" ", value))
    name, addr = parseaddr(text)
    decoded, problems = decode_header_text(name)
    for problem in problems:
        acc.problem(f"{problem}: {header}")
    if eight_bit:
        acc.problem(f"header_8bit: {header}")
    return (addr.strip().lower() or None), decoded


def _date(value: str | None) -> datetime | None:
    try:
        return parsedate_to_datetime(value) if value else None
    except (TypeError, ValueError, IndexError):
        return None


# ---------------------------------------------------------------------------------------------
# Bounces (RFC 3464 delivery status notifications, and Exim's X-Failed-Recipients)


def _bounce(msg: Message, acc: _Walk, from_addr: str | None) -> Bounce | None:
    failed = [_dsn_recipient(b) for b in acc.dsn_blocks if _dsn_failed(b)]
    failed = [r for r in failed if r]
    x_failed = _raw_header(msg, "x-failed-recipients")
    if x_failed:
        failed += [a.lower() for _, a in getaddresses([x_failed]) if a and a.lower() not in failed]
    local = (from_addr or "").partition("@")[0]
    sender_is_daemon = local in ("mailer-daemon", "postmaster")
    if acc.dsn_blocks and not failed:
        return None  # a DSN that reports delay or success: automatic, not a bounce
    if not failed and not (sender_is_daemon and acc.embedded_headers):
        return None
    original = None
    for headers in acc.embedded_headers:
        ids = _message_ids(_raw_header(headers, "message-id"))
        if ids:
            original = ids[0]
            break
    if original is None:  # plain-text bounces quote the original headers
        match = re.search(r"^Message-ID:\s*(<[^<>\s]+>)", "\n".join(acc.texts), re.I | re.M)
        original = match.group(1) if match else None
    return Bounce(original_message_id=original, failed_recipients=failed)


def _dsn_failed(block: Message) -> bool:
    return (_raw_header(block, "action") or "").strip().lower() == "failed"


def _dsn_recipient(block: Message) -> str | None:
    raw = _raw_header(block, "final-recipient") or _raw_header(block, "original-recipient")
    if not raw:
        return None
    address = raw.split(";", 1)[-1].strip().strip("<>").lower()
    return address or None


# ---------------------------------------------------------------------------------------------
# Entry point


def parse_message(
    raw: bytes,
    *,
    case_ref_prefix: str = "TS",
    known_refs_by_message_id: dict[str, str] | None = None,
    max_attachment_bytes: int = 20_000_000,
) -> ParsedMail:
    """Parse and classify one received message; never raises for a malformed message."""
    try:
        return _parse(raw, case_ref_prefix, known_refs_by_message_id, max_attachment_bytes)
    except Exception as exc:  # e.g. RecursionError on absurd nesting: record, do not crash
        return _unparseable(raw, exc)


def _unparseable(raw: bytes, exc: Exception) -> ParsedMail:
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    found = re.search(rb"^Message-ID:[ \t]*(<[^<>\s]+>)", head, re.IGNORECASE | re.MULTILINE)
    message_id = found.group(1).decode("ascii", "replace") if found else None
    return ParsedMail(
        message_id=message_id,
        from_addr=None,
        from_name="",
        reply_to=None,
        to=[],
        subject="",
        date=None,
        in_reply_to=[],
        references=[],
        kind="enquiry",
        case_ref=None,
        automatic=False,
        automatic_reasons=[],
        bounce=None,
        text="",
        attachments=[],
        problems=[f"unparseable: {type(exc).__name__}"],
        raw_sha256=hashlib.sha256(raw).hexdigest(),
    )


def _parse(
    raw: bytes,
    case_ref_prefix: str,
    known_refs_by_message_id: dict[str, str] | None,
    max_attachment_bytes: int,
) -> ParsedMail:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    acc = _Walk(max_attachment_bytes=max_attachment_bytes)
    for defect in msg.defects:
        acc.problem(f"defect: {type(defect).__name__}")
    _walk(msg, acc, _Where())
    if any(
        p.startswith(("defect: CloseBoundaryNotFound", "defect: StartBoundaryNotFound"))
        for p in acc.problems
    ):
        acc.problem("truncated_multipart")

    subject_raw = _raw_header(msg, "subject") or ""
    subject, subject_problems = decode_header_text(subject_raw)
    for problem in subject_problems:
        acc.problem(f"{problem}: Subject")
    from_addr, from_name = _address(_raw_header(msg, "from"), acc, "From")
    reply_to, _ = _address(_raw_header(msg, "reply-to"), acc, "Reply-To")
    to_raw = " , ".join(_raw_to_str(v)[0] for v in _raw_headers(msg, "to"))
    to = [a.lower() for _, a in getaddresses([to_raw]) if a]

    ids = _message_ids(_raw_header(msg, "message-id"))
    message_id = ids[0] if ids else None
    if message_id is None:
        acc.problem("no_message_id")
    in_reply_to = _message_ids(_raw_header(msg, "in-reply-to"))
    references = _message_ids(_raw_header(msg, "references"))

    bounce = _bounce(msg, acc, from_addr)
    headers = [(k, _raw_to_str(str(v))[0]) for k, v in msg.raw_items()]
    reasons = automatic_reasons(headers, from_addr, subject, bounce is not None)

    text = _printable("\n\n".join(t.strip() for t in acc.texts if t.strip()))
    case_ref = _case_ref(
        subject, in_reply_to, references, bounce, case_ref_prefix, known_refs_by_message_id, acc
    )
    kind: Kind = "reply" if case_ref else classify_text(subject, text)
    return ParsedMail(
        message_id=message_id,
        from_addr=from_addr,
        from_name=_printable(from_name),
        reply_to=reply_to,
        to=to,
        subject=_printable(subject),
        date=_date(_raw_header(msg, "date")),
        in_reply_to=in_reply_to,
        references=references,
        kind=kind,
        case_ref=case_ref,
        automatic=bool(reasons),
        automatic_reasons=reasons,
        bounce=bounce,
        text=text,
        attachments=acc.attachments,
        problems=acc.problems,
        raw_sha256=hashlib.sha256(raw).hexdigest(),
    )


# NUL and other C0 controls: never meant as text, and PostgreSQL refuses NUL in text columns.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _printable(text: str) -> str:
    return _CONTROL.sub("", text)


def _case_ref(
    subject: str,
    in_reply_to: list[str],
    references: list[str],
    bounce: Bounce | None,
    prefix: str,
    known: dict[str, str] | None,
    acc: _Walk,
) -> str | None:
    """Subject tag first; else the threading headers (newest first) against stored IDs."""
    tagged = case_ref_in_subject(subject, prefix)
    lookup = {normalise_message_id(k): v for k, v in (known or {}).items()}
    threaded = None
    candidates = [*in_reply_to, *reversed(references)]
    if bounce and bounce.original_message_id:
        candidates.append(bounce.original_message_id)
    for message_id in candidates:
        threaded = lookup.get(normalise_message_id(message_id))
        if threaded:
            break
    if tagged and threaded and tagged != threaded:
        # The subject is what the sender sees and edits; trust it, and let staff know.
        acc.problem(f"case_ref_conflict: subject {tagged}, thread {threaded}")
    return tagged or threaded
