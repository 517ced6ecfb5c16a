"""One pass over the intake folder, chunk by chunk (handlers.email.intake describes the steps).

The next chunk is looked at and fetched while the database takes the current one, and each
chunk is filed (MOVE) in the background once its letters are committed: the one IMAP
connection runs its commands one at a time, in order (handlers.email.serial).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from imapclient.exceptions import IMAPClientError

from bot.desk import Desk
from bot.domain.mail import DUPLICATE, ParsedMail
from bot.services import inbound_mail
from bot.services.inbound_mail import Parse, RawLetter, Stored
from handlers.email.imap import ImapMailbox, IntakeError, reason
from handlers.email.parse import message_key
from handlers.email.parsing import IntakeStats, letter_size_limit, many_parser, parse_ahead, parser
from handlers.email.serial import Serial
from storage.models import InboundStatus
from storage.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

FETCH_CHUNK = 500  # messages per FETCH (and per MOVE): few round trips, bounded memory
FIRST_CHUNK = 100  # the pass's first chunk: soon in the database, the next fetched meanwhile
CHUNK_BYTES = 32_000_000  # about the most letter bytes held at once (a larger letter goes alone)
ACT_BATCH = 500  # letters acted upon together, one commit: little work redone after a crash


async def process_mailbox(desk: Desk, box: ImapMailbox) -> IntakeStats:
    stats = IntakeStats()
    parse = parser(desk)
    # Letters stored before a crash and no longer in the folder (moved by hand) still count.
    async with UnitOfWork(desk.sessions) as uow:
        leftovers = await inbound_mail.pending(uow)
    for start in range(0, len(leftovers), FETCH_CHUNK):
        await _act_many(desk, leftovers[start : start + FETCH_CHUNK], parse, stats)
    imap = Serial()
    ahead: asyncio.Task[_Chunk] | None = None
    parsed: dict[str, ParsedMail] = {}  # letters parsed ahead, while the database was busy
    try:
        uids = await imap.call(box.uids)
        # A small first chunk: the database has work while the larger next one is fetched.
        head = uids[:FIRST_CHUNK]
        rest = uids[FIRST_CHUNK:]
        chunks = [head] + [rest[i : i + FETCH_CHUNK] for i in range(0, len(rest), FETCH_CHUNK)]
        chunks = [chunk for chunk in chunks if chunk]
        # The next chunk is fetched while the database takes this one; each chunk is filed
        # (MOVE) in the background once its letters are committed.
        for n, chunk in enumerate(chunks):
            ahead = ahead or asyncio.create_task(_look(desk, box, imap, chunk, parsed))
            looked = await ahead
            ahead = None
            if n + 1 < len(chunks):
                ahead = asyncio.create_task(_look(desk, box, imap, chunks[n + 1], parsed))
            for i, part in enumerate(looked.parts):
                first = looked.first if i == 0 else None
                await _part(desk, box, imap, part, looked, first, parse, stats, parsed)
            for letter in looked.first:  # not acted upon (a duplicate, say): not kept either
                parsed.pop(letter.key, None)
        await imap.drain()
    except (IMAPClientError, OSError) as exc:
        raise IntakeError(f"{box.name}: {reason(exc)}") from None
    finally:
        if ahead is not None:
            ahead.cancel()
        imap.cancel()
    return stats


@dataclass
class _Chunk:
    """A chunk of UIDs looked at: which are stored already, the sizes and dates of the others,
    its parts, and the letters of its first part fetched."""

    known: dict[int, tuple[int, str]]
    sizes: dict[int, int]
    dates: dict[int, datetime | None]
    parts: list[list[int]]
    first: list[RawLetter]
    stored: Stored | None = None  # the first part's letters, stored ahead (PostgreSQL)


async def _look(
    desk: Desk, box: ImapMailbox, imap: Serial, uids: list[int], parsed: dict[str, ParsedMail]
) -> _Chunk:
    """Look up which letters are new and how large they are; fetch the first part and parse
    its letters (into `parsed`, by key), all while the chunk before is in the database."""
    async with UnitOfWork(desk.sessions) as uow:
        known = await inbound_mail.known(uow, box.name, box.uidvalidity, uids)
    missing = [uid for uid in uids if uid not in known]
    found = await imap.call(box.sizes_and_dates, missing) if missing else {}
    sizes = {uid: size for uid, (size, _) in found.items()}
    dates = {uid: when for uid, (_, when) in found.items()}
    parts = list(_parts(uids, sizes))
    looked = _Chunk(known, sizes, dates, parts, [])
    if parts:
        looked.first = await _fetch_part(desk, box, imap, parts[0], looked)
        whole = [letter for letter in looked.first if letter.size is None]
        ready = await desk.worker.run(parse_ahead(desk), [letter.raw for letter in whole])
        parsed.update((x.key, p) for x, p in zip(whole, ready, strict=True) if p is not None)
        if looked.first and desk.engine.dialect.name == "postgresql":
            # Two transactions at once (SQLite has one writer): the letters stored and
            # committed while the chunk before is acted upon; acted upon after it.
            async with UnitOfWork(desk.sessions) as uow:
                looked.stored = await inbound_mail.store(
                    desk, uow, box.name, box.uidvalidity, looked.first
                )
    return looked


def _parts(uids: list[int], sizes: dict[int, int]) -> Iterator[list[int]]:
    """The UIDs in order, cut so the new letters of a part total at most about CHUNK_BYTES."""
    part: list[int] = []
    total = 0
    for uid in uids:
        size = sizes.get(uid, 0)
        if part and total + size > CHUNK_BYTES:
            yield part
            part, total = [], 0
        part.append(uid)
        total += size
    if part:
        yield part


async def _fetch_part(
    desk: Desk, box: ImapMailbox, imap: Serial, uids: list[int], looked: _Chunk
) -> list[RawLetter]:
    missing = [uid for uid in uids if uid not in looked.known and uid in looked.sizes]
    letters = await _fetch(desk, box, imap, missing, looked.sizes)
    return [replace(letter, internal_date=looked.dates.get(letter.uid)) for letter in letters]


async def _part(
    desk: Desk,
    box: ImapMailbox,
    imap: Serial,
    uids: list[int],
    looked: _Chunk,
    fetched: list[RawLetter] | None,
    parse: Parse,
    stats: IntakeStats,
    parsed: dict[str, ParsedMail] | None = None,
) -> None:
    """Store, act upon and file a few letters: each step committed before the next begins."""
    known = looked.known
    missing = [uid for uid in uids if uid not in known]
    letters = fetched if fetched is not None else await _fetch_part(desk, box, imap, uids, looked)
    stored = Stored()
    if fetched is not None and looked.stored is not None:
        stored = looked.stored
    elif letters:
        async with UnitOfWork(desk.sessions) as uow:
            stored = await inbound_mail.store(desk, uow, box.name, box.uidvalidity, letters)
    status = {uid: row_status for uid, (_, row_status) in known.items()}
    destination: dict[str, list[int]] = {}
    for uid in missing:
        if uid in stored.new:
            status[uid] = InboundStatus.STORED
        elif uid in stored.duplicates:  # the very same letter, stored before: file it away
            stats.duplicates += 1
            status[uid] = DUPLICATE
    stats.not_stored += len(stored.failed)  # left in the folder; staff were told
    pending = dict(stored.new) | {
        uid: row_id
        for uid, (row_id, row_status) in known.items()
        if uid in uids and row_status == InboundStatus.STORED
    }
    done = await _act_many(desk, list(pending.values()), parse, stats, parsed)
    for uid, row_id in pending.items():
        status[uid] = done[row_id]
    for uid in uids:
        if uid in status and status[uid] != InboundStatus.STORED:  # stored: tried again later
            quarantined = status[uid] == InboundStatus.QUARANTINED
            folder = box.quarantine_folder if quarantined else box.processed_folder
            destination.setdefault(folder, []).append(uid)
    for folder, filed in destination.items():

        def moved(count: int = len(filed)) -> None:
            stats.moved += count

        imap.later(box.file, sorted(filed), folder, done=moved)


async def _fetch(
    desk: Desk, box: ImapMailbox, imap: Serial, uids: Sequence[int], sizes: dict[int, int]
) -> list[RawLetter]:
    """The letters to store: whole, or by their header alone when over the size limit."""
    limit = letter_size_limit(desk)
    whole = [uid for uid in uids if sizes[uid] <= limit]
    large = [uid for uid in uids if sizes[uid] > limit]
    letters = []
    if whole:
        for uid, raw in (await imap.call(box.fetch, whole)).items():
            letters.append(RawLetter(uid, raw, *message_key(raw)))
    if large:
        for uid, head in (await imap.call(box.fetch_headers, large)).items():
            log.warning(
                "inbound e-mail UID %s has %s bytes: only its header is kept", uid, sizes[uid]
            )
            keys = message_key(head, sizes[uid])
            letters.append(RawLetter(uid, head, *keys, size=sizes[uid], limit=limit))
    return letters


async def _act_many(
    desk: Desk,
    inbound_ids: list[int],
    parse: Parse,
    stats: IntakeStats,
    parsed: dict[str, ParsedMail] | None = None,
) -> dict[int, str]:
    """Act on stored letters; return each one's final status.

    One unit of work (one commit) per ACT_BATCH letters, acted upon together by the service
    (bot.services.inbound_mail.batch), which falls back to each letter alone in its own
    savepoint when the batch fails.
    """
    todo = [i for i in inbound_ids if i not in stats.tried]  # a deferred letter: once a pass
    parse_many = many_parser(desk, parsed)
    for start in range(0, len(todo), ACT_BATCH):
        async with UnitOfWork(desk.sessions) as uow:
            part = todo[start : start + ACT_BATCH]
            outcomes = await inbound_mail.act_many(desk, uow, part, parse, parse_many)
            for inbound_id in part:
                outcome = outcomes[inbound_id]
                stats.count(outcome)
                stats.tried[inbound_id] = outcome.status
    return {inbound_id: stats.tried[inbound_id] for inbound_id in inbound_ids}
