"""Queries of certified organisations: their credit code, their contacts, link codes, change
reports."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import ChangeReport, Contact, LinkAttempt, LinkCode, Organisation


async def by_uscc(session: AsyncSession, uscc: str) -> Organisation | None:
    return (await session.exec(select(Organisation).where(Organisation.uscc == uscc))).first()


async def create(
    session: AsyncSession, name: str, uscc: str | None, locale: str, now: datetime
) -> Organisation:
    org = Organisation(name=name, uscc=uscc, locale=locale, created_at=now)
    session.add(org)
    await session.flush()
    return org


async def contacts(session: AsyncSession, organisation_id: int) -> list[Contact]:
    stmt = select(Contact).where(Contact.organisation_id == organisation_id)
    return list((await session.exec(stmt.order_by(col(Contact.id)))).all())


async def add_email_contact(
    session: AsyncSession, organisation_id: int, email: str, locale: str, now: datetime
) -> bool:
    """An e-mail contact of the organisation, once per address (compared lower-cased)."""
    stmt = select(Contact).where(
        Contact.organisation_id == organisation_id,
        func.lower(col(Contact.email)) == email.lower(),
    )
    if (await session.exec(stmt)).first() is not None:
        return False
    contact = Contact(organisation_id=organisation_id, email=email, locale=locale, created_at=now)
    session.add(contact)
    await session.flush()
    return True


# --- link codes ---------------------------------------------------------------------------------


async def add_link_code(
    session: AsyncSession,
    organisation_id: int,
    code_hash: str,
    created_by: str,
    now: datetime,
    expires_at: datetime,
) -> LinkCode:
    row = LinkCode(organisation_id=organisation_id, code_hash=code_hash, created_by=created_by,
                   created_at=now, expires_at=expires_at)  # fmt: skip
    session.add(row)
    await session.flush()
    return row


async def use_link_code(
    session: AsyncSession, code_hash: str, contact_id: int, now: datetime
) -> LinkCode | None:
    """Mark an unused, unexpired code used by this contact; None when there is no such code.

    One UPDATE … WHERE used_at IS NULL: of two contacts sending the same code at once, one wins.
    """
    table = LinkCode.__table__  # type: ignore[attr-defined]
    stmt = (
        sa.update(table)
        .where(
            table.c.code_hash == code_hash,
            table.c.used_at.is_(None),
            table.c.expires_at > now,
        )
        .values(used_at=now, used_by_contact_id=contact_id)
        .returning(table.c.id)
    )
    found = (await session.exec(stmt)).first()  # type: ignore[call-overload]
    if found is None:
        return None
    return await session.get(LinkCode, found[0])


async def count_failures(session: AsyncSession, contact_id: int, since: datetime) -> int:
    stmt = select(func.count()).where(
        LinkAttempt.contact_id == contact_id, col(LinkAttempt.at) > since
    )
    return int((await session.exec(stmt)).one())


async def add_failure(session: AsyncSession, contact_id: int, now: datetime) -> None:
    session.add(LinkAttempt(contact_id=contact_id, at=now))
    await session.flush()


def failure_window_start(now: datetime, hours: int) -> datetime:
    return now - timedelta(hours=hours)


# --- change reports -----------------------------------------------------------------------------


async def ref_exists(session: AsyncSession, ref: str) -> bool:
    stmt = select(ChangeReport.id).where(ChangeReport.ref == ref)
    return (await session.exec(stmt)).first() is not None


async def report_by_message(
    session: AsyncSession, chat_id: int, message_id: int
) -> ChangeReport | None:
    stmt = select(ChangeReport).where(
        ChangeReport.telegram_chat_id == chat_id, ChangeReport.telegram_message_id == message_id
    )
    return (await session.exec(stmt)).first()


async def add_report(session: AsyncSession, report: ChangeReport) -> ChangeReport:
    session.add(report)
    await session.flush()
    return report


async def by_usccs(session: AsyncSession, codes: list[str]) -> list[Organisation]:
    """The organisations with these credit codes (an import's page, in one query)."""
    if not codes:
        return []
    stmt = select(Organisation).where(col(Organisation.uscc).in_(codes))
    return list((await session.exec(stmt)).all())


async def by_ids(session: AsyncSession, ids: list[int]) -> list[Organisation]:
    if not ids:
        return []
    return list(
        (await session.exec(select(Organisation).where(col(Organisation.id).in_(ids)))).all()
    )


async def email_contacts(session: AsyncSession, ids: list[int]) -> set[tuple[int, str]]:
    """(organisation id, lower-cased address) of the e-mail contacts these organisations have."""
    if not ids:
        return set()
    stmt = select(Contact.organisation_id, Contact.email).where(
        col(Contact.organisation_id).in_(ids), col(Contact.email).is_not(None)
    )
    rows = (await session.exec(stmt)).all()
    return {(int(org or 0), str(email).lower()) for org, email in rows}


async def insert_many(session: AsyncSession, rows: list[dict[str, Any]]) -> list[int]:
    """New organisations in multi-row INSERTs; their ids, in order."""
    from storage.repo.certificates import inserted

    return await inserted(session, Organisation, rows)


async def add_email_contacts(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """E-mail contacts known to be new (the import checked email_contacts), in a few INSERTs."""
    from storage.repo.certificates import inserted

    await inserted(session, Contact, rows)
