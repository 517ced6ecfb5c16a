"""Queries of applicants: their Telegram contact and their organisation."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import Contact, Organisation


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


async def save_eligibility(
    session: AsyncSession,
    org: Organisation,
    answers: dict[str, Any],
    verdict: dict[str, Any] | None,
    now: datetime | None,
) -> None:
    # A new dict each time: JSON columns notice reassignment, not in-place mutation.
    org.eligibility_answers = dict(answers)
    org.eligibility_verdict = verdict
    org.eligibility_checked_at = now
    session.add(org)
