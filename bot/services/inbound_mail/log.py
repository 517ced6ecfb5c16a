"""Every letter the intake has seen and what became of it (`certdesk email log`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.domain.mail import Disposition, disposition
from storage.models import InboundEmail
from storage.repo import inbound_email as repo
from storage.unit_of_work import UnitOfWork


@dataclass(frozen=True)
class LogEntry:
    id: int
    uid: int | None
    mailbox: str
    message_id: str | None
    from_addr: str | None
    subject: str | None
    received_at: str  # ISO 8601, UTC
    disposition: Disposition
    case_ref: str | None
    problems: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "uid": self.uid,
            "mailbox": self.mailbox,
            "message_id": self.message_id,
            "from": self.from_addr,
            "subject": self.subject,
            "received_at": self.received_at,
            "disposition": self.disposition,
            "case_ref": self.case_ref,
            "problems": self.problems,
        }


async def letter_log(uow: UnitOfWork, limit: int | None = None) -> list[LogEntry]:
    """One entry per letter seen (a duplicate is the very same letter seen again), oldest first."""
    entries = []
    seen: dict[int, tuple[InboundEmail, str | None]] = {}
    for row, ref in await repo.log_rows(uow.session, limit):
        assert row.id is not None
        seen[row.id] = (row, ref)
        # A duplicate shows what became of the first sighting (stored just before it).
        first, first_ref = seen.get(row.duplicate_of or 0, (row, ref))
        entries.append(
            LogEntry(
                id=row.id,
                uid=row.uid,
                mailbox=row.mailbox,
                message_id=row.message_id,
                from_addr=first.from_addr,
                subject=first.subject,
                received_at=row.received_at.isoformat(),
                disposition=disposition(row.status, row.kind),
                case_ref=first_ref,
                problems=list(row.problems or []),
            )
        )
    return entries
