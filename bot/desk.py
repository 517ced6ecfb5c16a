"""The desk: what every handler, service, worker and CLI command shares. It is built once at
start-up by the composition root (bot.main.desk.open_desk)."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import select
import signal
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.clock import Clock
from bot.config import Settings
from bot.domain.calendar import CalendarOverrides, WorkCalendar, parse_overrides
from bot.domain.policy import Profile
from storage import history_key

log = logging.getLogger(__name__)
T = TypeVar("T")


PARENT_CHECK_SECONDS = 1.0
GIVE_UP_AFTER = 3  # children dead in a row before the worker stops starting new ones


def _exit_with_parent(parent: int) -> None:
    """In the child: leave when the parent is gone (a SIGKILLed service must not leave its
    worker behind, waiting on a queue nobody writes to). Ctrl-C reaches the whole process
    group: the parent decides when to stop, not the child mid-chunk."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while os.getppid() == parent:
            select.select([], [], [], PARENT_CHECK_SECONDS)  # no deadline libfaketime shifts
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _new_pool() -> ProcessPoolExecutor:
    # A fresh interpreter (spawn), never a fork of this threaded process.
    context = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(
        1, mp_context=context, initializer=_exit_with_parent, initargs=(os.getpid(),)
    )


class ProcessWorker:
    """One child process for CPU-bound pure-Python work (parsing a chunk of letters).

    Threads of this process share one interpreter lock: a chunk parsed in a thread runs by
    turns with the event loop and the database calls, not beside them. In a child process it
    runs on the other core. Until `start()` (and when it fails), work runs in a thread as
    before; a child that dies is replaced on the next call (after GIVE_UP_AFTER in a row, no
    more), and the call it broke runs in a thread, so nothing depends on the child. `fn` and
    its arguments must pickle (module-level).
    """

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None
        self._wanted = False
        self._failures = 0  # children that died in a row

    @property
    def running(self) -> bool:
        return self._pool is not None

    async def start(self, warm: Callable[[], object] | None = None) -> None:
        """Start the child and run `warm` in it, so its imports are paid now rather than on the
        first chunk."""
        self._wanted = True  # `run` starts it
        if warm is not None:
            await self.run(warm)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            if self._pool is None and self._wanted:
                self._pool = _new_pool()
            pool = self._pool
            future = pool.submit(fn, *args) if pool is not None else None
        except Exception as exc:  # no child here (no semaphores, no processes left): a thread
            self._died(self._pool, exc)
            future = None
        if future is None:
            return await asyncio.to_thread(fn, *args)
        try:
            result = await asyncio.wrap_future(future)
        except BrokenProcessPool as exc:  # the child died: the work again, in a thread
            self._died(pool, exc)
            return await asyncio.to_thread(fn, *args)
        self._failures = 0
        return result

    def _died(self, pool: ProcessPoolExecutor | None, exc: Exception) -> None:
        if pool is not None and pool is not self._pool:
            return  # a death already counted (calls in flight together), a new child since
        self._pool = None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        self._failures += 1
        if self._failures >= GIVE_UP_AFTER:  # it cannot run here: stop paying for tries
            self._wanted = False
            log.error("the worker process failed %d times in a row (%s): work runs in threads",
                      self._failures, type(exc).__name__)  # fmt: skip
        else:
            log.warning("the worker process failed (%s): this work runs in a thread",
                        type(exc).__name__)  # fmt: skip

    async def close(self) -> None:
        pool, self._pool, self._wanted = self._pool, None, False
        if pool is not None:
            await asyncio.to_thread(pool.shutdown, True, cancel_futures=True)


@dataclass
class Desk:
    settings: Settings
    profile: Profile
    calendar: WorkCalendar
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    clock: Clock = field(default_factory=Clock)
    worker: ProcessWorker = field(default_factory=ProcessWorker)  # started by long-running work

    def __post_init__(self) -> None:
        # Whatever appends to a case history through the desk's sessions signs it.
        history_key.bind(self.sessions, history_key.load_history_key(self.settings))

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir

    @property
    def staff_ids(self) -> frozenset[int]:
        return frozenset(self.settings.staff_user_ids)

    def is_staff(self, user_id: int | None) -> bool:
        return user_id is not None and user_id in self.staff_ids

    async def close(self) -> None:
        await self.worker.close()
        await self.engine.dispose()


def load_overrides(path: str | Path) -> CalendarOverrides:
    """Read the CALENDAR_OVERRIDES file (see bot.domain.calendar.parse_overrides)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text: {exc}") from exc
    return parse_overrides(text, path)


def load_calendar(settings: Settings) -> WorkCalendar:
    overrides = load_overrides(settings.calendar_overrides) if settings.calendar_overrides else None
    return WorkCalendar(overrides)
