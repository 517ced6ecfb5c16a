"""Contacts (the people who write to the bot) and the organisations they speak for."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.desk import Desk
from bot.domain import certificates as rules
from storage.models import Contact, Organisation
from storage.repo import certificates as cert_repo
from storage.repo import contacts as repo
from storage.repo import organisations as org_repo
from storage.repo import reminders as reminder_repo
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


# --- one-time link codes (staff give one to the organisation; its contact sends /link CODE) ----


@dataclass(frozen=True)
class IssuedCode:
    code: str  # shown once: only its hash is stored
    number: str
    holder: str
    expires_at: datetime


@dataclass(frozen=True)
class LinkOutcome:
    status: str  # linked | wrong | locked
    holder: str = ""
    numbers: tuple[str, ...] = ()
    attempts_left: int = 0


async def issue_link_code(desk: Desk, uow: UnitOfWork, number: str, created_by: str) -> IssuedCode:
    """A new code linking a Telegram contact to the holder of certificate `number`."""
    matches = [c for c in await cert_repo.find(uow.session, number)
               if c.number.lower() == number.strip().lower()]  # fmt: skip
    if not matches:
        raise LookupError(f"no certificate numbered {number!r}")
    cert = matches[0]
    if cert.organisation_id is None:
        raise LookupError(f"certificate {cert.number} has no organisation: import it again")
    now = desk.clock.now()
    code = rules.new_link_code()
    expires = now + timedelta(days=rules.LINK_VALID_DAYS)
    await org_repo.add_link_code(
        uow.session, cert.organisation_id, rules.link_code_hash(code), created_by, now, expires
    )
    return IssuedCode(code, cert.number, cert.holder, expires)


async def link_with_code(
    desk: Desk, uow: UnitOfWork, contact_id: int | None, text: str
) -> LinkOutcome:
    """Link the contact to the code's organisation; a wrong code counts against the contact's
    attempts (LINK_MAX_FAILURES a day), and a locked contact is not even checked."""
    contact = await _fresh(uow, contact_id)
    now, session = desk.clock.now(), uow.session
    since = org_repo.failure_window_start(now, rules.LINK_FAILURE_WINDOW_HOURS)
    failures = await org_repo.count_failures(session, contact.id or 0, since)
    if failures >= rules.LINK_MAX_FAILURES:
        return LinkOutcome("locked")
    code = rules.normalise_link_code(text)
    used = None
    if code is not None:
        used = await org_repo.use_link_code(
            session, rules.link_code_hash(code), contact.id or 0, now
        )
    if used is None:
        await org_repo.add_failure(session, contact.id or 0, now)
        left = rules.LINK_MAX_FAILURES - failures - 1
        return LinkOutcome("locked" if left <= 0 else "wrong", attempts_left=max(left, 0))
    contact.organisation_id = used.organisation_id
    session.add(contact)
    org = await session.get(Organisation, used.organisation_id)
    numbers = await reminder_repo.certificate_numbers(session, used.organisation_id)
    return LinkOutcome("linked", org.name if org else "", tuple(numbers))
