"""Receiving letters: store the raw bytes first, so nothing received is lost or taken twice."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot.desk import Desk
from bot.domain.mail import too_large_problem
from storage.repo import inbound_email as repo
from storage.unit_of_work import UnitOfWork


@dataclass(frozen=True)
class RawLetter:
    """A letter as fetched from the mailbox, with the keys it is stored under."""

    uid: int
    raw: bytes  # the whole letter, or only its header when `size` is over the limit
    message_id: str | None
    key: str  # the Message-ID, or a hash of the header without one
    size: int | None = None  # its RFC822.SIZE, given when only the header was fetched
    limit: int | None = None  # the size limit it is over


async def known(
    uow: UnitOfWork, mailbox: str, uidvalidity: int, uids: Sequence[int]
) -> dict[int, tuple[int, str]]:
    """(row id, status) of the letters among `uids` already stored, by UID."""
    return await repo.states_by_uid(uow.session, mailbox, uidvalidity, uids)


async def pending(uow: UnitOfWork, limit: int = 10_000) -> list[int]:
    """Ids of letters stored but not acted upon (a crash came between the two commits)."""
    return await repo.pending_ids(uow.session, limit=limit)


async def store(
    desk: Desk, uow: UnitOfWork, mailbox: str, uidvalidity: int, letters: Sequence[RawLetter]
) -> dict[int, int]:
    """Store the letters; return the new rows' ids by UID.

    A letter whose UID or Message-ID/hash is already stored gets no row (it is a duplicate).
    One kept only by its header carries the too_large problem: acting upon it quarantines it.
    """
    stored: dict[int, int] = {}
    for letter in sorted(letters, key=lambda item: item.uid):
        row = await repo.store_raw(
            uow.session,
            mailbox=mailbox,
            uidvalidity=uidvalidity,
            uid=letter.uid,
            message_id=letter.message_id,
            message_key=letter.key,
            raw=letter.raw,
            now=desk.clock.now(),
        )
        if row is None or row.id is None:
            continue
        if letter.size is not None and letter.limit is not None:
            row.problems = [too_large_problem(letter.size, letter.limit)]
            uow.session.add(row)
        stored[letter.uid] = row.id
    return stored
