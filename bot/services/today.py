"""What needs doing today, for the console's home page: deadlines due and overdue, new cases,
enquiries, documents, messages that failed, staff alerts that reached no one, reminders that
would reach no one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from email.parser import BytesHeaderParser
from email.policy import default as default_policy

from bot.desk import Desk
from bot.domain.cases import Status
from bot.outbox import admin
from storage.models import Case, Certificate, Document, InboundEmail, OutboxMessage, Reminder
from storage.repo import console as repo
from storage.repo import reminders as reminder_repo
from storage.repo.console import DueRow
from storage.unit_of_work import UnitOfWork

DUE_AHEAD_DAYS = 7  # deadlines shown from a week ahead
REMINDERS_AHEAD_DAYS = 30


@dataclass(frozen=True)
class Letter:
    """An enquiry as staff see it in a list: who, what, when."""

    id: int
    sender: str
    subject: str
    received: date


@dataclass(frozen=True)
class Today:
    day: date
    deadlines: list[DueRow]
    new_cases: list[Case]
    enquiries: list[Letter]
    documents: list[tuple[Document, str]]  # the document and its application's reference
    failed: list[admin.Problem]
    unrouted: list[OutboxMessage]
    reminders_no_recipient: list[tuple[Reminder, Certificate]]


def letter_of(desk: Desk, row: InboundEmail) -> Letter:
    """The sender and subject from the stored letter's header (the body is not needed)."""
    header = BytesHeaderParser(policy=default_policy).parsebytes(row.raw)
    local = row.received_at.astimezone(desk.clock.local_now().tzinfo).date()
    return Letter(row.id or 0, str(header.get("from", "")), str(header.get("subject", "")), local)


async def today(desk: Desk, uow: UnitOfWork) -> Today:
    session = uow.session
    day = desk.clock.today()
    reminders = []
    for reminder, cert in await repo.reminders_unsent_by(
        session, day + timedelta(days=REMINDERS_AHEAD_DAYS)
    ):
        found = await reminder_repo.recipients(
            session, cert.organisation_id, desk.settings.default_locale
        )
        if not found:
            reminders.append((reminder, cert))
    return Today(
        day=day,
        deadlines=await repo.due_by(session, day + timedelta(days=DUE_AHEAD_DAYS)),
        new_cases=list(await repo.new_cases(session, Status.RECEIVED)),
        enquiries=[letter_of(desk, row) for row in await repo.enquiries(session)],
        documents=list(await repo.documents_to_review(session)),
        failed=await admin.problems(desk.sessions),
        unrouted=list(await repo.unrouted_staff_messages(session)),
        reminders_no_recipient=reminders,
    )


__all__ = ["DUE_AHEAD_DAYS", "Letter", "Today", "letter_of", "today"]
