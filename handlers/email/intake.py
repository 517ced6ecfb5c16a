"""The IMAP intake: letters in the inbox become cases, replies, staff enquiries or quiet records.

For every message, in this order, so a crash at any point loses nothing and repeats nothing:
1. FETCH its `RFC822.SIZE`, then `BODY.PEEK[]` (the letter stays unread on the server) — or,
   for a letter over the size limit, only `BODY.PEEK[HEADER]`;
2. store the raw bytes with (mailbox, UIDVALIDITY, UID) and a hash of those bytes, each letter
   in a savepoint of its own, and COMMIT; both keys are unique, so a letter seen again after a
   restart is recognised by its UID, and the very same letter delivered twice by its bytes
   (recorded as a duplicate); a reused Message-ID is no reason to drop a letter. One the
   database refuses stays in the folder, staff told, and the others go on;
3. act in one transaction (bot.services.inbound_mail): open the case or add to the case it
   answers, queue the answers and the staff alerts (outbox), mark the row processed — and
   COMMIT; a letter kept only by its header is quarantined there, staff told;
4. only then flag `\\Seen` and MOVE the message to IMAP_PROCESSED_FOLDER (or to
   IMAP_QUARANTINE_FOLDER when it could not be processed).
A restart finds the stored rows by UID: a stored row is acted upon, a processed one only moved.
A letter whose files cannot be written (a full disk) stays stored and in the folder, staff are
told the cause, and it is tried again on the next pass; the letters after it go through.

imapclient is blocking: every IMAP call runs in a thread (`asyncio.to_thread`), and so does
parsing a letter. The long-running `run()` uses IDLE when the server offers it, polls every
IMAP_POLL_SECONDS otherwise (and as a fallback with IDLE), reconnects with backoff and tells
staff after 5 consecutive failures, and again when the mailbox is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from imapclient.exceptions import IMAPClientError
from sqlalchemy.exc import SQLAlchemyError

from bot.desk import Desk
from bot.domain.mail import DUPLICATE, ParsedMail
from bot.services import inbound_mail
from bot.services.inbound_mail import (
    TRANSIENT,
    Outcome,
    Parse,
    ParseMany,
    RawLetter,
    Stored,
    db_reason,
)
from handlers.email.imap import ImapMailbox, IntakeError, reason
from handlers.email.parse import message_key, parse_message
from storage.models import InboundStatus
from storage.unit_of_work import UnitOfWork

__all__ = ["FETCH_CHUNK", "IntakeError", "IntakeStats", "process_mailbox", "run", "run_once"]

log = logging.getLogger(__name__)

FETCH_CHUNK = 50  # messages per FETCH (and per MOVE): few round trips, bounded memory
CHUNK_BYTES = 32_000_000  # about the most letter bytes held at once (a larger letter goes alone)
ACT_BATCH = 50  # letters acted upon together, one commit: little work redone after a crash
# A letter may carry about three files of MAX_UPLOAD_BYTES each (base64 makes them a third
# larger); a larger one is not fetched whole: its header is stored and it is quarantined.
LETTER_SIZE_FACTOR = 4
FAILURES_BEFORE_ALERT = 5
BACKOFF_CAP_SECONDS = 300.0
IDLE_SLICE_SECONDS = 1.0  # how often a waiting worker looks at its stop event


@dataclass
class IntakeStats:
    cases: int = 0
    replies: int = 0
    enquiries: int = 0
    automatic: int = 0
    bounces: int = 0
    quarantined: int = 0
    duplicates: int = 0
    deferred: int = 0  # stored, not acted upon yet (a file could not be written): next pass
    not_stored: int = 0  # refused by the database: left in the folder, staff told
    moved: int = 0
    refs: list[str] = field(default_factory=list)
    tried: dict[int, str] = field(default_factory=dict, repr=False)  # acted upon: status

    @property
    def handled(self) -> int:
        return (
            self.cases
            + self.replies
            + self.enquiries
            + self.automatic
            + self.bounces
            + self.quarantined
        )

    def count(self, outcome: Outcome) -> None:
        if outcome.done is not None:
            setattr(self, outcome.done, getattr(self, outcome.done) + 1)
        if outcome.ref is not None:
            self.refs.append(outcome.ref)

    def to_json(self) -> dict[str, int]:
        return {
            "cases": self.cases,
            "replies": self.replies,
            "enquiries": self.enquiries,
            "automatic": self.automatic,
            "bounces": self.bounces,
            "quarantined": self.quarantined,
            "duplicates": self.duplicates,
            "deferred": self.deferred,
            "not_stored": self.not_stored,
            "moved": self.moved,
        }


def letter_size_limit(desk: Desk) -> int:
    return LETTER_SIZE_FACTOR * desk.settings.max_upload_bytes


def parser(desk: Desk) -> Parse:
    """Parsing as the service wants it, off the event loop (it is CPU work: charsets, MIME)."""
    s = desk.settings

    async def parse(raw: bytes) -> ParsedMail:
        return await asyncio.to_thread(
            parse_message,
            raw,
            case_ref_prefix=s.case_ref_prefix,
            max_attachment_bytes=s.max_upload_bytes,
            own_domain=s.mail_domain,
            own_addresses=(s.mail_from,),
        )

    return parse


def many_parser(desk: Desk) -> ParseMany:
    """`parser` for a batch of letters: one trip off the event loop for them all."""
    s = desk.settings

    def parse_all(raws: Sequence[bytes]) -> list[ParsedMail]:
        return [
            parse_message(
                raw,
                case_ref_prefix=s.case_ref_prefix,
                max_attachment_bytes=s.max_upload_bytes,
                own_domain=s.mail_domain,
                own_addresses=(s.mail_from,),
            )
            for raw in raws
        ]

    async def parse_many(raws: Sequence[bytes]) -> list[ParsedMail]:
        return await asyncio.to_thread(parse_all, raws)

    return parse_many


# ---------------------------------------------------------------------------------------------
# One pass over the intake folder


async def run_once(desk: Desk) -> IntakeStats:
    """Process everything in the intake folder once (`certdesk email fetch --once`)."""
    box = ImapMailbox(desk)
    try:
        await asyncio.to_thread(box.open)
    except (IMAPClientError, OSError) as exc:
        raise IntakeError(f"cannot open {box.name}: {reason(exc)}") from None
    try:
        return await process_mailbox(desk, box)
    except SQLAlchemyError as exc:  # the mailbox is fine: say what failed, in one line
        raise IntakeError(f"the database refused the letters: {db_reason(exc)}") from None
    finally:
        await asyncio.to_thread(box.close)


async def process_mailbox(desk: Desk, box: ImapMailbox) -> IntakeStats:
    stats = IntakeStats()
    parse = parser(desk)
    # Letters stored before a crash and no longer in the folder (moved by hand) still count.
    async with UnitOfWork(desk.sessions) as uow:
        leftovers = await inbound_mail.pending(uow)
    for start in range(0, len(leftovers), FETCH_CHUNK):
        await _act_many(desk, leftovers[start : start + FETCH_CHUNK], parse, stats)
    try:
        uids = await asyncio.to_thread(box.uids)
        for start in range(0, len(uids), FETCH_CHUNK):
            await _chunk(desk, box, uids[start : start + FETCH_CHUNK], parse, stats)
    except (IMAPClientError, OSError) as exc:
        raise IntakeError(f"{box.name}: {reason(exc)}") from None
    return stats


async def _chunk(
    desk: Desk, box: ImapMailbox, uids: list[int], parse: Parse, stats: IntakeStats
) -> None:
    """Look up which letters are new and how large they are, then take them in parts."""
    async with UnitOfWork(desk.sessions) as uow:
        known = await inbound_mail.known(uow, box.name, box.uidvalidity, uids)
    missing = [uid for uid in uids if uid not in known]
    found = await asyncio.to_thread(box.sizes_and_dates, missing) if missing else {}
    sizes = {uid: size for uid, (size, _) in found.items()}
    dates = {uid: when for uid, (_, when) in found.items()}
    for part in _parts(uids, sizes):
        await _part(desk, box, part, known, sizes, dates, parse, stats)


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


async def _part(
    desk: Desk,
    box: ImapMailbox,
    uids: list[int],
    known: dict[int, tuple[int, str]],
    sizes: dict[int, int],
    dates: dict[int, datetime | None],
    parse: Parse,
    stats: IntakeStats,
) -> None:
    """Store, act upon and file a few letters: each step committed before the next begins."""
    missing = [uid for uid in uids if uid not in known]
    letters = await _fetch(desk, box, [uid for uid in missing if uid in sizes], sizes)
    letters = [replace(letter, internal_date=dates.get(letter.uid)) for letter in letters]
    stored = Stored()
    if letters:
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
    done = await _act_many(desk, list(pending.values()), parse, stats)
    for uid, row_id in pending.items():
        status[uid] = done[row_id]
    for uid in uids:
        if uid in status and status[uid] != InboundStatus.STORED:  # stored: tried again later
            quarantined = status[uid] == InboundStatus.QUARANTINED
            folder = box.quarantine_folder if quarantined else box.processed_folder
            destination.setdefault(folder, []).append(uid)
    for folder, filed in destination.items():
        await asyncio.to_thread(box.file, sorted(filed), folder)
        stats.moved += len(filed)


async def _fetch(
    desk: Desk, box: ImapMailbox, uids: Sequence[int], sizes: dict[int, int]
) -> list[RawLetter]:
    """The letters to store: whole, or by their header alone when over the size limit."""
    limit = letter_size_limit(desk)
    whole = [uid for uid in uids if sizes[uid] <= limit]
    large = [uid for uid in uids if sizes[uid] > limit]
    letters = []
    if whole:
        for uid, raw in (await asyncio.to_thread(box.fetch, whole)).items():
            letters.append(RawLetter(uid, raw, *message_key(raw)))
    if large:
        for uid, head in (await asyncio.to_thread(box.fetch_headers, large)).items():
            log.warning(
                "inbound e-mail UID %s has %s bytes: only its header is kept", uid, sizes[uid]
            )
            keys = message_key(head, sizes[uid])
            letters.append(RawLetter(uid, head, *keys, size=sizes[uid], limit=limit))
    return letters


async def _act_many(
    desk: Desk, inbound_ids: list[int], parse: Parse, stats: IntakeStats
) -> dict[int, str]:
    """Act on stored letters; return each one's final status.

    One unit of work (one commit) per ACT_BATCH letters, acted upon together by the service
    (bot.services.inbound_mail.batch), which falls back to each letter alone in its own
    savepoint when the batch fails.
    """
    todo = [i for i in inbound_ids if i not in stats.tried]  # a deferred letter: once a pass
    parse_many = many_parser(desk)
    for start in range(0, len(todo), ACT_BATCH):
        async with UnitOfWork(desk.sessions) as uow:
            part = todo[start : start + ACT_BATCH]
            outcomes = await inbound_mail.act_many(desk, uow, part, parse, parse_many)
            for inbound_id in part:
                outcome = outcomes[inbound_id]
                stats.count(outcome)
                stats.tried[inbound_id] = outcome.status
    return {inbound_id: stats.tried[inbound_id] for inbound_id in inbound_ids}


# ---------------------------------------------------------------------------------------------
# The long-running worker


@dataclass
class _Health:
    """Consecutive failures, and whether staff were told (once per outage)."""

    failures: int = 0
    alerted_at: datetime | None = None


async def run(desk: Desk, stop_event: asyncio.Event, *, backoff_first: float = 2.0) -> None:
    """Receive letters until `stop_event` is set (started by the bot when IMAP_HOST is set).

    After a failure it waits `backoff_first` seconds, doubling up to 5 minutes, with jitter.
    """
    health = _Health()
    rng = random.Random()
    poll = float(desk.settings.imap_poll_seconds)
    while not stop_event.is_set():
        box = ImapMailbox(desk)
        try:
            await asyncio.to_thread(box.open)
            await process_mailbox(desk, box)
            await _recovered(desk, box, health)
            while not stop_event.is_set():
                if await _wait_for_mail(box, poll, stop_event):
                    await process_mailbox(desk, box)
        except Exception as exc:  # the worker outlives any failure; staff hear of lasting ones
            health.failures += 1
            if isinstance(exc, SQLAlchemyError):
                log.warning(
                    "e-mail intake failed (%s in a row): %s", health.failures, db_reason(exc)
                )
            elif isinstance(exc, (IntakeError, IMAPClientError, *TRANSIENT)):
                log.warning("e-mail intake failed (%s in a row): %s", health.failures, reason(exc))
            else:
                log.exception("e-mail intake failed (%s in a row)", health.failures)
            await _maybe_alert(desk, box, health, exc)
            delay = min(backoff_first * 2.0 ** (health.failures - 1), BACKOFF_CAP_SECONDS)
            delay *= 0.5 + rng.random() / 2
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop_event.wait(), timeout=delay)
        finally:
            await asyncio.to_thread(box.close)


async def _wait_for_mail(box: ImapMailbox, poll: float, stop_event: asyncio.Event) -> bool:
    """Wait for new mail (IDLE) or for the poll interval; False when asked to stop."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + poll
    while not stop_event.is_set():
        remaining = deadline - loop.time()
        if remaining <= 0:
            return True  # the poll fallback: look even when IDLE said nothing
        if await asyncio.to_thread(box.wait, min(IDLE_SLICE_SECONDS, remaining)):
            return True
        if not box.can_idle:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop_event.wait(), timeout=min(remaining, poll))
    return False


async def _maybe_alert(desk: Desk, box: ImapMailbox, health: _Health, exc: BaseException) -> None:
    if health.failures < FAILURES_BEFORE_ALERT or health.alerted_at is not None:
        return
    now = desk.clock.now()
    try:
        async with UnitOfWork(desk.sessions) as uow:
            # Staff hear what failed: the mailbox, or (it answered) the database or a bug.
            if isinstance(exc, SQLAlchemyError):
                why = db_reason(exc)
                await inbound_mail.intake_failing(desk, uow, box.name, health.failures, why, now)
            elif isinstance(exc, (IntakeError, IMAPClientError, OSError, TimeoutError)):
                why = reason(exc)
                await inbound_mail.mailbox_down(desk, uow, box.name, health.failures, why, now)
            else:
                why = f"{type(exc).__name__}: {reason(exc)}"
                await inbound_mail.intake_failing(desk, uow, box.name, health.failures, why, now)
    except (SQLAlchemyError, OSError):
        log.warning("could not queue the intake alert")
        return
    health.alerted_at = now


async def _recovered(desk: Desk, box: ImapMailbox, health: _Health) -> None:
    alerted, health.failures = health.alerted_at, 0
    if alerted is None:
        return
    async with UnitOfWork(desk.sessions) as uow:
        await inbound_mail.mailbox_up(desk, uow, box.name, alerted)
    health.alerted_at = None
