"""The unit of work: one database session whose transaction the caller commits.

Services take a `UnitOfWork` and read and write through `uow.session`; they never open sessions.
Who opens the unit decides when it commits:
- a Telegram update (bot.main.app): one unit per update, the update id recorded in its first
  commit, which happens before the first reply goes out (handlers.telegram.common.send), and
  once more at the end for what came after (conversation states);
- a job, a letter, a CLI command: `async with UnitOfWork(desk.sessions) as uow:` commits on a
  clean exit and rolls back on an exception.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextvars import ContextVar, Token
from types import TracebackType

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

log = logging.getLogger(__name__)

Callback = Callable[[], None]
Hook = Callable[[AsyncSession], Awaitable[bool]]


class AlreadyHandled(Exception):
    """The update this unit belongs to was recorded meanwhile by another instance."""


class UnitOfWork:
    """A session opened on first use; `commit()` makes everything so far durable at once."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._session: AsyncSession | None = None
        self._after_commit: list[Callback] = []
        self._first_write: Hook | None = None  # runs in the next commit, kept across rollbacks
        self.committed = False  # something was committed through this unit
        self.closed = False
        self._lock = asyncio.Lock()  # replies sent concurrently each commit first

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            self._session = self._sessions()
        return self._session

    def after_commit(self, callback: Callback) -> None:
        """Run `callback` once what was written so far is durable (a cache update, say)."""
        self._after_commit.append(callback)

    def first_in_commit(self, hook: Hook) -> None:
        """Run `hook` in the next commit before anything else is flushed; a False from it means
        the work was already done elsewhere: nothing is written and AlreadyHandled is raised.
        Unlike other writes it survives `rollback()`, so a failed update is still recorded."""
        self._first_write = hook

    async def commit(self) -> None:
        async with self._lock:
            await self._commit()

    async def _commit(self) -> None:
        hook, self._first_write = self._first_write, None
        if hook is None and (self._session is None or not self._session.in_transaction()):
            self._run_after_commit()
            return
        session = self.session
        try:
            if hook is not None and not await hook(session):
                await session.rollback()
                self._after_commit.clear()
                raise AlreadyHandled
            await session.commit()
        except BaseException:
            if hook is not None and session.in_transaction():
                await session.rollback()
            raise
        self.committed = True
        self._run_after_commit()

    async def rollback(self) -> None:
        """Drop what was not committed yet (a handler failed)."""
        self._after_commit.clear()
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
