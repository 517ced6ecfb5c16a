"""The outbox worker: claims due messages, hands each to its channel's sender, records the outcome.

Messages are written by `bot.outbox.messages.enqueue` in the transaction that caused them. Claiming
is one `UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED) RETURNING` so several instances on
PostgreSQL never take the same row (SQLite ignores the clause; one instance is assumed there).

Throughput without giving up exactly-once: a claimed batch is split into lanes, one per recipient
(in claim order, so one chat's messages keep their order), and up to `concurrency` lanes send at
once — the sender's limiter keeps Telegram's per-chat and overall rates. Each message's outcome is
committed right after its own send, before its lane sends the next, so a crash repeats at most the
messages in flight: one per lane, never a batch. Outcomes that finish together share one commit.
The default is one lane: a crash then repeats at most the one message in flight, as promised to
the people we write to; more lanes are an explicit choice for bulk sending (see bench/).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BindParameter, and_, bindparam, func, or_, update
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.clock import Clock
from bot.delivery import PermanentFailure, Sender, TransientFailure
from bot.outbox.messages import BadPayload, TelegramText, enqueue, message_of
from messages.render import t
from storage.models import OutboxMessage
from storage.sql import table_of

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 10
BACKOFF_FIRST = timedelta(seconds=30)
BACKOFF_CAP = timedelta(hours=2)
# A claim older than this belongs to a worker that died mid-batch.
STALE_CLAIM = timedelta(minutes=5)
# A channel with no sender configured (e.g. SMTP not set up yet) is looked at again after this.
UNCONFIGURED_DELAY = timedelta(minutes=10)

_TABLE = table_of(OutboxMessage)
_BY_ID = _TABLE.c.id == bindparam("b_id")


@dataclass
class DrainStats:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    deferred: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def handled(self) -> int:
        return self.sent + self.retried + self.failed + self.deferred


def backoff(attempts: int, rng: random.Random | None = None) -> timedelta:
    """Exponential backoff with full jitter in its upper half, capped."""
    base = min(BACKOFF_FIRST * (2 ** max(attempts - 1, 0)), BACKOFF_CAP)
    return base * (0.5 + (rng or random).random() / 2)


class _Recorder:
    """Commits outcomes (UPDATE by primary key, parameters per row) as they come.

    `record` returns once the outcome is committed. Whoever finds no commit running writes every
    outcome waiting, in one transaction: under load outcomes share commits, alone each has its own.
    """

    def __init__(self, sessions: async_sessionmaker) -> None:
        self.sessions = sessions
        self._waiting: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        self._lock = asyncio.Lock()

    async def record(self, message_id: int | None, **values: Any) -> None:
        done = asyncio.get_running_loop().create_future()
        # Bound parameters may not be named like the columns they set: prefix them.
        params = {f"v_{k}": v for k, v in values.items()}
        self._waiting.append(({"b_id": message_id, **params}, done))
        async with self._lock:
            if not done.done():
                batch, self._waiting = self._waiting, []
                try:
                    async with self.sessions() as session, session.begin():
                        await self._write(session, [params for params, _ in batch])
                except Exception as exc:
                    for _, future in batch:
                        future.set_exception(exc)
                except BaseException:  # cancelled mid-commit: nobody waits for it forever
                    for _, future in batch:
                        future.cancel()
                    raise
                else:
                    for _, future in batch:
                        future.set_result(None)
        await done

    @staticmethod
    async def _write(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
        # One executemany per set of columns (sent / retried / released).
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for row in rows:
            groups.setdefault(tuple(sorted(row)), []).append(row)
        for keys, params in groups.items():
            values: dict[str, BindParameter[Any]] = {
                k[2:]: bindparam(k) for k in keys if k != "b_id"
            }
            await session.exec(update(_TABLE).where(_BY_ID).values(values), params=params)


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
    ) -> None:
        self.sessions = sessions
        self.senders = senders
        self.clock = clock
        self.worker_id = worker_id
        self.staff_chat_id = staff_chat_id
        self.locale = locale
        self.concurrency = max(1, concurrency)

    async def claim(self, limit: int) -> list[OutboxMessage]:
        """Take up to `limit` due messages (and stale claims of dead workers), oldest first."""
        now = self.clock.now()
        due = and_(col(OutboxMessage.status) == "queued", col(OutboxMessage.next_attempt_at) <= now)
        stale = and_(
            col(OutboxMessage.status) == "sending",
            col(OutboxMessage.claimed_at) < now - STALE_CLAIM,
        )
        ids = (
            select(OutboxMessage.id)
            .where(or_(due, stale))
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
        return sorted(rows, key=lambda r: (r.next_attempt_at, r.id))

    async def drain_once(self, limit: int = 100) -> DrainStats:
        """Send what is due now, at most `limit` messages (one claim)."""
        return await self._run(limit, refill=False)

    async def drain(self, limit: int = 100) -> DrainStats:
        """Send until nothing is due now (messages retried later are left for later).

        Claims again as soon as half of what was claimed has started, so the lanes never wait
        for a batch's slowest chat; at most `limit` messages wait claimed in this process.
        """
        return await self._run(limit, refill=True)

    async def deliver(self, claimed: list[OutboxMessage]) -> DrainStats:
        """Send messages this worker has claimed (`claim`), in lanes, and record each outcome."""
        return await self._run(len(claimed), refill=False, claimed=claimed)

    async def _run(
        self, limit: int, *, refill: bool, claimed: list[OutboxMessage] | None = None
    ) -> DrainStats:
        stats = DrainStats()
        recorder = _Recorder(self.sessions)
        lanes: dict[str, deque[OutboxMessage]] = {}
        ready: asyncio.Queue[str | None] = asyncio.Queue()
        progress = asyncio.Event()
        waiting = 0  # claimed, not started

        def add(batch: list[OutboxMessage]) -> None:
            nonlocal waiting
            waiting += len(batch)
            for message in batch:
                lane = lanes.get(message.recipient)
                if lane is None:
                    lanes[message.recipient] = deque([message])
                    ready.put_nowait(message.recipient)
                else:  # that chat's lane is running: keep its order
                    lane.append(message)

        async def work() -> None:
            nonlocal waiting
            while (recipient := await ready.get()) is not None:
                lane = lanes[recipient]
                while lane:
                    message = lane.popleft()
                    waiting -= 1
                    progress.set()
                    await self._deliver(message, stats, recorder)
                del lanes[recipient]
                progress.set()

        async def produce() -> None:
            nonlocal claimed
            while True:
                room = limit - waiting
                if claimed is not None:  # `deliver`: the first batch is given
                    batch, claimed = claimed, None
                else:
                    batch = await self.claim(room)
                add(batch)
                if not refill:
                    break
                if batch and len(batch) == room:
                    # Maybe more is due: claim again once half of what waits has started, so
                    # the lanes never idle behind a batch's slowest chat.
                    await _until(lambda: waiting <= limit // 2, progress)
                    continue
                # All that was due is claimed. Look again once it is done, if anything was
                # handled: a failure may have queued a staff alert due now.
                handled = stats.handled
                await _until(lambda: not lanes, progress)
                if stats.handled == handled and not batch:
                    break
            await _until(lambda: not lanes, progress)
            for _ in range(self.concurrency):
                ready.put_nowait(None)

        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(produce())
                for _ in range(self.concurrency):
                    group.create_task(work())
        except BaseExceptionGroup as errors:
            raise errors.exceptions[0] from None  # callers see the error itself
        return stats

    async def _deliver(
        self, message: OutboxMessage, stats: DrainStats, recorder: _Recorder
    ) -> None:
        now = self.clock.now()
        if message.claimed_at is not None and now - message.claimed_at > STALE_CLAIM / 2:
            # Claimed long ago behind a slow lane: another worker may take it over soon. Give it
            # back rather than risk both sending it.
            await recorder.record(message.id, status="queued", claimed_by=None)
            stats.deferred += 1
            return
        sender = self.senders.get(message.channel)
        if sender is None:
            await recorder.record(message.id, status="queued", next_attempt_at=self._later())
            stats.deferred += 1
            return
        try:
            content = message_of(message)
        except BadPayload as exc:  # never sendable: failed, and staff told
            await self._fail(message, f"bad payload: {exc}", stats)
            return
        try:
            external_id = await sender.send(content)
        except TransientFailure as exc:
            await self._retry(message, str(exc), exc.retry_after, stats, recorder)
        except PermanentFailure as exc:
            await self._fail(message, str(exc), stats)
        except Exception as exc:  # an unexpected bug must not wedge the queue
            log.exception("outbox %s: unexpected error", message.id)
            await self._retry(message, f"{type(exc).__name__}: {exc}", None, stats, recorder)
        else:
            values: dict[str, Any] = {"status": "sent", "sent_at": self.clock.now()}
            if external_id and message.channel == "email":
                values["email_message_id"] = external_id
            await recorder.record(message.id, **values)
            stats.sent += 1

    async def _retry(
        self,
        message: OutboxMessage,
        reason: str,
        retry_after: float | None,
        stats: DrainStats,
        recorder: _Recorder,
    ) -> None:
        attempts = message.attempts + 1
        if attempts >= MAX_ATTEMPTS:
            await self._fail(message, reason, stats, attempts=attempts)
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
        self, message: OutboxMessage, reason: str, stats: DrainStats, attempts: int | None = None
    ) -> None:
        async with self.sessions() as session, session.begin():
            await session.exec(
                update(OutboxMessage)
                .where(col(OutboxMessage.id) == message.id)
                .values(
                    status="failed",
                    attempts=attempts if attempts is not None else message.attempts + 1,
                    last_error=reason[:500],
                )
                .execution_options(synchronize_session=False)
            )
            # Tell staff, unless what failed was itself a staff alert (no loop).
            if self.staff_chat_id is not None and message.recipient != str(self.staff_chat_id):
                text = t(
                    "outbox.delivery_failed",
                    self.locale,
                    channel=message.channel,
                    recipient=message.recipient,
                    reason=reason[:200],
                )
                await enqueue(
                    session,
                    TelegramText(str(self.staff_chat_id), text, html=False),
                    key=f"outbox-failed:{message.id}",
                    case_id=message.case_id,
                    now=self.clock.now(),
                    lane="staff",
                )
        stats.failed += 1
        stats.errors.append(reason)
        log.warning("outbox %s failed permanently on %s", message.id, message.channel)

    def _later(self) -> datetime:
        return self.clock.now() + UNCONFIGURED_DELAY


async def _until(condition: Callable[[], bool], progress: asyncio.Event) -> None:
    while not condition():
        progress.clear()
        await progress.wait()


async def status_counts(sessions: async_sessionmaker) -> dict[str, int]:
    """Queued, retrying (queued after a failure), sending, sent and failed counts."""
    retrying = and_(col(OutboxMessage.status) == "queued", col(OutboxMessage.attempts) > 0)
    async with sessions() as session:
        rows = await session.exec(
            select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
        )
        counts = {status: n for status, n in rows.all()}
        n_retrying = (
            await session.exec(select(func.count()).select_from(OutboxMessage).where(retrying))
        ).one()
    queued = counts.get("queued", 0)
    return {
        "queued": queued - n_retrying,
        "retrying": n_retrying,
        "sending": counts.get("sending", 0),
        "sent": counts.get("sent", 0),
        "failed": counts.get("failed", 0),
    }
