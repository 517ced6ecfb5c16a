"""What the worker writes about its claims: outcomes after a send, and the lease it renews.

Both survive the database going away (a PostgreSQL restart): an outcome is written again until it
is committed, for as long as the process lives — a message already sent must never be left
`sending` for another worker to send again. The lease is the claim's `claimed_at`, renewed for
every message this process holds; a crashed worker's claims are taken over once it is older than
the lease (30 s), not after minutes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BindParameter, and_, bindparam, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.clock import Clock
from storage.models import OutboxMessage
from storage.sql import table_of

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=30)
WRITE_RETRY_FIRST = 0.2  # seconds; doubled up to the cap while the database is away
WRITE_RETRY_CAP = 5.0

# What a database going away raises: SQLAlchemy wraps the driver's errors (asyncpg's included);
# a refused connection may surface as the OSError itself.
DATABASE_AWAY: tuple[type[BaseException], ...] = (SQLAlchemyError, OSError)


def brief(exc: BaseException) -> str:
    """The error without its SQL and parameters (names, addresses: never in a log line)."""
    return f"{type(exc).__name__}: {getattr(exc, 'orig', None) or exc}"[:300]


_TABLE = table_of(OutboxMessage)
_BY_ID = _TABLE.c.id == bindparam("b_id")


async def _pause(attempt: int) -> None:
    await asyncio.sleep(min(WRITE_RETRY_FIRST * 2**attempt, WRITE_RETRY_CAP))


class Recorder:
    """Commits outcomes (UPDATE by primary key, parameters per row) as they come.

    `record` returns once the outcome is committed. Whoever finds no commit running writes every
    outcome waiting, in one transaction: under load outcomes share commits, alone each has its own.
    A failed commit is tried again (the database restarting) until it succeeds.
    """

    def __init__(self, sessions: async_sessionmaker, lease: Lease | None = None) -> None:
        self.sessions = sessions
        self.lease = lease
        self.rewrites = 0  # commits that had to be tried again
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
                    await self._commit([params for params, _ in batch])
                except BaseException:  # cancelled mid-commit: nobody waits for it forever
                    for _, future in batch:
                        future.cancel()
                    raise
                for _, future in batch:
                    future.set_result(None)
        await done
        if self.lease is not None:
            self.lease.release([message_id])

    async def _commit(self, rows: list[dict[str, Any]]) -> None:
        attempt = 0
        while True:
            try:
                async with self.sessions() as session, session.begin():
                    await self._write(session, rows)
                return
            except DATABASE_AWAY as exc:
                log.warning(
                    "outbox: recording %d outcomes failed, again: %s", len(rows), brief(exc)
                )
                self.rewrites += 1
                await _pause(attempt)
                attempt += 1

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


class Lease:
    """The claims this process holds, renewed together; a message is sent only under a lease
    renewed less than half a lease ago, so no other worker can have taken it over meanwhile."""

    def __init__(
        self, sessions: async_sessionmaker, clock: Clock, worker_id: str, length: timedelta
    ) -> None:
        self.sessions, self.clock, self.worker_id, self.length = sessions, clock, worker_id, length
        self.held: set[int] = set()
        self.renewed_at: datetime | None = None

    def hold(self, rows: Iterable[OutboxMessage], at: datetime) -> None:
        fresh = not self.held or self.renewed_at is None
        self.held.update(r.id for r in rows if r.id is not None)
        self.renewed_at = at if fresh or self.renewed_at is None else min(self.renewed_at, at)

    def release(self, ids: Iterable[int | None]) -> None:
        self.held.difference_update(i for i in ids if i is not None)

    def fresh(self) -> bool:
        return self.renewed_at is not None and self.clock.now() - self.renewed_at < self.length / 2

    async def renew(self) -> set[int]:
        """Stamp every held claim with now; returns the ids still ours (a claim taken over by
        another worker while this one could not renew is dropped, never sent)."""
        now = self.clock.now()
        if not self.held:
            self.renewed_at = now
            return set()
        ids = sorted(self.held)
        stmt = (
            update(OutboxMessage)
            .where(
                and_(
                    col(OutboxMessage.id).in_(ids),
                    col(OutboxMessage.status) == "sending",
                    col(OutboxMessage.claimed_by) == self.worker_id,
                )
            )
            .values(claimed_at=now)
            .returning(col(OutboxMessage.id))
            .execution_options(synchronize_session=False)
        )
        async with self.sessions() as session, session.begin():
            ours = set((await session.exec(stmt)).scalars().all())
        # Recorded meanwhile (no longer `sending`) or lost: either way, not ours to send.
        self.held.intersection_update(ours | (self.held - set(ids)))
        self.renewed_at = now
        return ours

    async def until_fresh(self) -> None:
        """Renew now if the lease is getting old, retrying while the database is away."""
        attempt = 0
        while not self.fresh():
            try:
                await self.renew()
            except DATABASE_AWAY as exc:
                log.warning("outbox: renewing the lease failed, again: %s", brief(exc))
                await _pause(attempt)
                attempt += 1

    async def heartbeat(self) -> None:
        """Renew every third of a lease until cancelled (claims waiting behind a slow send)."""
        while True:
            await asyncio.sleep(self.length.total_seconds() / 3)
            try:
                await self.renew()
            except DATABASE_AWAY as exc:
                log.warning("outbox: renewing the lease failed: %s", brief(exc))
