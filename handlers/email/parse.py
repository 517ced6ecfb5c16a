"""Turn the raw bytes of a received e-mail into what the intake records (`ParsedMail`).

decode.py makes text of bytes (charsets, header words, parameters), mime.py walks the parts;
here the letter's own headers are read, bounces recognised and the letter classified. Nothing
in a message makes parsing fail: what went wrong is listed in `problems`.

Each problem is "code" or "code: detail"; the codes:
  no_message_id, message_id_too_long (kept, never put in our headers), duplicate_from (the
  first From is the sender), header_8bit,
  header_bad_encoded_word, bad_address (an address no one can have: not answered),
  charset_guessed (no/unknown label), charset_mismatch (label lied; a detector chose),
  charset_damaged (the label held but for a few stray bytes, replaced), defect (a stdlib MIME
  defect, by class), transfer_encoding_loose (a Content-Transfer-Encoding the stdlib would
  not decode: "base64 ", quoted), truncated_multipart, attachment_too_large,
  attachment_type_unrecognised (not a format bot.domain.files.sniff_type accepts),
  too_many_attachments (files past the cap, neither decoded nor kept), case_ref_conflict
  (subject tag and threading disagree), part_unreadable, too_deeply_nested (past 30 levels:
  still read; past the stdlib parser's stack, its parts read flat), too_many_parts,
  multipart_salvaged (no boundary, or not the one declared: split on the one used),
  transfer_encoding_unknown (decoded when it is base64 all the same), encrypted (S/MIME
  enveloped or PGP: only the recipient's key reads it), unparseable
  (nothing but the raw bytes could be kept); and, set by the intake: too_large (only the
  header was fetched and stored), store_failed (the database refused the letter once; stored
  bare), other_sender (about a case, from an address the case does not know), intake_error
  (acting on it failed; quarantined).
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import re
from collections.abc import Sequence
from datetime import datetime
from email.message import Message
from email.utils import getaddresses, parseaddr, parsedate_to_datetime

from bot.domain.letters import (
    automatic_reasons,
    case_ref_in_subject,
    case_ref_in_text,
    classify_text,
    normalise_message_id,
    own_mail_reasons,
)
from bot.domain.mail import THREADING_ID_MAX, Attachment, Bounce, Kind, ParsedMail, valid_text
from handlers.email.decode import raw_to_str
from handlers.email.header_words import FOLD, decode_header_text
from handlers.email.mime import MAX_ATTACHMENTS, Walk, raw_header, raw_headers, walk
from handlers.email.salvage import flattened

__all__ = ["Attachment", "Bounce", "ParsedMail", "header_block", "message_key", "parse_message"]

# ---------------------------------------------------------------------------------------------
# Keys: what identifies a letter before it is parsed (the intake stores by them)

_MESSAGE_ID_HEADER = re.compile(rb"^Message-ID:[ \t]*(?:\r?\n[ \t]+)?(<[^<>\s]+>)", re.I | re.M)


_CHARSET_PARAM = re.compile(rb"""charset\s*=\s*["']?([A-Za-z0-9_.:-]{1,40})""", re.I)


def text_charset(raw: bytes) -> str | None:
    """The first charset the letter declares beyond ASCII (its text's), or None."""
    for match in _CHARSET_PARAM.finditer(raw, 0, 1_000_000):
        label = match.group(1).decode("ascii").lower()
        if label not in ("us-ascii", "ascii"):
            return label
    return None


def header_block(raw: bytes) -> bytes:
    end = min((i for i in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if i >= 0), default=len(raw))
    return raw[:end]


def message_key(raw: bytes, size: int | None = None) -> tuple[str | None, str]:
    """(its Message-ID, cleaned, or None; the key of the very same letter).

    Only the very same letter is a duplicate, so the key is a hash of its raw bytes: a reused
    Message-ID, or two letters without one and with the same headers, are two letters. For a
    letter too large to fetch whole (`raw` its header alone, `size` its RFC822.SIZE) it is a
    hash of the header and the size. Either way the key is bounded, whatever the letter holds.
    """
    head = header_block(raw)
    found = _MESSAGE_ID_HEADER.search(head)
    message_id = clean_message_id(found.group(1)) if found else None
    if size is None:
        return message_id, "sha256:" + hashlib.sha256(raw).hexdigest()
    return message_id, f"head:{size}:" + hashlib.sha256(head).hexdigest()


def clean_message_id(value: str | bytes) -> str | None:
    """A Message-ID fit to store and compare: valid UTF-8, no NUL or other control characters.

    8-bit bytes (raw, or smuggled as surrogates by the stdlib parser) are read as UTF-8 with
    replacement: PostgreSQL refuses NUL and invalid UTF-8, JSON output must be valid UTF-8.
    """
    data = value if isinstance(value, bytes) else value.encode("utf-8", "surrogateescape")
    text = _CONTROL.sub("", data.decode("utf-8", "replace")).strip()
    return text or None


# ---------------------------------------------------------------------------------------------
# Headers of the message itself

_MESSAGE_ID = re.compile(r"<[^<>\s]+>")


def _message_ids(value: str | None) -> list[str]:
    if not value:
        return []
    text = FOLD.sub(" ", value)
    found = _MESSAGE_ID.findall(text)
    # Some clients drop the angle brackets.
    ids = found or [f"<{t}>" for t in text.split() if "@" in t]
    return [cleaned for value in ids if (cleaned := clean_message_id(value))]


def _address(value: str | None, acc: Walk, header: str) -> tuple[str | None, str]:
    if value is None:
        return None, ""
    text, eight_bit = raw_to_str(FOLD.sub(" ", value), acc.hint)
    name, addr = parseaddr(_printable(text))
    if not _ADDR_SPEC.fullmatch(addr.strip()):
        # Written by hand or by a broken client: `张伟 a@qq.com` (no angle brackets), the whole
        # `Name <addr>` inside one encoded word, `<<a@qq.com>>`. The address a person can see in
        # it is theirs.
        decoded, addr, problems = _salvaged_address(text, addr)
    else:
        decoded, problems = decode_header_text(name, acc.hint)
    for problem in problems:
        acc.problem(f"{problem}: {header}")
    if eight_bit:
        acc.problem(f"header_8bit: {header}")
    address = addr.strip().lower() or None
    if address is not None and (len(address) > MAX_ADDRESS or "@" not in address):
        acc.problem(f"bad_address: {header}")  # never an address to answer, nor a key
        address = None
    return address, decoded


_ADDR_SPEC = re.compile(r"[^\s@<>()\[\],;:\"]+@[^\s@<>()\[\],;:\"]+")


def _salvaged_address(text: str, addr: str) -> tuple[str, str, list[str]]:
    """(display name, address, problems) of a From that parseaddr could not split."""
    decoded, problems = decode_header_text(text)
    decoded = decoded.replace("＠", "@")
    problems = [p for p in problems if p != "header_8bit"]  # noted by the caller
    found = _ADDR_SPEC.findall(decoded)
    if not found:
        return decoded if "@" not in decoded else "", addr, problems
    address = found[0].strip(".'")
    rest = decoded.replace(address, " ", 1)
    return " ".join(re.sub(r"[<>\"]", " ", rest).split()), address, problems


# RFC 5321 §4.5.3.1.3: a path is at most 256 octets, so an address at most 254 characters.
MAX_ADDRESS = 254


def _clean_address(value: str) -> str | None:
    text = _printable(valid_text(value)).strip().lower()
    return text if text and len(text) <= MAX_ADDRESS else None


def _date(value: str | None) -> datetime | None:
    try:
        return parsedate_to_datetime(value) if value else None
    except (TypeError, ValueError, IndexError):
        return None


# ---------------------------------------------------------------------------------------------
# Bounces (RFC 3464 delivery status notifications, and Exim's X-Failed-Recipients)


def _bounce(msg: Message, acc: Walk, from_addr: str | None) -> Bounce | None:
    failed = [r for b in acc.dsn_blocks if _dsn_failed(b) and (r := _dsn_recipient(b))]
    x_failed = raw_header(msg, "x-failed-recipients")
    if x_failed:
        found = [_clean_address(a) for _, a in getaddresses([x_failed]) if a]
        failed += [a for a in found if a and a not in failed]
    local = (from_addr or "").partition("@")[0]
    sender_is_daemon = local in ("mailer-daemon", "postmaster")
    if acc.dsn_blocks and not failed:
        return None  # a DSN that reports delay or success: automatic, not a bounce
    if not failed and not (sender_is_daemon and acc.embedded_headers):
        return None
    original = None
    for headers in acc.embedded_headers:
        ids = _message_ids(raw_header(headers, "message-id"))
        if ids:
            original = ids[0]
            break
    if original is None:  # plain-text bounces quote the original headers
        match = re.search(r"^Message-ID:\s*(<[^<>\s]+>)", "\n".join(acc.texts), re.I | re.M)
        original = match.group(1) if match else None
    return Bounce(original_message_id=original, failed_recipients=failed)


def _dsn_failed(block: Message) -> bool:
    return (raw_header(block, "action") or "").strip().lower() == "failed"


def _dsn_recipient(block: Message) -> str | None:
    raw = raw_header(block, "final-recipient") or raw_header(block, "original-recipient")
    if not raw:
        return None
    return _clean_address(raw.split(";", 1)[-1].strip().strip("<>"))


# ---------------------------------------------------------------------------------------------
# Entry point


def parse_message(
    raw: bytes,
    *,
    case_ref_prefix: str = "TS",
    known_refs_by_message_id: dict[str, str] | None = None,
    max_attachment_bytes: int = 20_000_000,
    max_attachments: int = MAX_ATTACHMENTS,
    own_domain: str | None = None,
    own_addresses: Sequence[str] = (),
) -> ParsedMail:
    """Parse and classify one received message; never raises for a malformed message.

    `own_domain` (MAIL_DOMAIN) and `own_addresses` (MAIL_FROM) recognise our own mail come back
    without its loop header: it is automatic, never answered.
    """
    try:
        parsed = _parse(
            raw, case_ref_prefix, known_refs_by_message_id, max_attachment_bytes, max_attachments
        )
    except Exception as exc:  # e.g. RecursionError on absurd nesting: record, do not crash
        return _unparseable(raw, exc)
    own = own_mail_reasons(parsed.message_id, parsed.from_addr, own_domain, own_addresses)
    if own:
        parsed.automatic_reasons = list(dict.fromkeys([*parsed.automatic_reasons, *own]))
        parsed.automatic = True
    return parsed


def _unparseable(raw: bytes, exc: Exception) -> ParsedMail:
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    found = re.search(rb"^Message-ID:[ \t]*(<[^<>\s]+>)", head, re.IGNORECASE | re.MULTILINE)
    message_id = clean_message_id(found.group(1)) if found else None
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
    max_attachments: int,
) -> ParsedMail:
    # compat32: every header is read raw here anyway (mime.raw_header), and the default
    # policy's header objects cost seconds on a letter of thousands of parts.
    try:
        msg = email.message_from_bytes(raw, policy=email.policy.compat32)
        flat = False
    except RecursionError:  # nested past the stdlib parser's stack: read the parts flat
        msg, flat = flattened(raw, header_block(raw)), True
    hint = text_charset(raw)
    acc = walk(msg, max_attachment_bytes, max_attachments, hint)
    if flat:
        acc.problem("too_deeply_nested")
    subject_raw = raw_header(msg, "subject") or ""
    subject, subject_problems = decode_header_text(subject_raw, hint)
    for problem in subject_problems:
        acc.problem(f"{problem}: Subject")
    from_addr, from_name = _address(raw_header(msg, "from"), acc, "From")
    if len(raw_headers(msg, "from")) > 1:  # which is the sender is not ours to guess: staff see
        acc.problem(f"duplicate_from: {len(raw_headers(msg, 'from'))} From headers, the first kept")
    reply_to, _ = _address(raw_header(msg, "reply-to"), acc, "Reply-To")
    to_raw = " , ".join(raw_to_str(v, hint)[0] for v in raw_headers(msg, "to"))
    to = [a.lower() for _, a in getaddresses([_printable(to_raw)]) if a]

    ids = _message_ids(raw_header(msg, "message-id"))
    message_id = ids[0] if ids else None
    if message_id is None:
        acc.problem("no_message_id")
    elif len(message_id) > THREADING_ID_MAX:  # kept, but never put in a header of ours
        acc.problem(f"message_id_too_long: {len(message_id)} characters")
    in_reply_to = _message_ids(raw_header(msg, "in-reply-to"))
    references = _message_ids(raw_header(msg, "references"))

    bounce = _bounce(msg, acc, from_addr)
    headers = [(k, raw_to_str(str(v))[0]) for k, v in msg.raw_items()]
    reasons = automatic_reasons(headers, from_addr, subject, bounce is not None)

    text = _printable("\n\n".join(t.strip() for t in acc.texts if t.strip()))
    case_ref = _case_ref(
        subject, in_reply_to, references, bounce, case_ref_prefix, known_refs_by_message_id, acc
    ) or (None if bounce else case_ref_in_text(text, case_ref_prefix))
    kind: Kind = "reply" if case_ref else classify_text(subject, text)
    return ParsedMail(
        message_id=message_id,
        from_addr=from_addr,
        from_name=_printable(from_name),
        reply_to=reply_to,
        to=to,
        subject=_printable(subject),
        date=_date(raw_header(msg, "date")),
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
    acc: Walk,
) -> str | None:
    """Subject first (our tag, else a reference typed any way); else the threading headers
    (newest first) against stored IDs. The body is the caller's last resort."""
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
