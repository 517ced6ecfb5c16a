"""Queries of the staff console: the register, what needs doing today, a case's messages."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

import sqlalchemy as sa
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import (
    Application,
    ApplicationEvent,
    Case,
    Certificate,
    Channel,
    Contact,
    Deadline,
    Document,
    DocumentStatus,
    InboundEmail,
    Organisation,
    OutboxMessage,
    OutboxStatus,
    Reminder,
    StoredFile,
)

LIMIT = 200


@dataclass(frozen=True)
class RegisterFilter:
    kind: str | None = None
    status: str | None = None
    overdue_on: date | None = None  # only cases with an open deadline before this day
    text: str | None = None
    assignees: tuple[str, ...] | None = None  # () : unassigned only; else any of these ids
    received_from: datetime | None = None
    received_before: datetime | None = None


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped.lower()}%"


async def register(
    session: AsyncSession, where: RegisterFilter, limit: int = LIMIT
) -> Sequence[tuple[Case, date | None]]:
    """Cases newest first, each with its nearest open deadline, filtered."""
    nearest = (
        select(col(Deadline.case_id).label("case_id"), func.min(Deadline.due_on).label("due"))
        .where(col(Deadline.case_id).is_not(None), col(Deadline.closed_at).is_(None))
        .group_by(col(Deadline.case_id))
        .subquery()
    )
    query = select(Case, nearest.c.due).outerjoin(nearest, nearest.c.case_id == col(Case.id))
    if where.kind:
        query = query.where(Case.kind == where.kind)
    if where.status:
        query = query.where(Case.status == where.status)
    if where.overdue_on is not None:
        query = query.where(nearest.c.due < where.overdue_on)
    if where.assignees is not None:
        query = query.where(
            col(Case.assignee).in_(where.assignees)
            if where.assignees
            else col(Case.assignee).is_(None)
        )
    if where.received_from is not None:
        query = query.where(col(Case.created_at) >= where.received_from)
    if where.received_before is not None:
        query = query.where(col(Case.created_at) < where.received_before)
    if where.text:
        pattern = _like(where.text.strip())
        fields = (
            Case.ref,
            Case.subject,
            Case.description,
            Case.complainant_name,
            Case.complainant_email,
            Case.concerns_certificate_no,
        )
        query = query.where(
            sa.or_(
                *(func.lower(sa.func.coalesce(f, "")).like(pattern, escape="\\") for f in fields)
            )
        )
    query = query.order_by(col(Case.created_at).desc(), col(Case.id).desc()).limit(limit)
    return (await session.exec(query)).all()


async def deadlines_of_cases(session: AsyncSession, case_ids: Sequence[int]) -> Sequence[Deadline]:
    if not case_ids:
        return []
    query = (
        select(Deadline)
        .where(col(Deadline.case_id).in_(list(case_ids)))
        .order_by(col(Deadline.due_on), col(Deadline.id))
    )
    return (await session.exec(query)).all()


@dataclass(frozen=True)
class DueRow:
    deadline: Deadline
    case_ref: str | None
    case_kind: str | None
    certificate_no: str | None


async def due_by(session: AsyncSession, until: date, limit: int = LIMIT) -> list[DueRow]:
    """Open deadlines due on or before `until` (overdue ones included), earliest first."""
    query = (
        select(Deadline, Case.ref, Case.kind, Certificate.number)
        .outerjoin(Case, col(Case.id) == col(Deadline.case_id))
        .outerjoin(Certificate, col(Certificate.id) == col(Deadline.certificate_id))
        .where(col(Deadline.closed_at).is_(None), col(Deadline.due_on) <= until)
        .order_by(col(Deadline.due_on), col(Deadline.id))
        .limit(limit)
    )
    return [DueRow(d, ref, kind, no) for d, ref, kind, no in (await session.exec(query)).all()]


async def new_cases(session: AsyncSession, received_status: str) -> Sequence[Case]:
    query = (
        select(Case)
        .where(Case.status == received_status, col(Case.closed_at).is_(None))
        .order_by(col(Case.created_at), col(Case.id))
        .limit(LIMIT)
    )
    return (await session.exec(query)).all()


async def enquiries(session: AsyncSession) -> Sequence[InboundEmail]:
    """Letters the intake passed to staff as enquiries, not sorted yet."""
    query = (
        select(InboundEmail)
        .where(
            InboundEmail.kind == "enquiry",
            col(InboundEmail.case_id).is_(None),
            col(InboundEmail.sorted_at).is_(None),
        )
        .order_by(col(InboundEmail.received_at).desc())
        .limit(LIMIT)
    )
    return (await session.exec(query)).all()


async def sorted_enquiries(session: AsyncSession, limit: int = 50) -> Sequence[InboundEmail]:
    """Enquiries staff sorted, the latest first."""
    query = (
        select(InboundEmail)
        .where(InboundEmail.kind == "enquiry", col(InboundEmail.sorted_at).is_not(None))
        .order_by(col(InboundEmail.sorted_at).desc(), col(InboundEmail.id).desc())
        .limit(limit)
    )
    return (await session.exec(query)).all()


async def documents_to_review(session: AsyncSession) -> Sequence[tuple[Document, str]]:
    query = (
        select(Document, Application.ref)
        .join(Application, col(Application.id) == col(Document.application_id))
        .where(Document.status == DocumentStatus.RECEIVED.value)
        .order_by(col(Document.uploaded_at), col(Document.id))
        .limit(LIMIT)
    )
    return (await session.exec(query)).all()


async def unrouted_staff_messages(session: AsyncSession) -> Sequence[OutboxMessage]:
    """Staff messages that reached no staff channel: still on the `staff` channel."""
    query = (
        select(OutboxMessage)
        .where(
            OutboxMessage.channel == Channel.STAFF.value,
            col(OutboxMessage.status).in_([OutboxStatus.QUEUED.value, OutboxStatus.FAILED.value]),
        )
        .order_by(col(OutboxMessage.id).desc())
        .limit(LIMIT)
    )
    return (await session.exec(query)).all()


async def reminders_unsent_by(
    session: AsyncSession, until: date
) -> Sequence[tuple[Reminder, Certificate]]:
    query = (
        select(Reminder, Certificate)
        .join(Certificate, col(Certificate.id) == col(Reminder.certificate_id))
        .where(col(Reminder.sent_at).is_(None), col(Reminder.send_on) <= until)
        .order_by(col(Reminder.send_on), col(Reminder.id))
        .limit(LIMIT)
    )
    return (await session.exec(query)).all()


async def outbox_of_case(session: AsyncSession, case_id: int) -> Sequence[OutboxMessage]:
    query = (
        select(OutboxMessage)
        .where(OutboxMessage.case_id == case_id)
        .order_by(col(OutboxMessage.created_at), col(OutboxMessage.id))
    )
    return (await session.exec(query)).all()


async def letters_of_case(session: AsyncSession, case_id: int) -> Sequence[InboundEmail]:
    query = (
        select(InboundEmail)
        .where(InboundEmail.case_id == case_id)
        .order_by(col(InboundEmail.received_at), col(InboundEmail.id))
    )
    return (await session.exec(query)).all()


async def stored_file(session: AsyncSession, file_id: int) -> StoredFile | None:
    return await session.get(StoredFile, file_id)


async def outbox_row(session: AsyncSession, message_id: int) -> OutboxMessage | None:
    query = select(OutboxMessage).where(OutboxMessage.id == message_id).with_for_update()
    return (await session.exec(query)).first()


async def cancel_message(
    session: AsyncSession, message_id: int, reason: str, now: datetime
) -> OutboxMessage | None:
    """Queued or failed → cancelled (the worker claims only queued rows); None if it was not."""
    row = await outbox_row(session, message_id)
    if row is None or row.status not in (OutboxStatus.QUEUED.value, OutboxStatus.FAILED.value):
        return None
    row.status = OutboxStatus.CANCELLED.value
    row.last_error = reason
    row.claimed_by = None
    row.next_attempt_at = now
    session.add(row)
    await session.flush()
    return row


# --- applications -----------------------------------------------------------------------------


async def applications(
    session: AsyncSession, stage: str | None = None, limit: int = LIMIT
) -> Sequence[tuple[Application, Organisation]]:
    """Applications, the latest moved first, with their organisation."""
    query = select(Application, Organisation).join(
        Organisation, col(Organisation.id) == col(Application.organisation_id)
    )
    if stage:
        query = query.where(Application.stage == stage)
    query = query.order_by(col(Application.updated_at).desc(), col(Application.id).desc())
    return (await session.exec(query.limit(limit))).all()


async def application_by_ref(
    session: AsyncSession, ref: str, lock: bool = False
) -> Application | None:
    query = select(Application).where(Application.ref == ref)
    if lock:
        query = query.with_for_update()
    return (await session.exec(query)).first()


async def application_parties(
    session: AsyncSession, app: Application
) -> tuple[Organisation, Contact]:
    org = await session.get(Organisation, app.organisation_id)
    contact = await session.get(Contact, app.contact_id)
    assert org is not None and contact is not None
    return org, contact


async def contacts_of(session: AsyncSession, organisation_id: int) -> Sequence[Contact]:
    query = select(Contact).where(Contact.organisation_id == organisation_id)
    return (await session.exec(query.order_by(col(Contact.id)))).all()


async def application_events(
    session: AsyncSession, application_id: int
) -> Sequence[ApplicationEvent]:
    query = (
        select(ApplicationEvent)
        .where(ApplicationEvent.application_id == application_id)
        .order_by(col(ApplicationEvent.id))
    )
    return (await session.exec(query)).all()


async def documents_of(session: AsyncSession, application_id: int) -> Sequence[Document]:
    """Every upload of the application, replaced ones too, oldest first."""
    query = select(Document).where(Document.application_id == application_id)
    return (await session.exec(query.order_by(col(Document.id)))).all()


async def add_application_event(
    session: AsyncSession,
    application_id: int,
    *,
    stage: str,
    now: datetime,
    actor: str,
    type: str,
    note: str | None = None,
    data: dict[str, object] | None = None,
) -> ApplicationEvent:
    event = ApplicationEvent(
        application_id=application_id,
        stage=stage,
        at=now,
        note=note,
        actor=actor,
        type=type,
        data=data,
    )
    session.add(event)
    await session.flush()
    return event


__all__ = [
    "DueRow",
    "RegisterFilter",
    "add_application_event",
    "application_by_ref",
    "application_events",
    "application_parties",
    "applications",
    "cancel_message",
    "contacts_of",
    "deadlines_of_cases",
    "documents_of",
    "documents_to_review",
    "due_by",
    "enquiries",
    "letters_of_case",
    "new_cases",
    "outbox_of_case",
    "outbox_row",
    "register",
    "reminders_unsent_by",
    "sorted_enquiries",
    "stored_file",
    "unrouted_staff_messages",
]
