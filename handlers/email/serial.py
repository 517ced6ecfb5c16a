"""One IMAP connection used by overlapping steps: its calls run one at a time, in order.

imapclient is blocking and not safe for concurrent use, so every call runs in a thread, under
one lock (FIFO): the intake may fetch the next chunk while the database takes the current one,
and file (MOVE) a chunk in the background once its commit is done, without two commands ever
sharing the connection. `drain()` waits for the background filing and raises what it raised.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class Serial:
    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._background: list[asyncio.Task[Any]] = []

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        async with self._lock:
            return await asyncio.to_thread(fn, *args)

    def later(self, fn: Callable[..., T], *args: Any, done: Callable[[], None]) -> None:
        """Run `fn(*args)` after the calls queued so far; `done()` once it succeeded."""

        async def run() -> None:
            await self.call(fn, *args)
            done()

        self._background.append(asyncio.create_task(run()))

    async def drain(self) -> None:
        tasks, self._background = self._background, []
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    def cancel(self) -> None:
        for task in self._background:
            task.cancel()
        self._background = []


__all__ = ["Serial"]
