"""The IMAP intake: letters in the inbox become cases, replies, staff enquiries or quiet records.

For every message, in this order, so a crash at any point loses nothing and repeats nothing:
1. FETCH its `RFC822.SIZE`, then `BODY.PEEK[]` (the letter stays unread on the server) — or,
   for a letter over the size limit, only `BODY.PEEK[HEADER]`;
2. store the raw bytes with (mailbox, UIDVALIDITY, UID) and a hash of those bytes — a chunk in
   one statement, each letter alone in a savepoint of its own when that fails — and COMMIT;
   both keys are unique, so a letter seen again after a restart is recognised by its UID, and
   the very same letter delivered twice by its bytes (recorded as a duplicate); a reused
   Message-ID is no reason to drop a letter. One the database refuses stays in the folder,
   staff told, and the others go on;
3. act in one transaction (bot.services.inbound_mail, a chunk at a time, set-based; each letter
   alone when the batch fails): open the case or add to the case it answers, queue the answers
   and the staff alerts (outbox), mark the row processed — and COMMIT; a letter kept only by its
   header is quarantined there, staff told;
4. only then flag `\\Seen` and MOVE the message to IMAP_PROCESSED_FOLDER (or to
   IMAP_QUARANTINE_FOLDER when it could not be processed).
A restart finds the stored rows by UID: a stored row is acted upon, a processed one only moved.
A letter whose files cannot be written (a full disk) stays stored and in the folder, staff are
told the cause, and it is tried again on the next pass; the letters after it go through.

imapclient is blocking: every IMAP call runs in a thread, one at a time (handlers.email.serial;
the next chunk is fetched while the database takes the current one, handlers.email.chunks), and
so does parsing. The long-running `run()` uses IDLE when the server offers it, polls every
IMAP_POLL_SECONDS otherwise (and as a fallback with IDLE), reconnects with backoff and tells
staff after 5 consecutive failures, and again when the mailbox is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass
from datetime import datetime

from imapclient.exceptions import IMAPClientError
from sqlalchemy.exc import SQLAlchemyError

from bot.desk import Desk
from bot.services import inbound_mail
from bot.services.inbound_mail import (
    TRANSIENT,
    db_reason,
)
from handlers.email.chunks import FETCH_CHUNK, process_mailbox
from handlers.email.imap import ImapMailbox, IntakeError, reason
from handlers.email.parsing import IntakeStats, letter_size_limit, many_parser, parser
from storage.unit_of_work import UnitOfWork

__all__ = [
    "FETCH_CHUNK",
    "IntakeError",
    "IntakeStats",
    "letter_size_limit",
    "many_parser",
    "parser",
    "process_mailbox",
    "run",
    "run_once",
]

log = logging.getLogger(__name__)

FAILURES_BEFORE_ALERT = 5
BACKOFF_CAP_SECONDS = 300.0
IDLE_SLICE_SECONDS = 1.0  # how often a waiting worker looks at its stop event

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
