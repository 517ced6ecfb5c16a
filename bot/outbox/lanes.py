"""One lane of the worker: claim, split per recipient, serve up to `concurrency` recipients.

Within a lane a batch is split per recipient (in claim order, so one chat's messages keep their
order); a recipient's messages are sent one after the other, each outcome committed before the
next. The lane claims again as soon as half of what it claimed has started.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from bot.outbox.recording import DATABASE_AWAY, brief
from storage.models import OutboxMessage

log = logging.getLogger(__name__)


async def run_lane(
    claim: Callable[[int], Awaitable[list[OutboxMessage]]],
    deliver: Callable[[OutboxMessage], Awaitable[None]],
    handled: Callable[[], int],
    *,
    limit: int,
    concurrency: int,
    refill: bool,
    claimed: list[OutboxMessage] | None = None,
) -> None:
    """`claim(room)` takes due rows, `deliver(row)` sends one and records it, `handled()` counts
    outcomes so far (a failure may queue a message due now: the lane looks again)."""
    lanes: dict[str, deque[OutboxMessage]] = {}
    ready: asyncio.Queue[str | None] = asyncio.Queue()
    progress = asyncio.Event()
    waiting = 0  # claimed, not started

    def add(batch: list[OutboxMessage]) -> None:
        nonlocal waiting
        waiting += len(batch)
        for message in batch:
            queue = lanes.get(message.recipient)
            if queue is None:
                lanes[message.recipient] = deque([message])
                ready.put_nowait(message.recipient)
            else:  # that chat's messages are being sent: keep their order
                queue.append(message)

    async def work() -> None:
        nonlocal waiting
        while (recipient := await ready.get()) is not None:
            queue = lanes[recipient]
            while queue:
                message = queue.popleft()
                waiting -= 1
                progress.set()
                await deliver(message)
            del lanes[recipient]
            progress.set()

    async def produce() -> None:
        nonlocal claimed
        while True:
            room = limit - waiting
            if claimed is not None:  # the first batch is given
                batch, claimed = claimed, None
            else:
                try:
                    batch = await claim(room)
                except DATABASE_AWAY as exc:
                    if not lanes:
                        raise
                    # The database went away: finish what is held, claim on the next pass.
                    log.warning("outbox: claiming failed, finishing what is held: %s", brief(exc))
                    break
            add(batch)
            if not refill:
                break
            if batch and len(batch) == room:
                # Maybe more is due: claim again once half of what waits has started.
                await until(lambda: waiting <= limit // 2, progress)
                continue
            # All that was due is claimed. Look again once it is done, if anything was handled.
            before = handled()
            await until(lambda: not lanes, progress)
            if handled() == before and not batch:
                break
        await until(lambda: not lanes, progress)
        for _ in range(concurrency):
            ready.put_nowait(None)

    async with asyncio.TaskGroup() as group:
        group.create_task(produce())
        for _ in range(concurrency):
            group.create_task(work())


async def until(condition: Callable[[], bool], progress: asyncio.Event) -> None:
    while not condition():
        progress.clear()
        await progress.wait()
