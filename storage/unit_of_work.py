"""The unit of work: one database session whose transaction the caller commits.

Services take a `UnitOfWork` and read and write through `uow.session`; they never open sessions.
Who opens the unit decides when it commits:
- a Telegram update (bot.main.app): one unit per update, the update id recorded in its first
  commit, which happens before the first reply goes out (handlers.telegram.common.send), and
  once more at the end for what came after (conversation states). An update that only writes
  (`write`: its id, an answer, a state) and reads nothing through the session commits through
  the application's `Writer` (storage.writer): one call, no ORM session;
- a job, a letter, a CLI command: `async with UnitOfWork(desk.sessions) as uow:` commits on a
  clean exit and rolls back on an exception.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.writer import Statement, Writer

log = logging.getLogger(__name__)

Callback = Callable[[], None]


class AlreadyHandled(Exception):
    """The update this unit belongs to was recorded meanwhile by another instance."""


class UnitOfWork:
    """A session opened on first use; `commit()` makes everything so far durable at once."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], writer: Writer | None = None
    ) -> None:
        self._sessions = sessions
        self._writer = writer
        self._session: AsyncSession | None = None
        self._after_commit: list[Callback] = []
        self._first: Statement | None = None  # runs first in the next commit, kept on rollback
        self._first_done: Callback | None = None
        self._writes: list[Statement] = []  # `write`s not yet executed
        self.committed = False  # something was committed through this unit
        self.closed = False
        self._lock = asyncio.Lock()  # replies sent concurrently each commit first

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            self._session = self._sessions()
            # Writes queued before the session was used run first in its transaction, so what
            # it reads includes them.
            sa.event.listen(self._session.sync_session, "after_begin", self._replay_writes)
        return self._session

    def _replay_writes(self, _session: Any, _transaction: Any, connection: sa.Connection) -> None:
        writes, self._writes = self._writes, []
        for statement, params in writes:
            connection.execute(statement, params)  # within the session's greenlet: sync is fine

    def after_commit(self, callback: Callback) -> None:
        """Run `callback` once what was written so far is durable (a cache update, say)."""
        self._after_commit.append(callback)

    def first_in_commit(
        self, statement: sa.Executable, params: dict[str, Any], done: Callback | None = None
    ) -> None:
        """Run `statement` in the next commit before anything else; when it changes no row the
        work was already done elsewhere: nothing is written and AlreadyHandled is raised.
        Unlike other writes it survives `rollback()`, so a failed update is still recorded;
        `done` runs once it is committed."""
        self._first, self._first_done = (statement, params), done

    async def write(self, statement: sa.Executable, params: dict[str, Any] | None = None) -> None:
        """A Core write nothing in this unit reads back (an answer, a conversation state): run
        in the next commit, in order, after what the session wrote. In the session's transaction
        when the unit uses one; otherwise the commit is one call to the writer."""
        if self._session is not None and self._session.in_transaction():
            await (await self._session.connection()).execute(statement, params)
        else:
            self._writes.append((statement, params))

    async def commit(self) -> None:
        async with self._lock:
            await self._commit()

    async def _commit(self) -> None:
        first, self._first = self._first, None
        if first is not None and self._first_done is not None:
            self._after_commit.append(self._first_done)
        self._first_done = None
        writes, self._writes = self._writes, []
        in_session = self._session is not None and self._session.in_transaction()
        if first is None and not writes and not in_session:
            self._run_after_commit()
            return
        if not in_session and self._writer is not None:
            if not await self._writer.run(first, writes):
                self._after_commit.clear()
                raise AlreadyHandled
        else:
            await self._commit_session(first, writes)
        self.committed = True
        self._run_after_commit()

    async def _commit_session(self, first: Statement | None, writes: list[Statement]) -> None:
        session = self.session
        try:
            conn = await session.connection()
            if first is not None and not (await conn.execute(*first)).rowcount:
                await session.rollback()
                self._after_commit.clear()
                raise AlreadyHandled
            for statement, params in writes:
                await conn.execute(statement, params)
            await session.commit()
        except BaseException:
            if first is not None and session.in_transaction():
                await session.rollback()
            raise

    async def rollback(self) -> None:
        """Drop what was not committed yet (a handler failed)."""
        self._after_commit.clear()
        self._writes.clear()
        if self._session is not None:
            await self._session.rollback()

    async def close(self) -> None:
        self.closed = True
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _run_after_commit(self) -> None:
        callbacks, self._after_commit = self._after_commit, []
        for callback in callbacks:
            callback()

    async def __aenter__(self) -> UnitOfWork:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc_type is None:
                await self.commit()
            else:
                await self.rollback()
        finally:
            await self.close()


# --- the unit of the Telegram update being handled --------------------------------------------

_CURRENT: ContextVar[UnitOfWork | None] = ContextVar("certdesk_unit_of_work", default=None)


def bind(uow: UnitOfWork) -> Token[UnitOfWork | None]:
    """Make `uow` the current task's unit (bot.main.app, around each update)."""
    return _CURRENT.set(uow)


def unbind(token: Token[UnitOfWork | None]) -> None:
    _CURRENT.reset(token)


def current() -> UnitOfWork | None:
    """The unit of the update being handled in this task, if any. A task started during an
    update (a timer it armed) inherits the variable: a closed unit is not its."""
    uow = _CURRENT.get()
    return None if uow is None or uow.closed else uow


__all__ = ["AlreadyHandled", "UnitOfWork", "bind", "current", "unbind"]
