"""Scheduled work that survives wall-clock steps, and a watchdog that reports when it stops.

APScheduler 3 decides what is due by the wall clock but sleeps by the monotonic one (the event
loop's `call_later`): after the wall clock steps back by an hour every next run lies an hour ahead
and the scheduler sleeps that hour — no outbox, no scans. `SteadyScheduler` compares the two
clocks at every wake-up (and the watchdog every few seconds) and moves the jobs by the step, so
the work keeps its pace; outbox messages queued on the old timeline are moved with them
(`shift_outbox`). A step between two clock reads of one round can still leave a job on the old
timeline: the watchdog starts any job due further ahead than its interval (`keep_pace`). The
`Watchdog` reports (log + staff alert) a job that has not started for much longer than its
interval, whatever the cause, and starts it again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlmodel import col, select

from bot.desk import Desk
from bot.outbox.to_staff import queue_for_staff
from messages.render import th
from storage.models import OutboxMessage

log = logging.getLogger(__name__)

# Wall minus monotonic moving by more than this between two looks is a step, not a slew (NTP
# slews at most 0.5 ms/s).
STEP_TOLERANCE = 5.0
# A job not started for max(3 intervals, interval + STALL_SLACK) seconds is stalled; one running
# for longer than BUSY_LIMIT (a drain of thousands of messages may) is reported as busy.
STALL_SLACK = 60.0
BUSY_LIMIT = 30 * 60.0
WATCH_SECONDS = 5.0


class SteadyScheduler(AsyncIOScheduler):
    """An AsyncIOScheduler whose jobs keep their monotonic pace through wall-clock steps.

    `wall` and `monotonic` are the two clocks compared (injectable for tests); each `on_step`
    callback gets the step in seconds (negative: the clock went back)."""

    def __init__(
        self,
        *args: Any,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.wall, self.monotonic = wall, monotonic
        self.on_step: list[Callable[[float], Awaitable[object]]] = []
        self._offset = wall() - monotonic()
        self.started_at = monotonic()
        self.intervals: dict[str, float] = {}  # job id → seconds
        self.last_start: dict[str, float] = {}  # job id → monotonic time it last started
        self.running_since: dict[str, float] = {}
        self.in_flight: set[asyncio.Task[object]] = set()
        self.watchdog: asyncio.Task[None] | None = None
        self._step_tasks: set[asyncio.Task[object]] = set()
        self._changed = asyncio.Condition()  # a job started or ended

    def _process_jobs(self) -> float | None:
        self.follow_steps()
        return super()._process_jobs()  # type: ignore[no-any-return]

    def follow_steps(self) -> float:
        """Compare the clocks; on a step, move every job's next run by it. Returns the step."""
        offset = self.wall() - self.monotonic()
        step = offset - self._offset
        self._offset = offset  # a slow slew is followed, never taken for a step
        if abs(step) < STEP_TOLERANCE:
            return 0.0
        log.warning(
            "the wall clock stepped %s by %.0f s: scheduled work keeps its pace",
            "back" if step < 0 else "forward",
            abs(step),
        )
        delta = timedelta(seconds=step)
        with self._jobstores_lock:
            for store in self._jobstores.values():
                for job in store.get_all_jobs():
                    if job.next_run_time is not None:
                        job._modify(next_run_time=job.next_run_time + delta)
                        store.update_job(job)
        loop = asyncio.get_running_loop()
        for callback in self.on_step:
            task: asyncio.Task[object] = loop.create_task(callback(step))  # type: ignore[arg-type]
            self._step_tasks.add(task)
            task.add_done_callback(self._step_tasks.discard)
        self.wakeup()
        return step

    def keep_pace(self) -> list[str]:
        """Start at once any job whose next run lies further ahead than its interval: a step
        that falls between two clock reads of one scheduling round (or a clock read that
        disagrees with the one before it) would otherwise leave it on the old timeline, an hour
        away. Returns the ids of the jobs brought back."""
        now = datetime.now(self.timezone)
        parked = []
        for job_id, every in self.intervals.items():
            job = self.get_job(job_id)
            if job is None or job.next_run_time is None:
                continue
            ahead = (job.next_run_time - now).total_seconds()
            if ahead > every + STEP_TOLERANCE:
                log.warning("scheduled work %r was %.0f s away (every %g s): started now",
                            job_id, ahead, every)  # fmt: skip
                self.run_soon(job_id)
                parked.append(job_id)
        return parked

    def run_soon(self, job_id: str) -> None:
        """Start a job now (the watchdog's kick)."""
        job = self.get_job(job_id)
        if job is not None:
            job.modify(next_run_time=datetime.now(self.timezone))

    def tracked(
        self, job_id: str, job: Callable[[], Awaitable[object]]
    ) -> Callable[[], Awaitable[object]]:
        """The job, recording when it starts (for the watchdog) and keeping its task: the asyncio
        executor cancels running jobs when it shuts down, and a scan cancelled mid-transaction can
        wedge the database driver, so `shutdown` lets them end."""

        async def run() -> object:
            task = asyncio.current_task()
            assert task is not None
            self.in_flight.add(task)
            self.last_start[job_id] = self.running_since[job_id] = self.monotonic()
            await self._notify()
            try:
                return await job()
            finally:
                self.running_since.pop(job_id, None)
                self.in_flight.discard(task)
                await self._notify()

        return run

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until `predicate()` holds after a job started or ended; False on timeout."""
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(predicate), timeout)
            except TimeoutError:
                return False
        return True


async def shift_outbox(desk: Desk, step: float) -> int:
    """After the clock stepped back, messages queued on the old timeline would wait the size of
    the step: move their next attempt by it (never before now). Returns how many moved."""
    if step >= 0:
        return 0
    now = desk.clock.now()
    moved = 0
    async with desk.sessions() as session, session.begin():
        rows = await session.exec(
            select(OutboxMessage).where(
                col(OutboxMessage.status) == "queued", col(OutboxMessage.next_attempt_at) > now
            )
        )
        for row in rows.all():
            row.next_attempt_at = max(row.next_attempt_at + timedelta(seconds=step), now)
            session.add(row)
            moved += 1
    if moved:
        log.warning("clock stepped back: %d queued outbox messages moved by %.0f s", moved, step)
    return moved


class Watchdog:
    """Reports scheduled work that stopped: a job not started for much longer than its interval
    (or running for BUSY_LIMIT) is logged as an error and told to staff once per episode, and a
    job not running is started again."""

    def __init__(self, desk: Desk, scheduler: SteadyScheduler, slack: float = STALL_SLACK) -> None:
        self.desk, self.scheduler, self.slack = desk, scheduler, slack
        self.reported: set[str] = set()

    async def run(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)  # monotonic: a wall-clock step does not delay it
            try:
                await self.check()
            except Exception:
                log.exception("scheduler watchdog check failed")

    async def check(self) -> list[str]:
        """Look once; returns the ids of the jobs stalled now."""
        s = self.scheduler
        s.follow_steps()
        s.keep_pace()
        now = s.monotonic()
        stalled = []
        for job_id, every in s.intervals.items():
            since = s.running_since.get(job_id)
            if since is not None:
                late, limit, key = now - since, max(BUSY_LIMIT, 3 * every), "scheduler.busy"
            else:
                late = now - s.last_start.get(job_id, s.started_at)
                limit, key = max(3 * every, every + self.slack), "scheduler.stalled"
            if late <= limit:
                if job_id in self.reported:
                    self.reported.discard(job_id)
                    log.info("scheduled work %r runs again", job_id)
                continue
            stalled.append(job_id)
            if since is None:
                s.run_soon(job_id)
            if job_id in self.reported:
                continue
            self.reported.add(job_id)
            log.error(
                "scheduled work %r %s %.0f s (every %.0f s expected): staff told",
                job_id,
                "running for" if since is not None else "has not started for",
                late,
                every,
            )
            await self._tell_staff(key, job_id, late, every)
        return stalled

    async def _tell_staff(self, key: str, job_id: str, late: float, every: float) -> None:
        desk = self.desk
        text = th(
            key,
            desk.settings.default_locale,
            job=job_id,
            minutes=max(1, round(late / 60)),
            every=f"{every:g}",
        )
        stamp = desk.clock.now().strftime("%Y%m%dT%H%M%S")
        async with desk.sessions() as session, session.begin():
            await queue_for_staff(desk, session, key=f"stall:{job_id}:{stamp}", text=text)


__all__ = ["STEP_TOLERANCE", "SteadyScheduler", "Watchdog", "shift_outbox"]
