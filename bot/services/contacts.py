"""Contacts (the people who write to the bot) and the organisations they speak for."""

from __future__ import annotations

from datetime import datetime

from storage.models import Contact, Organisation
from storage.repo import contacts as repo
from storage.unit_of_work import UnitOfWork


async def telegram_contact(
    uow: UnitOfWork, *, user_id: int, chat_id: int | None, name: str, locale: str, now: datetime
) -> tuple[Contact, bool]:
    """The contact of a Telegram user, created on first sight (True when created)."""
    return await repo.get_or_create_contact(
        uow.session, user_id=user_id, chat_id=chat_id, name=name, locale=locale, now=now
    )


async def _fresh(uow: UnitOfWork, contact_id: int | None) -> Contact:
    contact = await uow.session.get(Contact, contact_id)
    if contact is None:
        raise LookupError(f"no contact {contact_id}")
    return contact


async def set_locale(uow: UnitOfWork, contact_id: int | None, locale: str) -> Contact:
    contact = await _fresh(uow, contact_id)
    await repo.set_locale(uow.session, contact, locale)
    return contact


async def organisation_of(
    uow: UnitOfWork, contact_id: int | None
) -> tuple[Contact, Organisation | None]:
    """The contact as stored now, and its organisation (None until it has named one)."""
    contact = await _fresh(uow, contact_id)
    return contact, await repo.organisation_of(uow.session, contact)


async def name_organisation(
    uow: UnitOfWork, contact_id: int | None, name: str, now: datetime
) -> tuple[Contact, Organisation]:
    """The contact's organisation, created with `name` when it has none yet."""
    contact, org = await organisation_of(uow, contact_id)
    if org is None:
        org = await repo.create_organisation(uow.session, contact, name, now)
    return contact, org
