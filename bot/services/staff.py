"""The staff directory: adding, listing and disabling members, and signing them in.

Passwords are argon2id hashes (argon2-cffi); the cost comes from PASSWORD_TIME_COST and
PASSWORD_MEMORY_KIB, and a hash made with other parameters is renewed on the next sign-in.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from bot.config import Settings
from bot.desk import Desk
from bot.domain.staff import Role, identities, normalise_email, staff_actor
from storage.models import StaffMember
from storage.repo import staff as repo
from storage.unit_of_work import UnitOfWork


class StaffRefused(Exception):
    """A directory change the rules refuse; `key` is a text of messages/catalogs/console.toml."""

    def __init__(self, key: str, **args: object) -> None:
        super().__init__(key)
        self.key = f"console.{key}"
        self.args_ = args


@cache
def _hasher(time_cost: int, memory_kib: int) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=1)


def hasher(settings: Settings) -> PasswordHasher:
    return _hasher(settings.password_time_cost, settings.password_memory_kib)


async def add_member(
    desk: Desk,
    uow: UnitOfWork,
    *,
    name: str,
    email: str,
    password: str,
    telegram_user_id: int | None = None,
    role: str = Role.STAFF.value,
) -> StaffMember:
    """A new member; refused for a bad address, a taken address or Telegram id, a short password."""
    address = normalise_email(email)
    if address is None:
        raise StaffRefused("staff_bad_email", email=email)
    if not name.strip():
        raise StaffRefused("staff_no_name")
    if role not in {r.value for r in Role}:
        raise StaffRefused("staff_bad_role", role=role)
    if len(password) < 10:
        raise StaffRefused("staff_short_password", minimum=10)
    session = uow.session
    if await repo.by_email(session, address) is not None:
        raise StaffRefused("staff_email_taken", email=address)
    if telegram_user_id is not None and await repo.by_telegram_id(session, telegram_user_id):
        raise StaffRefused("staff_telegram_taken", telegram_id=telegram_user_id)
    return await repo.add(
        session,
        name=name.strip(),
        email=address,
        telegram_user_id=telegram_user_id,
        role=role,
        password_hash=hasher(desk.settings).hash(password),
        now=desk.clock.now(),
    )


async def members(uow: UnitOfWork) -> Sequence[StaffMember]:
    """Everyone in the directory, enabled first, by name."""
    return await repo.everyone(uow.session)


async def set_disabled(uow: UnitOfWork, email: str, disabled: bool = True) -> StaffMember:
    """Disable (or enable again) a member; a disabled member can no longer sign in."""
    member = await repo.by_email(uow.session, normalise_email(email) or email)
    if member is None:
        raise StaffRefused("staff_unknown", email=email)
    member.disabled = disabled
    uow.session.add(member)
    return member


async def member(uow: UnitOfWork, staff_id: int) -> StaffMember | None:
    """An enabled member by id (a signed-in session's); None once disabled or removed."""
    found = await repo.by_id(uow.session, staff_id)
    return found if found is not None and not found.disabled else None


async def authenticate(
    desk: Desk, uow: UnitOfWork, email: str, password: str
) -> StaffMember | None:
    """The member these credentials sign in, or None (unknown, wrong password or disabled).

    An unknown address still costs one hash check, so timing does not tell who exists.
    """
    ph = hasher(desk.settings)
    address = normalise_email(email)
    found = await repo.by_email(uow.session, address) if address else None
    try:
        ph.verify(found.password_hash if found else _dummy_hash(ph), password)
    except (VerificationError, InvalidHashError):
        return None
    if found is None or found.disabled:
        return None
    if ph.check_needs_rehash(found.password_hash):
        found.password_hash = ph.hash(password)
        uow.session.add(found)
    return found


@cache
def _dummy_hash_for(ph: PasswordHasher) -> str:
    return ph.hash("not a password of anyone's")


def _dummy_hash(ph: PasswordHasher) -> str:
    return _dummy_hash_for(ph)


def actor_of(member: StaffMember) -> str:
    """What the case history records as the actor of this member's actions."""
    return staff_actor(member.email)


def assignee_ids(member: StaffMember) -> list[str]:
    """What `case_file.assignee` holds for this member: the e-mail (console) or the Telegram id."""
    ids = [member.email]
    if member.telegram_user_id is not None:
        ids.append(str(member.telegram_user_id))
    return ids


def identities_of(member: StaffMember) -> list[str]:
    """The names impartiality compares for this member."""
    return identities(member.name, member.email, member.telegram_user_id)


async def telegram_member(uow: UnitOfWork, user_id: int) -> StaffMember | None:
    """The enabled directory member with this Telegram id, if any."""
    found = await repo.by_telegram_id(uow.session, user_id)
    return None if found is None or found.disabled else found


async def telegram_actor(uow: UnitOfWork, user_id: int, shown: str) -> tuple[str, str]:
    """(what is recorded, how it is shown) for a Telegram staff user's action: the directory's
    identity when they are in it (as the console records it), else their Telegram id."""
    found = await telegram_member(uow, user_id)
    if found is None:
        return f"staff:{user_id}", shown
    return actor_of(found), found.name


async def telegram_identities(uow: UnitOfWork, user_id: int) -> list[str] | None:
    """What impartiality compares for a Telegram staff member who is in the directory (mapped by
    Telegram id); None when they are not (or are disabled), so the caller falls back."""
    found = await repo.by_telegram_id(uow.session, user_id)
    if found is None or found.disabled:
        return None
    return identities_of(found)


async def names_of_actors(uow: UnitOfWork, actors: Iterable[str]) -> dict[str, str]:
    """Directory names for event actors: `staff:<e-mail>` (console) and `staff:<Telegram id>`."""
    emails, ids = set(), set()
    for actor in actors:
        who = actor.removeprefix("staff:")
        if who == actor:
            continue
        if who.lstrip("-").isdigit():
            ids.add(int(who))
        else:
            emails.add(who)
    found = await repo.by_emails_or_telegram_ids(uow.session, emails, ids)
    names = {}
    for m in found:
        names[staff_actor(m.email)] = m.name
        names[m.email] = m.name
        if m.telegram_user_id is not None:
            names[f"staff:{m.telegram_user_id}"] = m.name
            names[str(m.telegram_user_id)] = m.name
    return names


__all__ = [
    "StaffRefused",
    "actor_of",
    "add_member",
    "assignee_ids",
    "authenticate",
    "hasher",
    "identities_of",
    "member",
    "members",
    "names_of_actors",
    "set_disabled",
    "telegram_actor",
    "telegram_identities",
    "telegram_member",
]
