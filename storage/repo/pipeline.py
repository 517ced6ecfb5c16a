"""Writes sent without waiting for each (storage.repo.bulk): while the database takes one
multi-row statement, Python builds the next.

Inside `pipelined(session)` a write is handed to a task chained after the one before and the
caller goes on at once; the statements still reach the connection one at a time, in order.
Anything that reads — or that needs the writes done — `settle`s first: batch_reads does on every
query, and the block settles on the way out, so a failed write raises there, inside the caller's
savepoint. A block left by an exception first lets the write in flight finish (its error, if
any, is the same story told twice and is dropped), so the savepoint's rollback never meets a
busy connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from sqlmodel.ext.asyncio.session import AsyncSession

_KEY = "storage.repo.pipeline"  # in session.info: the last write in flight (None: none yet)


@contextlib.asynccontextmanager
async def pipelined(session: AsyncSession) -> AsyncIterator[None]:
    """Writes inside this block go without waiting for each; all done when it ends."""
    if _KEY in session.info:  # nested: the outer block settles
        yield
        return
    session.info[_KEY] = None
    try:
        yield
        await settle(session)
    finally:
        last = session.info.pop(_KEY, None)
        if last is not None:
            with contextlib.suppress(Exception):
                # Shielded: a cancelled caller must not cancel a statement mid-flight.
                await asyncio.shield(last)  # done already: its error retrieved, never "lost"


async def settle(session: AsyncSession) -> None:
    """Wait for the writes in flight; raise the first that failed."""
    last = session.info.get(_KEY)
    if last is not None:
        await asyncio.shield(last)  # cancelled meanwhile: the block's exit still waits for it
        if session.info.get(_KEY) is last:
            session.info[_KEY] = None


async def send(session: AsyncSession, write: Callable[[], Awaitable[object]]) -> None:
    """Run `write` after the writes in flight: at once outside a pipelined block, else in the
    background (given one turn of the loop to put its statement on the wire)."""
    info = session.info
    if _KEY not in info:
        await write()
        return
    before: asyncio.Task[None] | None = info[_KEY]

    async def after() -> None:
        if before is not None:
            await before
        await write()

    info[_KEY] = asyncio.ensure_future(after())
    await asyncio.sleep(0)


__all__ = ["pipelined", "send", "settle"]
