"""The outbox worker: claims due messages, hands each to its channel's sender, records the outcome.

Messages are written by `bot.outbox.messages.enqueue` in the transaction that caused them. Claiming
is one `UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED) RETURNING` so several instances on
PostgreSQL never take the same row (SQLite ignores the clause; one instance is assumed there).
Telegram rows are claimed only by the instance holding the sender lock (an advisory lock,
storage.repo.outbox.SenderLock), so the token's rate limits hold across instances.

Two lanes, claimed and sent apart: the main lane (complainants, organisations) and the staff lane
(staff alerts: robots, e-mail), so a flood of staff alerts never delays anyone's acknowledgement.
Telegram messages to groups (the staff group; any negative chat id) are neither lane's: the
group pacer (bot.outbox.groups) keeps each group within 20 a rolling minute, merging what waits
beyond it into a digest.

Within a lane, a batch is split per recipient (in claim order, so one chat's messages keep their
order), and up to `concurrency` recipients are served at once — the sender's
limiter keeps Telegram's per-chat and overall rates. Each message's outcome is committed right
after its own send, before its recipient's next, so a crash repeats at most the messages in
flight: one per recipient served, never a batch. Outcomes that finish together share one commit.

A claim is a lease (bot.outbox.recording): renewed every 10 s while held, taken over 30 s after a
worker died; an outcome that cannot be written (the database restarting) is written again until
it is, so what was sent is never sent twice by this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, or_, update
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.clock import Clock
from bot.config import Settings
from bot.delivery import ChatMoved, PermanentFailure, Sender, TransientFailure
from bot.delivery.messages import Letter, StaffNotice, TelegramDocument, TelegramText
from bot.outbox import failures
from bot.outbox.admin import status_counts
from bot.outbox.groups import GroupPacer, is_group_row, not_group
from bot.outbox.lanes import run_lane
from bot.outbox.messages import BadPayload, message_of
from bot.outbox.recording import DATABASE_AWAY, LEASE, Lease, Recorder, brief
from bot.outbox.staff_notice import targets
from bot.outbox.stats import BACKOFF_CAP, BACKOFF_FIRST, DrainStats, backoff
from storage.models import OutboxMessage
from storage.repo.outbox import MAIN_LANE, SENDER_LOCK_RETRY, STAFF_LANE, sender_lock

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 10
STALE_CLAIM = LEASE  # kept for callers of the old name
# A channel with no sender configured (e.g. SMTP not set up yet) is looked at again after this.
UNCONFIGURED_DELAY = timedelta(minutes=10)
STAFF_CLAIM = 20  # the staff chat takes 20 a minute: a larger claim would only wait


class Outbox:
    def __init__(
        self,
        sessions: async_sessionmaker,
        senders: Mapping[str, Sender],
        clock: Clock,
        *,
        worker_id: str = "worker",
        staff_chat_id: int | None = None,
        locale: str = "zh_CN",
        concurrency: int = 1,
        settings: Settings | None = None,
        lease: timedelta = LEASE,
        sender_lock_retry: float = SENDER_LOCK_RETRY,
    ) -> None:
        self.sessions = sessions
        self.senders = senders
        self.clock = clock
        self.worker_id = worker_id
        # The staff channels failures are reported on (all of them with `settings`).
        self.settings = settings or Settings.model_construct(
            staff_chat_id=staff_chat_id, default_locale=locale
        )
        self.staff_chat_id = self.settings.staff_chat_id
        self.locale = self.settings.default_locale
        self.concurrency = max(1, concurrency)
        self.lease = Lease(sessions, clock, worker_id, lease)
        # One instance sends Telegram messages, so the token's limits hold in total.
        self.sender_lock = sender_lock(sessions.kw.get("bind"), retry=sender_lock_retry)
        self.moved: dict[str, str] = {}  # Telegram chats that migrated: old id → new
        self._down: set[tuple[str, str]] = set()  # staff channels that failed since they worked
        self.groups = GroupPacer(self)  # Telegram groups: 20 a minute, a digest beyond

    async def claim(self, limit: int, lane: str | None = None) -> list[OutboxMessage]:
        """Take up to `limit` due messages (and expired leases of dead workers), oldest first."""
        now = self.clock.now()
        due = and_(col(OutboxMessage.status) == "queued", col(OutboxMessage.next_attempt_at) <= now)
        stale = and_(
            col(OutboxMessage.status) == "sending",
            col(OutboxMessage.claimed_at) < now - self.lease.length,
        )
        where = and_(or_(due, stale), not_group())  # group rows: self.groups paces them
        if lane is not None:
            where = and_(where, col(OutboxMessage.lane) == lane)
        if self.lease.held:  # ours, in flight: never taken over by ourselves
            where = and_(where, col(OutboxMessage.id).not_in(sorted(self.lease.held)))
        if not await self.sender_lock.held():  # another instance sends through the token
            where = and_(where, col(OutboxMessage.channel) != TelegramText.channel.value)
        ids = (
            select(OutboxMessage.id)
            .where(where)
            .order_by(col(OutboxMessage.next_attempt_at), col(OutboxMessage.id))
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        # One statement: the rows are locked, marked ours and returned in a single round trip.
        stmt = (
            update(OutboxMessage)
            .where(col(OutboxMessage.id).in_(ids.scalar_subquery()))
            .values(status="sending", claimed_by=self.worker_id, claimed_at=now)
            .returning(OutboxMessage)
            .execution_options(synchronize_session=False)
        )
        async with self.sessions() as session, session.begin():
            rows = list((await session.exec(stmt)).scalars().all())
        self.lease.hold(rows, now)
        return sorted(rows, key=lambda r: (r.next_attempt_at, r.id))

    async def close(self) -> None:
        """Let another instance send the Telegram messages (this one is stopping)."""
        await self.sender_lock.release()

    async def drain_once(self, limit: int = 100) -> DrainStats:
        """Send what is due now, at most `limit` messages per lane (one claim each)."""
        return await self._run(limit, refill=False)

    async def drain(self, limit: int = 100) -> DrainStats:
        """Send until nothing is due now (messages retried later are left for later).

        Claims again as soon as half of what was claimed has started, so the recipients never
        wait for a batch's slowest chat; at most `limit` messages wait claimed per lane.
        """
        return await self._run(limit, refill=True)

    async def deliver(self, claimed: list[OutboxMessage]) -> DrainStats:
        """Send messages this worker has claimed (`claim`), and record each outcome."""
        return await self._run(len(claimed), refill=False, claimed=claimed)

    async def _run(
        self, limit: int, *, refill: bool, claimed: list[OutboxMessage] | None = None
    ) -> DrainStats:
        stats = DrainStats()
        recorder = Recorder(self.sessions, self.lease)
        async with self.sessions() as session:
            self.moved = await failures.migrated_chats(session)
        plan: list[tuple[str, int, int, list[OutboxMessage] | None]] = [
            (MAIN_LANE, limit, self.concurrency, None),
            (STAFF_LANE, min(limit, STAFF_CLAIM), 1, None),
        ]
        groups: list[OutboxMessage] | None = None
        if claimed is not None:
            groups = [m for m in claimed if is_group_row(m)]
            claimed = [m for m in claimed if not is_group_row(m)]
            plan = [
                (lane, limit, n, [m for m in claimed if (m.lane or MAIN_LANE) == lane])
                for lane, _, n, _ in plan
            ]
        heartbeat = asyncio.create_task(self.lease.heartbeat(), name="outbox-lease")
        told = 0
        try:
            async with asyncio.TaskGroup() as group:
                for lane, room, workers, given in plan:
                    group.create_task(
                        self._lane(lane, room, workers, refill, given, stats, recorder)
                    )
                group.create_task(self.groups.run(refill, stats, recorder, groups))
            # Failures (and staff alerts kept, copied by e-mail) queued staff messages after the
            # staff lane or the groups ran dry: look again until a pass changes nothing.
            while refill and stats.failed + stats.retried > told:
                told = stats.failed + stats.retried
                await self._lane(
                    STAFF_LANE, min(limit, STAFF_CLAIM), 1, True, None, stats, recorder
                )
                await self.groups.run(True, stats, recorder)
        except BaseExceptionGroup as errors:
            first: BaseException = errors
            while isinstance(first, BaseExceptionGroup):
                first = first.exceptions[0]
            raise first from None  # callers see the error itself
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            # Left unsent by an error: no longer renewed, so taken over once the lease runs out.
            self.lease.held.clear()
        return stats

    async def _lane(
        self,
        lane: str,
        limit: int,
        concurrency: int,
        refill: bool,
        claimed: list[OutboxMessage] | None,
        stats: DrainStats,
        recorder: Recorder,
    ) -> None:
        handled = 0  # this lane's own: the other lane's progress is no reason to claim again

        async def claim(room: int) -> list[OutboxMessage]:
            return await self.claim(room, lane)

        async def deliver(message: OutboxMessage) -> None:
            nonlocal handled
            await self._deliver(message, stats, recorder)
            handled += 1

        await run_lane(
            claim,
            deliver,
            lambda: handled,
            limit=limit,
            concurrency=concurrency,
            refill=refill,
            claimed=claimed,
        )

    async def _deliver(self, message: OutboxMessage, stats: DrainStats, recorder: Recorder) -> None:
        # Sent only under a lease renewed within half a lease: no one else can have taken it.
        await self.lease.until_fresh()
        if message.id not in self.lease.held:
            stats.deferred += 1  # taken over while this worker could not renew: not ours
            return
        if message.channel == StaffNotice.channel.value and targets(self.settings):
            await self._route(message, stats, recorder)
            return
        sender = self.senders.get(message.channel)
        if sender is None:
            later = self.clock.now() + UNCONFIGURED_DELAY
            await recorder.record(message.id, status="queued", next_attempt_at=later)
            stats.deferred += 1
            return
        try:
            content = message_of(message)
        except BadPayload as exc:  # never sendable: failed, and staff told
            await self._fail(message, f"bad payload: {exc}", stats, recorder)
            return
        if isinstance(content, TelegramText | TelegramDocument) and content.chat_id in self.moved:
            content = dataclasses.replace(content, chat_id=self.moved[content.chat_id])
        if isinstance(content, TelegramDocument):  # its stored file is read from DATA_DIR
            content = dataclasses.replace(content, root=str(self.settings.data_dir))
        if isinstance(content, Letter) and content.message_id is None:
            # Sent again after a crash, a letter is the same letter: one Message-ID per row.
            digest = hashlib.sha256(message.idempotency_key.encode()).hexdigest()[:20]
            stable = f"<outbox.{digest}@{self.settings.mail_domain}>"
            content = dataclasses.replace(content, message_id=stable)
        try:
            try:
                external_id = await sender.send(content)
            except ChatMoved as exc:  # followed at once, so the chat's order is kept
                assert isinstance(content, TelegramText | TelegramDocument)
                await self._follow(message, exc.new_chat_id)
                content = dataclasses.replace(content, chat_id=exc.new_chat_id)
                external_id = await sender.send(content)
        except ChatMoved as exc:
            await self._fail(message, f"migrated twice: {exc}", stats, recorder)
        except TransientFailure as exc:
            await self._retry(message, str(exc), exc.retry_after, stats, recorder)
        except PermanentFailure as exc:
            await self._fail(message, str(exc), stats, recorder)
        except Exception as exc:  # an unexpected bug must not wedge the queue
            log.exception("outbox %s: unexpected error", message.id)
            await self._retry(message, f"{type(exc).__name__}: {exc}", None, stats, recorder)
        else:
            values: dict[str, Any] = {"status": "sent", "sent_at": self.clock.now()}
            if external_id and message.channel == "email":
                values["email_message_id"] = external_id
            await recorder.record(message.id, **values)
            stats.sent += 1
            if message.lane == STAFF_LANE and (message.channel, message.recipient) in self._down:
                await self._back(message)

    async def _retry(
        self,
        message: OutboxMessage,
        reason: str,
        retry_after: float | None,
        stats: DrainStats,
        recorder: Recorder,
    ) -> None:
        attempts = message.attempts + 1
        if attempts >= MAX_ATTEMPTS:
            await self._fail(message, reason, stats, recorder, attempts=attempts)
            return
        delay = timedelta(seconds=retry_after) if retry_after is not None else backoff(attempts)
        await recorder.record(
            message.id,
            status="queued",
            attempts=attempts,
            last_error=reason[:500],
            next_attempt_at=self.clock.now() + delay,
        )
        stats.retried += 1
        stats.errors.append(reason)

    async def _fail(
        self,
        message: OutboxMessage,
        reason: str,
        stats: DrainStats,
        recorder: Recorder,
        attempts: int | None = None,
    ) -> None:
        attempts = attempts if attempts is not None else message.attempts + 1
        now = self.clock.now()

        async def write(session: AsyncSession) -> None:
            if failures.is_staff(message):
                # Kept rows count their attempts from MAX_ATTEMPTS on: the first time it gets
                # there is its first failure (a copy goes by e-mail then, once).
                first = message.attempts < MAX_ATTEMPTS
                tries = max(attempts, MAX_ATTEMPTS)
                await failures.keep_staff_message(
                    session, self.settings, message, reason, tries, now, first=first
                )
            else:
                await failures.mark_failed(session, self.settings, message, reason, attempts, now)

        await self._written(write, message)
        if failures.is_staff(message):
            self._down.add((message.channel, message.recipient))
            stats.retried += 1
            log.warning("outbox %s: staff channel %s failed, kept", message.id, message.channel)
        else:
            stats.failed += 1
            log.warning("outbox %s failed permanently on %s", message.id, message.channel)
        stats.errors.append(reason)

    async def _follow(self, message: OutboxMessage, new_chat_id: str) -> None:
        """Remember the chat's new id (this message is sent there next, by the caller)."""
        log.warning("outbox: Telegram chat %s migrated to %s", message.recipient, new_chat_id)
        now = self.clock.now()
        await self._written(
            lambda session: failures.follow_migration(session, message, new_chat_id, now), None
        )
        self.moved[message.recipient] = new_chat_id

    async def _route(self, message: OutboxMessage, stats: DrainStats, recorder: Recorder) -> None:
        """A staff message kept while no staff channel was configured: to the channels now."""
        now = self.clock.now()
        await self._written(
            lambda session: failures.route_kept(session, self.settings, message, now), message
        )
        stats.routed += 1

    async def _back(self, message: OutboxMessage) -> None:
        self._down.discard((message.channel, message.recipient))
        channel, recipient, now = message.channel, message.recipient, self.clock.now()
        await self._written(
            lambda session: failures.release_channel(session, channel, recipient, now), None
        )

    async def _written(
        self, write: Callable[[AsyncSession], Awaitable[None]], message: OutboxMessage | None
    ) -> None:
        """Run `write` in a transaction until it commits (the database may be restarting)."""
        attempt = 0
        while True:
            try:
                async with self.sessions() as session, session.begin():
                    await write(session)
                break
            except DATABASE_AWAY as exc:
                log.warning("outbox: writing an outcome failed, again: %s", brief(exc))
                await asyncio.sleep(min(0.2 * 2**attempt, 5.0))
                attempt += 1
        if message is not None:
            self.lease.release([message.id])


__all__ = [
    "BACKOFF_CAP",
    "BACKOFF_FIRST",
    "MAX_ATTEMPTS",
    "DrainStats",
    "Outbox",
    "backoff",
    "status_counts",
]
