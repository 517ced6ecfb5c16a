"""A received letter as the parser leaves it (handlers/email/parse.py): pure data, no I/O.

It lives here, below the services, so the use case "act on a stored letter"
(bot/services/inbound_mail) can take it without importing the adapter that makes it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Kind = Literal["appeal", "complaint", "dispute", "reply", "enquiry"]


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

    @property
    def thread_id(self) -> str | None:
        """The Message-ID to answer and thread by: None when too long for a header line."""
        mid = self.message_id
        return mid if mid and len(mid) <= THREADING_ID_MAX else None

    def thread_references(self) -> list[str]:
        """References for an answer: theirs and their Message-ID, none too long for a header."""
        refs = [r for r in self.references if len(r) <= THREADING_ID_MAX]
        if self.thread_id and self.thread_id not in refs:
            refs.append(self.thread_id)
        return refs

    @property
    def sender(self) -> str | None:
        """Where an answer goes: Reply-To when given, else From."""
        return self.reply_to or self.from_addr

    def unprocessable(self) -> str | None:
        """Why the letter cannot be acted upon (None: it can)."""
        unparseable = [p for p in self.problems if p.startswith("unparseable")]
        if unparseable:
            return unparseable[0]
        if self.sender is None:
            return "no sender address"
        return None

    def to_json(self) -> dict[str, Any]:
        """Always valid UTF-8 once encoded: no lone surrogates (8-bit bytes the stdlib parser
        smuggles through) survive, whichever field they hide in."""
        cleaned: dict[str, Any] = valid_text(self._json())
        return cleaned

    def _json(self) -> dict[str, Any]:
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


def valid_text(value: Any) -> Any:
    """`value` with every string made encodable as UTF-8 (a lone surrogate becomes U+FFFD)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
            return value
        except UnicodeEncodeError:
            data = value.encode("utf-8", "surrogateescape" if _escaped(value) else "replace")
            return data.decode("utf-8", "replace")
    if isinstance(value, dict):
        return {key: valid_text(item) for key, item in value.items()}
    if isinstance(value, list):
        return [valid_text(item) for item in value]
    return value


def _escaped(value: str) -> bool:
    """Only surrogateescape's range (U+DC80–U+DCFF) among the surrogates: bytes to read back."""
    return all(not "\ud800" <= c <= "\udfff" or "\udc80" <= c <= "\udcff" for c in value)


# The problem recorded for a letter too large to fetch whole (only its header is stored).
TOO_LARGE = "too_large"


def too_large_problem(size: int, limit: int) -> str:
    return f"{TOO_LARGE}: {size} bytes, over the limit of {limit}; only its header was kept"


def too_large_sizes(problem: str) -> tuple[int, int] | None:
    """(size, limit) of a too_large problem, None for any other problem."""
    match = re.match(rf"{TOO_LARGE}: (\d+) bytes, over the limit of (\d+)", problem)
    return (int(match.group(1)), int(match.group(2))) if match else None


def too_large(problems: list[str] | None) -> str | None:
    """The too-large problem among a stored letter's problems, if it has one."""
    return next((p for p in problems or [] if p.startswith(TOO_LARGE)), None)


# A letter seen again (the very same bytes, another UID): its row has this status, no bytes.
DUPLICATE = "duplicate"
# RFC 5322 lines are at most 998 characters: a longer Message-ID cannot go into our headers.
THREADING_ID_MAX = 900

Disposition = Literal[
    "case", "reply", "enquiry", "automatic", "bounce", "quarantined", "duplicate", "pending"
]
_CASE_KINDS = ("appeal", "complaint", "dispute")


def disposition(status: str, kind: str | None) -> Disposition:
    """What the intake made of a stored letter, as `certdesk email log` shows it."""
    if status == DUPLICATE:
        return "duplicate"
    if status == "quarantined":
        return "quarantined"
    if status == "stored":
        return "pending"  # stored, not yet acted upon (a crash or a deferred letter)
    if kind in _CASE_KINDS:
        return "case"
    if kind in ("reply", "enquiry", "automatic", "bounce"):
        return kind  # type: ignore[return-value]
    return "enquiry"
