"""A send rate shared by every instance on one PostgreSQL database: one row per scope.

Telegram's ~30 messages a second are per bot token, whichever instance sends: the outbox's
holder of the sender lock and every instance answering its updates. Each send reserves the
scope's next slot with one upsert on the database's clock (`clock_timestamp()`, so the hosts'
clocks need not agree) and is told how long to wait for it. A 429 moves the scope's next slot past
its `retry_after` for every instance. The statements run on a connection of their own, outside
the pool and any transaction: one round trip a send. When the database cannot be reached the
caller falls back to its own limiter (`reserve` answers None): sending never stops for it. SQLite
runs one instance: no shared budget (`send_budget` answers None).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # no stubs: its connection is typed Any here
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)

RECONNECT = 5.0  # seconds between attempts to reach the database again after a failure
TIMEOUT = 1.0  # a statement (or a connection attempt) slower than this: the local limiter

# The slot: the scope's next turn or now, whichever is later, less what the send may take ahead
# of its turn ($3: a burst; 0 for the overall cap); the turn moves one interval on (a cell-rate
# limit). Answers the wait for the slot (≤ 0: at once), on the database's clock.
_RESERVE = """
WITH now AS (SELECT extract(epoch FROM clock_timestamp())::double precision AS t)
INSERT INTO send_budget (scope, next_at)
SELECT $1, now.t + $2 FROM now
ON CONFLICT (scope) DO UPDATE
SET next_at = greatest(send_budget.next_at + $2, excluded.next_at)
RETURNING next_at - $2 - $3 - (SELECT t FROM now)
"""
_PAUSE = """
WITH now AS (SELECT extract(epoch FROM clock_timestamp())::double precision AS t)
INSERT INTO send_budget (scope, next_at)
SELECT $1, now.t + $2 FROM now
ON CONFLICT (scope) DO UPDATE
SET next_at = greatest(send_budget.next_at, excluded.next_at)
"""


class SendBudget:
    """The slots of one scope (e.g. "telegram:<bot id>") on `engine`'s PostgreSQL database."""

    def __init__(
        self,
        engine: AsyncEngine,
        scope: str,
        *,
        reconnect: float = RECONNECT,
        timeout: float = TIMEOUT,
    ) -> None:
        # asyncpg's own arguments, as the engine's dialect gives them (host, user, ssl …), less
        # SQLAlchemy's; unnamed statements, so a pooler in transaction mode does not break them.
        _, args = engine.dialect.create_connect_args(engine.url)
        for name in ("prepared_statement_cache_size", "prepared_statement_name_func"):
            args.pop(name, None)
        self.connect_args: dict[str, Any] = {**args, "statement_cache_size": 0}
        self.scope = scope
        self.reconnect = reconnect
        self.timeout = timeout
        self._conn: Any = None  # asyncpg.Connection
        self._failed_at: float | None = None  # monotonic, while the database is unreachable
        self._lock = asyncio.Lock()  # one statement at a time on the dedicated connection
        self._closed = False  # a send after close (shutting down) is paced locally

    @property
    def available(self) -> bool:
        """False while the database could not be reached (the local limiter is in use)."""
        return self._failed_at is None

    async def reserve(
        self, interval: float, chat: str | None = None, ahead: float = 0.0
    ) -> float | None:
        """Seconds until this send's slot (≥ 0), or None: the database is unreachable. With
        `chat`, the slot of that chat (scope "<scope>:chat:<id>": a group's 20 a minute), up to
        `ahead` seconds before its turn."""
        value = await self._run(_RESERVE, chat, interval, ahead)
        return None if value is None else max(0.0, float(value))

    async def pause(self, seconds: float) -> bool:
        """No send of the scope before `seconds` from now, on any instance; False: not shared."""
        return await self._run(_PAUSE, None, seconds, fetch=False) is not None

    async def close(self) -> None:
        async with self._lock:
            self._closed = True
            conn, self._conn = self._conn, None
            if conn is not None:
                try:
                    await conn.close(timeout=self.timeout)
                except Exception:
                    conn.terminate()

    async def _run(self, sql: str, chat: str | None, *params: float, fetch: bool = True) -> Any:
        scope = self.scope if chat is None else f"{self.scope}:chat:{chat}"
        async with self._lock:
            now = time.monotonic()
            if self._closed:
                return None
            if self._failed_at is not None and now - self._failed_at < self.reconnect:
                return None
            try:
                if self._conn is None:
                    args = {**self.connect_args, "timeout": self.timeout}
                    self._conn = await asyncpg.connect(**args)
                    if self._failed_at is not None:
                        log.info("send budget %s: shared again", self.scope)
                        self._failed_at = None
                if fetch:
                    return await self._conn.fetchval(sql, scope, *params, timeout=self.timeout)
                await self._conn.execute(sql, scope, *params, timeout=self.timeout)
                return True
            except Exception as exc:  # unreachable, timed out, session killed: send locally
                if self._failed_at is None:
                    log.warning(
                        "send budget %s: the database cannot be reached (%s: %s); pacing this "
                        "instance alone until it can",
                        self.scope,
                        type(exc).__name__,
                        exc,
                    )
                self._failed_at = time.monotonic()
                conn, self._conn = self._conn, None
                if conn is not None:
                    conn.terminate()
                return None


def send_budget(engine: AsyncEngine | None, scope: str) -> SendBudget | None:
    """The shared budget on PostgreSQL; None on SQLite (one instance: its own limiter)."""
    if engine is None or engine.dialect.name != "postgresql":
        return None
    return SendBudget(engine, scope)
