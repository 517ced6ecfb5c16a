"""The outbox worker: claims due messages, hands each to its channel's sender, records the outcome.

Messages are written by `storage.repo.outbox.enqueue` in the transaction that caused them. Claiming
uses `FOR UPDATE SKIP LOCKED` so several instances on PostgreSQL never take the same row (SQLite
ignores the clause; one instance is assumed there). Each message is marked sent in its own
transaction right after its send, so a crash repeats at most the message in flight.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select

from bot.clock import Clock
from bot.delivery import PermanentFailure, Sender, TransientFailure
from messages.render import t
from storage.models import OutboxMessage
from storage.repo.outbox import enqueue

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 10
BACKOFF_FIRST = timedelta(seconds=30)
BACKOFF_CAP = timedelta(hours=2)
# A claim older than this belongs to a worker that died mid-batch.
STALE_CLAIM = timedelta(minutes=5)
# A channel with no sender configured (e.g. SMTP not set up yet) is looked at again after this.
UNCONFIGURED_DELAY = timedelta(minutes=10)


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
    ) -> None:
        self.sessions = sessions
        self.senders = senders
        self.clock = clock
        self.worker_id = worker_id
        self.staff_chat_id = staff_chat_id
        self.locale = locale

    async def claim(self, limit: int) -> list[OutboxMessage]:
        now = self.clock.now()
        due = and_(OutboxMessage.status == "queued", OutboxMessage.next_attempt_at <= now)
        stale = and_(
            OutboxMessage.status == "sending", OutboxMessage.claimed_at < now - STALE_CLAIM
        )
        stmt = (
            select(OutboxMessage)
            .where(or_(due, stale))
            .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        async with self.sessions() as session, session.begin():
            rows = list((await session.exec(stmt)).all())
            for row in rows:
                row.status = "sending"
                row.claimed_by = self.worker_id
                row.claimed_at = now
        return rows

    async def drain_once(self, limit: int = 100) -> DrainStats:
        """Send what is due now, at most `limit` messages."""
        stats = DrainStats()
        for message in await self.claim(limit):
            await self._deliver(message, stats)
        return stats

    async def drain(self, limit: int = 100) -> DrainStats:
        """Send until nothing is due now (messages retried later are left for later)."""
        total = DrainStats()
        while (stats := await self.drain_once(limit)).handled:
            total.sent += stats.sent
            total.retried += stats.retried
            total.failed += stats.failed
            total.deferred += stats.deferred
            total.errors += stats.errors
        return total

    async def _deliver(self, message: OutboxMessage, stats: DrainStats) -> None:
        sender = self.senders.get(message.channel)
        if sender is None:
            await self._update(message.id, status="queued", next_attempt_at=self._later())
            stats.deferred += 1
            return
        try:
            external_id = await sender.send(message)
        except TransientFailure as exc:
            await self._retry(message, str(exc), exc.retry_after, stats)
        except PermanentFailure as exc:
            await self._fail(message, str(exc), stats)
        except Exception as exc:  # an unexpected bug must not wedge the queue
            log.exception("outbox %s: unexpected error", message.id)
            await self._retry(message, f"{type(exc).__name__}: {exc}", None, stats)
        else:
            values: dict[str, object] = {"status": "sent", "sent_at": self.clock.now()}
            if external_id and message.channel == "email":
                values["email_message_id"] = external_id
            await self._update(message.id, **values)
            stats.sent += 1

    async def _retry(
        self, message: OutboxMessage, reason: str, retry_after: float | None, stats: DrainStats
    ) -> None:
        attempts = message.attempts + 1
        if attempts >= MAX_ATTEMPTS:
            await self._fail(message, reason, stats, attempts=attempts)
            return
        delay = timedelta(seconds=retry_after) if retry_after is not None else backoff(attempts)
        await self._update(
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
            row = await session.get(OutboxMessage, message.id)
            assert row is not None
            row.status = "failed"
            row.attempts = attempts if attempts is not None else row.attempts + 1
            row.last_error = reason[:500]
            # Tell staff, unless what failed was itself a staff alert (no loop).
            if self.staff_chat_id is not None and row.recipient != str(self.staff_chat_id):
                text = t(
                    "outbox.delivery_failed",
                    self.locale,
                    channel=row.channel,
                    recipient=row.recipient,
                    reason=reason[:200],
                )
                await enqueue(
                    session,
                    channel="telegram",
                    recipient=str(self.staff_chat_id),
                    payload={"text": text, "parse_mode": None},
                    idempotency_key=f"outbox-failed:{row.id}",
                    case_id=row.case_id,
                    now=self.clock.now(),
                )
        stats.failed += 1
        stats.errors.append(reason)
        log.warning("outbox %s failed permanently on %s", message.id, message.channel)

    async def _update(self, message_id: int | None, **values: object) -> None:
        async with self.sessions() as session, session.begin():
            row = await session.get(OutboxMessage, message_id)
            assert row is not None
            for key, value in values.items():
                setattr(row, key, value)

    def _later(self) -> datetime:
        return self.clock.now() + UNCONFIGURED_DELAY


async def status_counts(sessions: async_sessionmaker) -> dict[str, int]:
    """Queued, retrying (queued after a failure), sending, sent and failed counts."""
    retrying = and_(OutboxMessage.status == "queued", OutboxMessage.attempts > 0)
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
