"""The APScheduler wiring of the scans: each job one at a time, late runs coalesced, steady
through wall-clock steps and watched for stalls (bot.scheduler.steady), a clean shutdown that lets
a running scan finish."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar
from zoneinfo import ZoneInfo

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.clock import Clock
from bot.desk import Desk
from bot.outbox.worker import Outbox
from bot.scheduler.calendar_watch import CalendarWatch
from bot.scheduler.scans import Scans
from bot.scheduler.steady import WATCH_SECONDS, SteadyScheduler, Watchdog, shift_outbox

log = logging.getLogger(__name__)
T = TypeVar("T")


def start_scheduler(
    desk: Desk,
    outbox: Outbox,
    *,
    scan_seconds: float = 60,
    drain_seconds: float = 5,
    calendar_seconds: float = 600,
    watch_seconds: float = WATCH_SECONDS,
    wall: Callable[[], float] = time.time,
    monotonic: Callable[[], float] = time.monotonic,
) -> SteadyScheduler:
    """Start the periodic scans and their watchdog on the running event loop; returns the
    scheduler (bot.scheduler.steady: steady through wall-clock steps, stalls reported).

    `misfire_grace_time=None` and `coalesce=True`: a job late after a pause (or a long scan) runs
    once as soon as it can, instead of APScheduler's default of skipping it after 1 s.
    """
    scans = Scans(desk)
    watch = CalendarWatch(desk)
    scheduler = SteadyScheduler(
        timezone=ZoneInfo("Asia/Shanghai"),
        job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
        wall=wall,
        monotonic=monotonic,
    )
    # APScheduler paces jobs in real time (the scans read `desk.clock`): first runs are now.
    first = Clock().now()
    jobs: list[tuple[str, Callable[[], Awaitable[object]], float]] = [
        ("calendar", watch.check, calendar_seconds),
        ("scans", scans.run_due, scan_seconds),
        ("outbox", outbox.drain, drain_seconds),
    ]
    lock = asyncio.Lock()
    for job_id, job, seconds in jobs:
        if desk.engine.dialect.name == "sqlite":
            job = _one_at_a_time(job, lock)
        scheduler.intervals[job_id] = seconds
        scheduler.add_job(
            scheduler.tracked(job_id, job),
            "interval",
            seconds=seconds,
            id=job_id,
            next_run_time=first,
        )
    scheduler.on_step.append(lambda step: shift_outbox(desk, step))
    scheduler.start()
    scheduler.watchdog = asyncio.create_task(
        Watchdog(desk, scheduler).run(watch_seconds), name="scheduler-watchdog"
    )
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


async def shutdown(scheduler: AsyncIOScheduler, timeout: float = 60) -> None:
    """Stop scheduling, let the scans in flight finish (they commit what they did), then stop."""
    if not scheduler.running:
        return
    scheduler.pause()
    if isinstance(scheduler, SteadyScheduler):
        if scheduler.watchdog is not None:
            scheduler.watchdog.cancel()
            await asyncio.gather(scheduler.watchdog, return_exceptions=True)
        if scheduler.in_flight:
            await asyncio.wait(set(scheduler.in_flight), timeout=timeout)
    scheduler.shutdown(wait=False)


__all__ = ["SteadyScheduler", "shutdown", "start_scheduler"]
