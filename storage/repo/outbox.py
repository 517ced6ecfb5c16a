"""The outbox: what is to be sent, written in the transaction that decided to send it."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import weakref
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # no stubs: its connection is typed Any here
from sqlalchemy import delete, event, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import Channel, OutboxMessage, OutboxStatus, utcnow
from storage.sql import dialect_name

log = logging.getLogger(__name__)

MAIN_LANE = "main"
STAFF_LANE = "staff"
# The advisory lock whose holder sends through the Telegram token ("certdesk" in ASCII).
TELEGRAM_SENDER_LOCK = 0x63657274_6465736B
SENDER_LOCK_RETRY = 5.0  # seconds between a standby instance's attempts to take the lock
# Finished rows the retention prune may delete; failed ones wait for a retry or a cancel.
PRUNABLE = (OutboxStatus.SENT.value, OutboxStatus.CANCELLED.value)
PRUNE_BATCH = 1_000


def address_key(address: str) -> str:
    """The bounded key of an e-mail address the auto-reply limit counts by."""
    return hashlib.sha256(address.strip().lower().encode()).hexdigest()


async def enqueue(
    session: AsyncSession,
    *,
    channel: Channel | str,
    recipient: str,
    payload: Mapping[str, Any],
    idempotency_key: str,
    case_id: int | None = None,
    not_before: datetime | None = None,
    now: datetime | None = None,
    lane: str = MAIN_LANE,
    coalesce_key: str | None = None,
) -> OutboxMessage:
    """Queue a message once per `idempotency_key`; a repeat returns the row already queued.

    Nothing is committed here: the message is sent only if the caller's transaction commits.
    `now` (the caller's clock) stamps `created_at`; `not_before` delays the first attempt.
    """
    channel = Channel(channel)  # refuses an unknown channel before it reaches the table
    now = now or utcnow()
    values = {
        "idempotency_key": idempotency_key,
        "channel": channel.value,
        "recipient": recipient,
        "payload": dict(payload),
        "lane": lane,
        "coalesce_key": coalesce_key,
        "coalesced": 0,
        "status": OutboxStatus.QUEUED.value,
        "attempts": 0,
        "next_attempt_at": not_before or now,
        "case_id": case_id,
        "created_at": now,
        "auto_reply_key": (
            address_key(recipient)
            if channel is Channel.EMAIL and payload.get("auto_reply")
            else None
        ),
    }
    # INSERT … ON CONFLICT DO NOTHING rather than SELECT-then-INSERT: two concurrent
    # transactions with the same key cannot both insert, and neither fails.
    insert = pg_insert if dialect_name(session) == "postgresql" else sqlite_insert
    stmt = (
        insert(OutboxMessage)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
    )
    await session.exec(stmt)
    query = select(OutboxMessage).where(OutboxMessage.idempotency_key == idempotency_key)
    return (await session.exec(query)).one()


async def record_sent(
    session: AsyncSession, *, recipient: str, payload: Mapping[str, Any], key: str, now: datetime
) -> None:
    """A Telegram message sent straight away (a reply in a group), recorded as a sent row: the
    group's pacer counts its last minute from these rows (bot.outbox.groups.recent_sends)."""
    values = {
        "idempotency_key": key,
        "channel": Channel.TELEGRAM.value,
        "recipient": recipient,
        "payload": dict(payload),
        "lane": STAFF_LANE,
        "coalesced": 0,
        "status": OutboxStatus.SENT.value,
        "attempts": 1,
        "next_attempt_at": now,
        "created_at": now,
        "sent_at": now,
    }
    insert = pg_insert if dialect_name(session) == "postgresql" else sqlite_insert
    stmt = insert(OutboxMessage).values(**values)
    await session.exec(stmt.on_conflict_do_nothing(index_elements=["idempotency_key"]))


async def latest_in_group(
    session: AsyncSession, coalesce_key: str, since: datetime
) -> OutboxMessage | None:
    """The newest row of a coalescing group due (or sent) at or after `since`."""
    query = (
        select(OutboxMessage)
        .where(col(OutboxMessage.coalesce_key) == coalesce_key)
        .where(col(OutboxMessage.next_attempt_at) >= since)
        .order_by(col(OutboxMessage.id).desc())
        .limit(1)
    )
    return (await session.exec(query)).first()


async def by_key(session: AsyncSession, idempotency_key: str) -> OutboxMessage | None:
    query = select(OutboxMessage).where(OutboxMessage.idempotency_key == idempotency_key)
    return (await session.exec(query)).first()


async def count_in(
    session: AsyncSession, row_id: int, payload: Callable[[int], Mapping[str, Any]]
) -> int:
    """One more alert folded into a queued summary row; its payload re-rendered for the new
    count. The row is locked by the UPDATE until the caller commits: concurrent folds queue."""
    stmt = (
        update(OutboxMessage)
        .where(col(OutboxMessage.id) == row_id)
        .values(coalesced=col(OutboxMessage.coalesced) + 1)
        .returning(col(OutboxMessage.coalesced))
        .execution_options(synchronize_session=False)
    )
    count = int((await session.exec(stmt)).scalar_one())
    await session.exec(
        update(OutboxMessage)
        .where(col(OutboxMessage.id) == row_id)
        .values(payload=dict(payload(count)))
        .execution_options(synchronize_session=False)
    )
    return count


class SenderLock:
    """Which instance sends Telegram messages: the one holding a PostgreSQL advisory lock.

    Telegram's limits (30 a second overall, 20 a minute to a group, 1 a second to a chat) are per
    bot token, and each instance paces only what it sends itself: with one sending instance the
    total is its limiter's. The lock is held on a connection of its own, outside the pool and any
    transaction (no snapshot held open), so it lasts as long as that session: an instance that
    stops or dies lets it go, and a standby takes it at its next attempt (every `retry` seconds).
    The holder checks its session is alive before each claim. Disposing of the engine drops the
    lock too. One per engine (`sender_lock`): the workers of a process are one instance. SQLite
    runs one instance: always the holder.
    """

    def __init__(self, engine: AsyncEngine | None, *, retry: float = SENDER_LOCK_RETRY) -> None:
        postgres = engine is not None and engine.dialect.name == "postgresql"
        self.engine = engine if postgres else None
        self.retry = retry
        self._conn: Any = None  # asyncpg.Connection
        self._tried_at: float | None = None
        self._lock = asyncio.Lock()  # one statement at a time on the dedicated connection
        if self.engine is not None:
            event.listen(self.engine.sync_engine, "engine_disposed", self._disposed)

    async def held(self) -> bool:
        """Whether this instance sends Telegram messages now (taking the lock when it is free)."""
        if self.engine is None:
            return True
        async with self._lock:
            if self._conn is not None:
                try:
                    await self._conn.fetchval("SELECT 1")
                    return True
                except Exception as exc:  # the session, and with it the lock, is gone
                    log.warning("outbox: the Telegram sender lock was lost: %s", exc)
                    self._drop()
            now = time.monotonic()
            if self._tried_at is not None and now - self._tried_at < self.retry:
                return False
            self._tried_at = now
            url = self.engine.url.set(drivername="postgresql")
            conn = await asyncpg.connect(url.render_as_string(hide_password=False))
            try:
                got = await conn.fetchval("SELECT pg_try_advisory_lock($1)", TELEGRAM_SENDER_LOCK)
            except BaseException:
                conn.terminate()
                raise
            if not got:
                await conn.close()
                return False
            log.info("outbox: this instance now sends the Telegram messages")
            self._conn = conn
            return True

    async def release(self) -> None:
        """Let another instance send (this one is stopping): closing the session unlocks."""
        async with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                try:
                    await conn.close(timeout=5)
                except Exception:
                    conn.terminate()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.terminate()

    def _disposed(self, _engine: object) -> None:
        self._drop()  # synchronous: closes the socket, the server lets the lock go


_LOCKS: weakref.WeakKeyDictionary[object, SenderLock] = weakref.WeakKeyDictionary()


def sender_lock(engine: AsyncEngine | None, *, retry: float = SENDER_LOCK_RETRY) -> SenderLock:
    """The engine's one SenderLock: the outbox workers of one process are one instance."""
    if engine is None:
        return SenderLock(None)
    lock = _LOCKS.get(engine.sync_engine)
    if lock is None:
        lock = _LOCKS[engine.sync_engine] = SenderLock(engine, retry=retry)
    lock.retry = min(lock.retry, retry)
    return lock


async def prune_finished(session: AsyncSession, before: datetime) -> int:
    """Delete up to PRUNE_BATCH sent or cancelled rows created before `before`; how many went.

    Only the outbox: case events, inbound letters and the hash chain are never touched (a
    letter's Message-ID stays findable in `case_message_id`)."""
    old = (
        select(OutboxMessage.id)
        .where(col(OutboxMessage.status).in_(PRUNABLE), OutboxMessage.created_at < before)
        .order_by(col(OutboxMessage.id))
        .limit(PRUNE_BATCH)
    )
    ids = list((await session.exec(old)).all())
    if not ids:
        return 0
    stmt = delete(OutboxMessage).where(col(OutboxMessage.id).in_(ids))
    await session.exec(stmt.execution_options(synchronize_session=False))
    return len(ids)


def retention_cutoff(now: datetime, days: int) -> datetime | None:
    """Rows created before this may go; None when the retention is 0 (keep forever)."""
    return now - timedelta(days=days) if days > 0 else None
