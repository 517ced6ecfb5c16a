"""Receiving letters: store the raw bytes first, so nothing received is lost or taken twice.

Each letter is stored in a savepoint of its own: one that the database refuses (whatever it
holds) is tried again alone, stripped to its bytes and keys; only when even that fails is it
left in the mailbox, and staff are told what failed. Its neighbours are stored either way.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.exc import SQLAlchemyError

from bot.desk import Desk
from bot.domain.mail import too_large_problem
from bot.services.inbound_mail.staff import letter_not_stored
from storage.models import InboundStatus
from storage.repo import bulk
from storage.repo import inbound_email as repo
from storage.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RawLetter:
    """A letter as fetched from the mailbox, with the keys it is stored under."""

    uid: int
    raw: bytes  # the whole letter, or only its header when `size` is over the limit
    message_id: str | None
    key: str  # a hash of the raw bytes (of the header and size for a letter too large)
    size: int | None = None  # its RFC822.SIZE, given when only the header was fetched
    limit: int | None = None  # the size limit it is over
    internal_date: datetime | None = None  # when the server received it (IMAP INTERNALDATE)


@dataclass
class Stored:
    """What storing a few letters did, by UID."""

    new: dict[int, int] = field(default_factory=dict)  # row id of each letter stored now
    duplicates: set[int] = field(default_factory=set)  # the very same letter, stored before
    failed: dict[int, str] = field(default_factory=dict)  # not stored, and why


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
) -> Stored:
    """Store the letters: together in one statement (in a savepoint), each alone in a savepoint
    of its own when that fails.

    A letter whose bytes are already stored (under another UID) is recorded as a duplicate.
    One kept only by its header carries the too_large problem: acting upon it quarantines it.
    """
    result = Stored()
    ordered = sorted(letters, key=lambda item: item.uid)
    # The very same bytes seen before (or twice in this chunk) are stored one by one, in
    # their place: the log lists the letters in the order they came.
    seen = await bulk.inbound_keys_taken(uow.session, [letter.key for letter in ordered])
    runs: list[list[RawLetter]] = [[]]
    for letter in ordered:
        if letter.key in seen:
            runs += [[letter], []]  # alone
        else:
            runs[-1].append(letter)
        seen.add(letter.key)
    for run in (r for r in runs if r):
        await _store_run(desk, uow, mailbox, uidvalidity, run, result)
    for uid, why in result.failed.items():
        await letter_not_stored(desk, uow, mailbox, uidvalidity, uid, why)
    return result


async def _store_run(
    desk: Desk,
    uow: UnitOfWork,
    mailbox: str,
    uidvalidity: int,
    run: Sequence[RawLetter],
    result: Stored,
) -> None:
    """Letters stored together in one statement; each alone if that fails (or is refused)."""
    try:
        async with uow.session.begin_nested():
            result.new |= await _store_all(desk, uow, mailbox, uidvalidity, run)
    except SQLAlchemyError as exc:
        log.warning("%d letters could not be stored at once: %s", len(run), repo.db_reason(exc))
    for letter in run:
        if letter.uid in result.new:
            continue
        try:
            await _store_one(desk, uow, mailbox, uidvalidity, letter, result)
        except SQLAlchemyError as exc:
            first = repo.db_reason(exc)
            log.warning("inbound e-mail UID %s could not be stored: %s", letter.uid, first)
            try:  # again alone, with nothing of the letter but its bytes and keys
                bare = RawLetter(
                    letter.uid,
                    letter.raw,
                    None,
                    letter.key,
                    letter.size,
                    letter.limit,
                    letter.internal_date,
                )
                await _store_one(desk, uow, mailbox, uidvalidity, bare, result, problem=first)
            except SQLAlchemyError as again:
                result.failed[letter.uid] = repo.db_reason(again)


async def _store_all(
    desk: Desk, uow: UnitOfWork, mailbox: str, uidvalidity: int, letters: Sequence[RawLetter]
) -> dict[int, int]:
    """One multi-row insert; the row id of each letter stored (not one whose UID or bytes
    were stored before: those are looked at one by one)."""
    now = desk.clock.now()
    rows = [
        {
            "mailbox": mailbox,
            "uidvalidity": uidvalidity,
            "uid": letter.uid,
            "message_id": letter.message_id,
            "message_key": letter.key,
            "raw": letter.raw,
            "received_at": now,
            "internal_date": letter.internal_date,
            "status": InboundStatus.STORED.value,
            "problems": (
                [too_large_problem(letter.size, letter.limit)]
                if letter.size is not None and letter.limit is not None
                else None
            ),
        }
        for letter in letters
    ]
    return await bulk.insert_new(uow.session, bulk.INBOUND, rows, "uid")


async def _store_one(
    desk: Desk,
    uow: UnitOfWork,
    mailbox: str,
    uidvalidity: int,
    letter: RawLetter,
    result: Stored,
    problem: str | None = None,
) -> None:
    session = uow.session
    async with session.begin_nested():
        row = await repo.store_raw(
            session,
            mailbox=mailbox,
            uidvalidity=uidvalidity,
            uid=letter.uid,
            message_id=letter.message_id,
            message_key=letter.key,
            raw=letter.raw,
            now=desk.clock.now(),
            internal_date=letter.internal_date,
        )
        if row is None:
            # Its UID is stored (another worker took it just now), or its bytes are.
            if await repo.store_duplicate(
                session,
                mailbox=mailbox,
                uidvalidity=uidvalidity,
                uid=letter.uid,
                message_id=letter.message_id,
                message_key=letter.key,
                now=desk.clock.now(),
            ):
                result.duplicates.add(letter.uid)
            return
        assert row.id is not None
        problems = [f"store_failed: {problem}"] if problem else []
        if letter.size is not None and letter.limit is not None:
            problems.append(too_large_problem(letter.size, letter.limit))
        if problems:
            row.problems = problems
            session.add(row)
            await session.flush()
        result.new[letter.uid] = row.id
