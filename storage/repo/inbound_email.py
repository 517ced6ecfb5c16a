"""Queries of received e-mails (`inbound_email`) and of what was answered to their senders."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import defer
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.domain.mail import DUPLICATE
from storage.models import Case, InboundEmail, InboundStatus, OutboxMessage
from storage.repo.outbox import address_key
from storage.sql import among, dialect_name


async def states_by_uid(
    session: AsyncSession, mailbox: str, uidvalidity: int, uids: Sequence[int]
) -> dict[int, tuple[int, str]]:
    """(row id, status) of the rows already stored for these UIDs of one mailbox, by UID.

    Ids and statuses only: the raw letters stay in the database until one is acted upon.
    """
    if not uids:
        return {}
    query = select(InboundEmail.uid, InboundEmail.id, InboundEmail.status).where(
        InboundEmail.mailbox == mailbox,
        InboundEmail.uidvalidity == uidvalidity,
        among(session, col(InboundEmail.uid), uids),
    )
    return {
        uid: (row_id, status)
        for uid, row_id, status in (await session.exec(query)).all()
        if uid is not None and row_id is not None
    }


async def by_key(session: AsyncSession, message_key: str) -> InboundEmail | None:
    query = select(InboundEmail).where(InboundEmail.message_key == message_key)
    return (await session.exec(query)).first()


async def store_raw(
    session: AsyncSession,
    *,
    mailbox: str,
    uidvalidity: int,
    uid: int,
    message_id: str | None,
    message_key: str,
    raw: bytes,
    now: datetime,
    internal_date: datetime | None = None,
) -> InboundEmail | None:
    """Insert the raw message; None when this UID or these very bytes are already stored.

    INSERT … ON CONFLICT DO NOTHING: a second intake process (or a restart racing a move) can
    neither store a letter twice nor fail on the unique keys.
    """
    insert = pg_insert if dialect_name(session) == "postgresql" else sqlite_insert
    stmt = (
        insert(InboundEmail)
        .values(
            mailbox=mailbox,
            uidvalidity=uidvalidity,
            uid=uid,
            message_id=message_id,
            message_key=message_key,
            raw=raw,
            received_at=now,
            internal_date=internal_date,
            status=InboundStatus.STORED.value,
        )
        .on_conflict_do_nothing()
        .returning(col(InboundEmail.id))
    )
    inserted = (await session.exec(stmt)).first()
    if inserted is None:
        return None
    return await session.get(InboundEmail, inserted[0])


async def store_duplicate(
    session: AsyncSession,
    *,
    mailbox: str,
    uidvalidity: int,
    uid: int,
    message_id: str | None,
    message_key: str,
    now: datetime,
) -> bool:
    """Record the very same letter seen again under this UID (True), unless the UID is stored.

    The row keeps no bytes; it points at the first one and shows what became of it.
    """
    original = await by_key(session, message_key)
    if original is None:
        return False  # not the bytes: this UID was stored by another worker a moment ago
    sighting = hashlib.sha256(f"{mailbox}\0{uidvalidity}\0{uid}".encode()).hexdigest()
    insert = pg_insert if dialect_name(session) == "postgresql" else sqlite_insert
    stmt = (
        insert(InboundEmail)
        .values(
            mailbox=mailbox,
            uidvalidity=uidvalidity,
            uid=uid,
            message_id=message_id,
            message_key=f"dup:{sighting}",
            raw=b"",
            received_at=now,
            status=DUPLICATE,
            duplicate_of=original.id,
            case_id=original.case_id,
            from_addr=original.from_addr,
            subject=original.subject,
        )
        .on_conflict_do_nothing()
        .returning(col(InboundEmail.id))
    )
    return (await session.exec(stmt)).first() is not None


def db_reason(exc: SQLAlchemyError) -> str:
    """What the database said, in one short line: its error class and first line, never the
    statement or its parameters (they hold the letter)."""
    orig = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = str(orig).strip().splitlines() if isinstance(exc, DBAPIError) else []
    first = lines[0] if lines else ""
    return f"{type(orig).__name__}: {first}"[:300] if first else type(orig).__name__


async def log_rows(
    session: AsyncSession, limit: int | None = None
) -> list[tuple[InboundEmail, str | None]]:
    """Every letter seen, oldest first, with the reference of its case (raw bytes not loaded)."""
    query = (
        select(InboundEmail, Case.ref)
        .outerjoin(Case, col(Case.id) == col(InboundEmail.case_id))
        .options(defer(InboundEmail.raw))  # type: ignore[arg-type]
        .order_by(col(InboundEmail.id))
    )
    if limit is not None:
        query = query.limit(limit)
    return [(row, ref) for row, ref in (await session.exec(query)).all()]


async def senders_of_case(session: AsyncSession, case_id: int) -> list[str]:
    """The From addresses of the letters that opened the case or joined it as the complainant's."""
    query = (
        select(InboundEmail.from_addr)
        .where(
            InboundEmail.case_id == case_id,
            col(InboundEmail.kind).in_(["appeal", "complaint", "dispute", "reply"]),
            col(InboundEmail.from_addr).is_not(None),
        )
        .distinct()
    )
    return [a for a in (await session.exec(query)).all() if a]


async def lock(session: AsyncSession, inbound_id: int) -> InboundEmail:
    """The row, locked until commit (PostgreSQL), so two workers never act on one letter."""
    query = select(InboundEmail).where(InboundEmail.id == inbound_id).with_for_update()
    return (await session.exec(query)).one()


async def pending_ids(session: AsyncSession, limit: int = 100) -> list[int]:
    """Ids of letters stored but not yet acted upon (a crash came between the two commits)."""
    query = (
        select(InboundEmail.id)
        .where(InboundEmail.status == InboundStatus.STORED.value)
        .order_by(col(InboundEmail.id))
        .limit(limit)
    )
    return [row_id for row_id in (await session.exec(query)).all() if row_id is not None]


async def automatic_answers_since(session: AsyncSession, recipient: str, since: datetime) -> int:
    """How many automatic e-mails (payload auto_reply) were queued to `recipient` since then."""
    # By the indexed key of the recipient (ix_outbox_message_auto_reply_created): the cost is
    # that sender's last hour, not the outbox.
    query = select(func.count()).where(
        OutboxMessage.auto_reply_key == address_key(recipient),
        OutboxMessage.created_at >= since,
    )
    return (await session.exec(query)).one()


async def outbox_by_message_id(session: AsyncSession, message_id: str) -> OutboxMessage | None:
    """Our sent e-mail with this Message-ID (what a bounce returns)."""
    query = select(OutboxMessage).where(OutboxMessage.email_message_id == message_id)
    return (await session.exec(query)).first()


async def status_counts(session: AsyncSession) -> dict[str, int]:
    query = select(InboundEmail.status, func.count()).group_by(InboundEmail.status)
    return {status: n for status, n in (await session.exec(query)).all()}


HOUR = timedelta(hours=1)
