"""The APScheduler wiring of the scans: each job one at a time, late runs coalesced, a clean
shutdown that lets a running scan finish."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar
from zoneinfo import ZoneInfo

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.clock import Clock
from bot.desk import Desk
from bot.outbox.worker import Outbox
from bot.scheduler.calendar_watch import CalendarWatch
from bot.scheduler.scans import Scans

log = logging.getLogger(__name__)
T = TypeVar("T")


def start_scheduler(
    desk: Desk,
    outbox: Outbox,
    *,
    scan_seconds: float = 60,
    drain_seconds: float = 5,
    calendar_seconds: float = 600,
) -> AsyncIOScheduler:
    """Start the periodic scans on the running event loop; returns the scheduler.

    `misfire_grace_time=None` and `coalesce=True`: a job late after a pause (or a long scan) runs
    once as soon as it can, instead of APScheduler's default of skipping it after 1 s.
    """
    scans = Scans(desk)
    watch = CalendarWatch(desk)
    scheduler = AsyncIOScheduler(
        timezone=ZoneInfo("Asia/Shanghai"),
        job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
    )
    # APScheduler paces jobs in real time (the scans read `desk.clock`): first runs are now.
    first = Clock().now()
    jobs: list[tuple[str, Callable[[], Awaitable[object]], float]] = [
        ("calendar", watch.check, calendar_seconds),
        ("scans", scans.run_due, scan_seconds),
        ("outbox", outbox.drain, drain_seconds),
    ]
    lock = asyncio.Lock()
    running: set[asyncio.Task[object]] = set()
    _RUNNING[id(scheduler)] = running
    for job_id, job, seconds in jobs:
        if desk.engine.dialect.name == "sqlite":
            job = _one_at_a_time(job, lock)
        job = _tracked(job, running)
        scheduler.add_job(job, "interval", seconds=seconds, id=job_id, next_run_time=first)
    scheduler.start()
    log.info("scheduler started: scans every %ss, outbox every %ss", scan_seconds, drain_seconds)
    return scheduler


def _one_at_a_time(
    job: Callable[[], Awaitable[object]], lock: asyncio.Lock
) -> Callable[[], Awaitable[object]]:
    """SQLite has one writer: a job that read and then writes while another job committed would
    fail with "database is locked"; on SQLite the jobs take turns (PostgreSQL runs them freely)."""

    async def run() -> object:
        async with lock:
            return await job()

    run.__name__ = getattr(job, "__qualname__", "job")
    return run


# Each scheduler's jobs in flight. APScheduler's asyncio executor cancels running jobs when it
# shuts down; a scan cancelled mid-transaction can wedge the database driver, so we let them end.
_RUNNING: dict[int, set[asyncio.Task[object]]] = {}


def _tracked(
    job: Callable[[], Awaitable[object]], running: set[asyncio.Task[object]]
) -> Callable[[], Awaitable[object]]:
    async def run() -> object:
        task = asyncio.current_task()
        assert task is not None
        running.add(task)
        try:
            return await job()
        finally:
            running.discard(task)

    return run


async def shutdown(scheduler: AsyncIOScheduler, timeout: float = 60) -> None:
    """Stop scheduling, let the scans in flight finish (they commit what they did), then stop."""
    if not scheduler.running:
        return
    scheduler.pause()
    running = _RUNNING.pop(id(scheduler), set())
    if running:
        await asyncio.wait(set(running), timeout=timeout)
    scheduler.shutdown(wait=False)


__all__ = ["shutdown", "start_scheduler"]
