"""Queries of the certificate reminders: what to plan, what is due, who receives it.

Planned reminders are rows of `reminder`, unique on (certificate, rule, due date, lead), inserted
with ON CONFLICT DO NOTHING so planning twice (or on two instances) plans once. The send scan
claims due rows with `FOR UPDATE SKIP LOCKED` (ignored by SQLite, where one instance is assumed)
within a bounded window of `send_on`, so its cost follows what is due, not the table's history.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.domain.reminders import CertificateFacts, OpenNonconformity, PlannedReminder
from storage.models import Certificate, Contact, Nonconformity, Organisation, Reminder
from storage.sql import dialect_name

# Certificates that can still have dates to meet (an expired one may still be restored).
PLANNED_STATUSES = ("valid", "suspended", "expired")


@dataclass(frozen=True)
class Recipient:
    channel: str  # telegram | email
    address: str  # chat id as text, or e-mail address
    locale: str


def facts(cert: Certificate) -> CertificateFacts:
    return CertificateFacts(
        id=cert.id or 0,
        number=cert.number,
        holder=cert.holder,
        status=cert.status,
        decided_on=cert.decided_on,
        expires_on=cert.expires_on,
        stage2_end_on=cert.stage2_end_on,
        last_surveillance_on=cert.last_surveillance_on,
        suspended_until=cert.suspended_until,
    )


async def open_nonconformities(
    session: AsyncSession, certificate_ids: Iterable[int]
) -> dict[int, list[OpenNonconformity]]:
    ids = sorted(set(certificate_ids))
    out: dict[int, list[OpenNonconformity]] = {i: [] for i in ids}
    for i in range(0, len(ids), 500):
        stmt = select(Nonconformity).where(
            col(Nonconformity.certificate_id).in_(ids[i : i + 500]),
            col(Nonconformity.closed_on).is_(None),
        )
        for nc in (await session.exec(stmt)).all():
            out[nc.certificate_id].append(
                OpenNonconformity(nc.id or 0, nc.severity, nc.raised_on, nc.audit_type)
            )
    return out


async def certificates(
    session: AsyncSession, *, number: str | None = None, ids: Iterable[int] | None = None
) -> list[tuple[Certificate, list[OpenNonconformity]]]:
    """Certificates with dates ahead (or one by number, or some by id), with open NCs."""
    stmt = select(Certificate).order_by(Certificate.number)
    if number is not None:
        stmt = stmt.where(Certificate.number == number)
    elif ids is not None:
        stmt = stmt.where(col(Certificate.id).in_(sorted(set(ids))))
    else:
        stmt = stmt.where(col(Certificate.status).in_(PLANNED_STATUSES))
    certs = list((await session.exec(stmt)).all())
    ncs = await open_nonconformities(session, [c.id for c in certs if c.id is not None])
    return [(c, ncs.get(c.id or 0, [])) for c in certs]


async def certificates_page(
    session: AsyncSession, *, after_id: int, limit: int
) -> list[tuple[Certificate, list[OpenNonconformity]]]:
    """The next `limit` certificates with dates ahead, by id after `after_id` (keyset paging:
    each page costs the same however far into the register it is)."""
    stmt = (
        select(Certificate)
        .where(col(Certificate.status).in_(PLANNED_STATUSES), col(Certificate.id) > after_id)
        .order_by(col(Certificate.id))
        .limit(limit)
    )
    certs = list((await session.exec(stmt)).all())
    ncs = await open_nonconformities(session, [c.id for c in certs if c.id is not None])
    return [(c, ncs.get(c.id or 0, [])) for c in certs]


async def insert_planned_many(
    session: AsyncSession, planned: Iterable[tuple[int, PlannedReminder]]
) -> int:
    """Store planned reminders of many certificates, a few multi-row inserts that skip what is
    already planned; returns how many were new."""
    rows = [
        {
            "certificate_id": certificate_id,
            "rule_id": p.item.rule_id,
            "due_on": p.item.due_on,
            "lead_days": p.lead_days,
            "send_on": p.send_on,
        }
        for certificate_id, p in planned
    ]
    if not rows:
        return 0
    insert = pg_insert if dialect_name(session) == "postgresql" else sqlite_insert
    stmt = (
        insert(Reminder)
        .on_conflict_do_nothing(index_elements=["certificate_id", "rule_id", "due_on", "lead_days"])
        .returning(col(Reminder.id))
    )
    # executemany: SQLAlchemy batches the rows into multi-row INSERTs ("insertmanyvalues") with
    # one cached compilation, instead of compiling a statement as large as the page.
    conn = await session.connection()
    return len((await conn.execute(stmt, rows)).all())


async def insert_planned(
    session: AsyncSession, certificate_id: int, planned: Iterable[PlannedReminder]
) -> int:
    """Store one certificate's planned reminders; returns how many were new."""
    return await insert_planned_many(session, ((certificate_id, p) for p in planned))


async def claim_due(
    session: AsyncSession, today: date, *, lookback_days: int, limit: int
) -> list[Reminder]:
    """Unsent reminders due today or in the last `lookback_days`, locked for this transaction."""
    stmt = (
        select(Reminder)
        .where(
            col(Reminder.send_on) <= today,
            col(Reminder.send_on) >= today - timedelta(days=lookback_days),
            col(Reminder.sent_at).is_(None),
            col(Reminder.no_recipient_at).is_(None),
        )
        .order_by(col(Reminder.send_on), col(Reminder.id))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list((await session.exec(stmt)).all())


async def mark_sent(session: AsyncSession, reminder: Reminder, now: datetime) -> None:
    reminder.sent_at = now
    session.add(reminder)


async def mark_no_recipient(session: AsyncSession, reminder: Reminder, now: datetime) -> None:
    """Nobody could receive it (staff were alerted): done with, but never counted as sent."""
    reminder.no_recipient_at = now
    session.add(reminder)


async def drop(session: AsyncSession, reminder_id: int) -> None:
    """Remove a reminder whose date no longer stands (surveillance done, NC closed …)."""
    await session.exec(delete(Reminder).where(col(Reminder.id) == reminder_id))  # type: ignore[call-overload]


async def recipients(
    session: AsyncSession, organisation_id: int | None, default_locale: str
) -> list[Recipient]:
    """The organisation's Telegram chats and e-mail addresses, each in its contact's language."""
    if organisation_id is None:
        return []
    org = await session.get(Organisation, organisation_id)
    org_locale = org.locale if org is not None else default_locale
    stmt = (
        select(Contact).where(Contact.organisation_id == organisation_id).order_by(col(Contact.id))
    )
    out: list[Recipient] = []
    seen: set[tuple[str, str]] = set()
    for c in (await session.exec(stmt)).all():
        locale = c.locale or org_locale
        for channel, address in (
            ("telegram", str(c.telegram_chat_id) if c.telegram_chat_id else None),
            ("email", c.email),
        ):
            if address and (channel, address) not in seen:
                seen.add((channel, address))
                out.append(Recipient(channel, address, locale))
    return out


async def reminders_of(session: AsyncSession, certificate_id: int) -> list[Reminder]:
    stmt = (
        select(Reminder)
        .where(Reminder.certificate_id == certificate_id)
        .order_by(col(Reminder.send_on), col(Reminder.id))
    )
    return list((await session.exec(stmt)).all())


async def certificate_numbers(session: AsyncSession, organisation_id: int | None) -> list[str]:
    """Numbers of the organisation's certificates still in force (valid or suspended)."""
    if organisation_id is None:
        return []
    stmt = (
        select(Certificate.number)
        .where(
            Certificate.organisation_id == organisation_id,
            col(Certificate.status).in_(("valid", "suspended")),
        )
        .order_by(Certificate.number)
    )
    return list((await session.exec(stmt)).all())
