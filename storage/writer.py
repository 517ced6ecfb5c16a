"""The Telegram update's writes, committed in one call: what the database costs, not the ORM's.

An update's own writes (its id, an answer, a conversation state) are a few Core statements that
nothing in the update reads back. Through an ORM session on aiosqlite each statement is three
thread hops (cursor, execute, close), the commit another and the pool's reset a sixth: about ten
hops and 1.2 ms per update, half of what a whole answer costs. A `Writer` takes the statements
at once and runs them in one transaction in one call:

- SQLite (`SqliteWriter`): the statements compiled once (SQL text and bind processors, as
  SQLAlchemy would bind them), then executed on the DB-API connection itself. The transaction
  is tried right on the event loop's thread with no wait for the lock (`BEGIN IMMEDIATE`, busy
  timeout 0): a few rows in WAL mode are tens of microseconds, less than a thread hop costs
  (with the GIL handed back and forth, a hop to a writer thread measured ~0.4 ms of CPU). Only
  when another writer holds the lock does the batch go to the writer's own thread, which waits
  for it through SQLite's busy timeout — the event loop never waits for a lock. The loop's
  connection never checkpoints the WAL at commit (that may fsync); the thread does, every
  `CHECKPOINT_EVERY` commits, passively (readers and writers go on).
- any other database (`CoreWriter`): a Core connection of the engine's pool, no session.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.db import _json_dumps, make_private

log = logging.getLogger(__name__)

Statement = tuple[sa.Executable, dict[str, Any] | None]


class Writer(Protocol):
    async def run(self, first: Statement | None, statements: Sequence[Statement]) -> bool:
        """Run `first` then `statements` in one transaction and commit; when `first` changed no
        row (its work was already done elsewhere) roll back and return False."""
        ...

    async def close(self) -> None: ...


class CoreWriter:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def run(self, first: Statement | None, statements: Sequence[Statement]) -> bool:
        async with self.engine.connect() as conn:
            if first is not None and not (await conn.execute(*first)).rowcount:
                await conn.rollback()
                return False
            for statement, params in statements:
                await conn.execute(statement, params)
            await conn.commit()
        return True

    async def close(self) -> None:
        return None  # the engine belongs to the desk


# --- SQLite: compiled once, executed on the DB-API connection ----------------------------------

Processor = Callable[[Any], Any] | None


@dataclass(frozen=True, slots=True)
class Compiled:
    """A statement as SQLite runs it: its SQL text and, per `?` in order, the bind name, the
    type's bind processor (an aware instant to UTC text, JSON to text, …) and the value the
    statement itself carries (a literal in `.values(...)`), used when the call gives none."""

    sql: str
    binds: tuple[tuple[str, Processor, Any], ...]

    def parameters(self, params: dict[str, Any] | None) -> tuple[Any, ...]:
        given = params or {}
        out = []
        for name, process, own in self.binds:
            value = given.get(name, own)
            if value is _NO_VALUE:
                raise sa.exc.ArgumentError(f"a value is required for bind parameter {name!r}")
            out.append(process(value) if process is not None else value)
        return tuple(out)


_NO_VALUE = object()


def compile_sqlite(statement: sa.Executable, dialect: sa.Dialect) -> Compiled:
    compiled = statement.compile(dialect=dialect)  # type: ignore[attr-defined]
    binds = []
    for name in compiled.positiontup or ():
        bind = compiled.binds[name]
        own = _NO_VALUE if bind.required else bind.effective_value
        binds.append((name, bind.type.bind_processor(dialect), own))
    return Compiled(compiled.string, tuple(binds))


class _Busy(Exception):
    """Another connection holds the write lock (the loop's attempt does not wait for it)."""


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


class SqliteWriter:
    CHECKPOINT_EVERY = 256  # commits of a few pages each: about SQLite's 1,000-page default
    COMPILED_MAX = 512  # statements kept compiled (the update's writes are a handful)
    BUSY_TIMEOUT = 30.0  # seconds the writer's thread waits for another writer

    def __init__(self, url: sa.URL) -> None:
        self.path = url.database or ""
        self.dialect = SQLiteDialect_pysqlite(json_serializer=_json_dumps)
        self._compiled: dict[int, tuple[sa.Executable, Compiled]] = {}
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="certdesk-writer")
        self._loop_conn: sqlite3.Connection | None = None  # the event loop's, never waits
        self._thread_conn: sqlite3.Connection | None = None  # the writer thread's
        self._since_checkpoint = 0
        self.handed_to_thread = 0  # batches that found the lock taken (for tests, benches)

    # ---- connections ----------------------------------------------------------------------

    def _connect(self, timeout: float, *, checkpoints: bool) -> sqlite3.Connection:
        # As storage.db.make_engine sets them for every connection; autocommit mode: the
        # transaction is begun and ended here, explicitly.
        conn = sqlite3.connect(
            self.path, timeout=timeout, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA synchronous=NORMAL")
        if not checkpoints:
            conn.execute("PRAGMA wal_autocheckpoint=0")
        make_private(Path(self.path))
        return conn

    def _compile(self, statement: sa.Executable) -> Compiled:
        found = self._compiled.get(id(statement))
        if found is not None and found[0] is statement:
            return found[1]
        compiled = compile_sqlite(statement, self.dialect)
        if len(self._compiled) >= self.COMPILED_MAX:
            self._compiled.clear()  # statements built per call: compiled each time, as before
        self._compiled[id(statement)] = (statement, compiled)
        return compiled

    # ---- one transaction ------------------------------------------------------------------

    def _execute(self, conn: sqlite3.Connection, statement: Statement) -> int:
        compiled = self._compile(statement[0])
        try:
            return conn.execute(compiled.sql, compiled.parameters(statement[1])).rowcount
        except sqlite3.Error as exc:  # as SQLAlchemy reports it (IntegrityError, …), no values
            raise sa.exc.DBAPIError.instance(
                compiled.sql, None, exc, sqlite3.Error, hide_parameters=True
            ) from exc

    def _transaction(
        self, conn: sqlite3.Connection, first: Statement | None, statements: Sequence[Statement]
    ) -> bool:
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if _is_busy(exc):
                raise _Busy from exc
            raise
        try:
            if first is not None and not self._execute(conn, first):
                conn.execute("ROLLBACK")
                return False
            for statement in statements:
                self._execute(conn, statement)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return True

    def _in_thread(self, first: Statement | None, statements: Sequence[Statement]) -> bool:
        if self._thread_conn is None:
            self._thread_conn = self._connect(self.BUSY_TIMEOUT, checkpoints=True)
        return self._transaction(self._thread_conn, first, statements)

    def _checkpoint(self) -> None:
        try:
            if self._thread_conn is None:
                self._thread_conn = self._connect(self.BUSY_TIMEOUT, checkpoints=True)
            self._thread_conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error:
            log.warning("WAL checkpoint failed", exc_info=True)

    async def run(self, first: Statement | None, statements: Sequence[Statement]) -> bool:
        if self._loop_conn is None:
            self._loop_conn = self._connect(0, checkpoints=False)
        try:
            done = self._transaction(self._loop_conn, first, statements)
        except _Busy:
            self.handed_to_thread += 1
            loop = asyncio.get_running_loop()
            done = await loop.run_in_executor(self._thread, self._in_thread, first, statements)
        self._since_checkpoint += 1
        if self._since_checkpoint >= self.CHECKPOINT_EVERY:
            self._since_checkpoint = 0
            self._thread.submit(self._checkpoint)  # in the background: nobody waits for it
        return done

    def _close_thread_conn(self) -> None:
        if self._thread_conn is not None:
            self._thread_conn.close()
            self._thread_conn = None

    async def close(self) -> None:
        if self._loop_conn is not None:
            self._loop_conn.close()
            self._loop_conn = None
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._thread, self._close_thread_conn)
        self._thread.shutdown(wait=False)


def writer_for(engine: AsyncEngine) -> Writer:
    """A dedicated SQLite writer for a database file; a Core writer otherwise (PostgreSQL, or an
    in-memory SQLite database, which a second connection would not see)."""
    url = make_url(engine.url)
    db = url.database
    in_file = bool(db) and db != ":memory:" and not (db or "").startswith("file:")
    if url.get_backend_name() == "sqlite" and in_file:
        return SqliteWriter(url)
    return CoreWriter(engine)


__all__ = ["Compiled", "CoreWriter", "SqliteWriter", "Statement", "Writer", "writer_for"]
