"""Queries of applicants: their Telegram contact and their organisation."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import Contact, Organisation
from storage.sql import table_of


async def contact_by_telegram_id(session: AsyncSession, user_id: int) -> Contact | None:
    return (await session.exec(select(Contact).where(Contact.telegram_user_id == user_id))).first()


async def get_or_create_contact(
    session: AsyncSession,
    *,
    user_id: int,
    chat_id: int | None,
    name: str | None,
    locale: str,
    now: datetime,
) -> tuple[Contact, bool]:
    """The contact of a Telegram user, created on first sight with `locale`; (contact, created)."""
    contact = await contact_by_telegram_id(session, user_id)
    if contact is not None:
        if chat_id is not None and contact.telegram_chat_id != chat_id:
            contact.telegram_chat_id = chat_id
            session.add(contact)
        return contact, False
    contact = Contact(
        telegram_user_id=user_id, telegram_chat_id=chat_id, name=name, locale=locale, created_at=now
    )
    session.add(contact)
    await session.flush()
    return contact, True


async def set_locale(session: AsyncSession, contact: Contact, locale: str) -> None:
    contact.locale = locale
    session.add(contact)


async def organisation_of(session: AsyncSession, contact: Contact) -> Organisation | None:
    if contact.organisation_id is None:
        return None
    return await session.get(Organisation, contact.organisation_id)


async def create_organisation(
    session: AsyncSession, contact: Contact, name: str, now: datetime
) -> Organisation:
    """A new organisation for this contact (the contact speaks for it from now on)."""
    org = Organisation(name=name, locale=contact.locale, created_at=now)
    session.add(org)
    await session.flush()
    contact.organisation_id = org.id
    session.add(contact)
    return org


# The eligibility check's hot path (one answer per update): Core statements on the columns it
# needs, built once (a reused statement keeps its cache key), without loading and flushing the
# ORM row each time.
_ORG = table_of(Organisation)
_ANSWERS = sa.select(_ORG.c.eligibility_answers).where(_ORG.c.id == sa.bindparam("org_id"))
_SET_ELIGIBILITY = (
    sa.update(_ORG)
    .where(_ORG.c.id == sa.bindparam("org_id"))
    .values(
        eligibility_answers=sa.bindparam("e_answers", type_=_ORG.c.eligibility_answers.type),
        eligibility_verdict=sa.bindparam("e_verdict", type_=_ORG.c.eligibility_verdict.type),
        eligibility_checked_at=sa.bindparam("e_at", type_=_ORG.c.eligibility_checked_at.type),
    )
)


async def eligibility_answers(session: AsyncSession, org_id: int) -> dict[str, Any] | None:
    """The organisation's saved answers ({} when none yet); None when there is no such row."""
    conn = await session.connection()
    row = (await conn.execute(_ANSWERS, {"org_id": org_id})).first()
    return None if row is None else dict(row[0] or {})


def eligibility_update(
    org_id: int,
    answers: dict[str, Any],
    verdict: dict[str, Any] | None,
    now: datetime | None,
) -> tuple[sa.Update, dict[str, Any]]:
    """The write of answers and verdict (None: not decided yet), as (statement, parameters) to
    run or to stage."""
    params = {"org_id": org_id, "e_answers": dict(answers), "e_verdict": verdict, "e_at": now}
    return _SET_ELIGIBILITY, params
