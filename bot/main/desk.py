"""Building the desk: load the profile and calendar, connect, refuse an unmigrated database;
and readying a long-running worker once it is built."""

from __future__ import annotations

import asyncio
import gc

from sqlalchemy.orm import configure_mappers

from bot.clock import Clock
from bot.config import Settings
from bot.desk import Desk, load_calendar
from bot.profiles import load_profile
from handlers.email.parsing import warm_up
from storage.db import check_migrated, make_engine, session_factory


async def open_desk(
    settings: Settings, clock: Clock | None = None, *, require_migrated: bool = True
) -> Desk:
    """Load the profile and calendar, connect, and refuse an unmigrated database."""
    profile = load_profile(settings.profile)
    calendar = load_calendar(settings)
    engine = make_engine(settings.effective_database_url)
    try:
        if require_migrated:
            await check_migrated(engine)
    except BaseException:
        await engine.dispose()
        raise
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return Desk(
        settings=settings,
        profile=profile,
        calendar=calendar,
        engine=engine,
        sessions=session_factory(engine),
        clock=clock or Clock(),
    )


CALENDAR_WARM_WORKING_DAYS = 120  # about the longest deadline a case is given, and then some
# Objects tracked by the collector, allocated and not yet freed, before a young collection
# (CPython's default is 700). Almost everything a chunk of letters or an update allocates is
# freed by reference counting: at 700 a pass of 2,000 letters ran ~180 young and ~16 middle
# collections (~0.1 s, scanning what was about to be freed anyway); at 50,000, none. Cyclic
# garbage waits at most that many allocations.
GC_YOUNG_THRESHOLD = 50_000


async def ready_for_work(desk: Desk, *, long_running: bool = True) -> None:
    """What a worker that will take many letters or updates does once, after start-up.

    For a long-running worker (not a single pass, which would wait longer for the child's start
    than it gains) with an inbox to read, the worker process that parses its letters is
    started, its imports paid now. The calendar's coming months are looked up (memoised: the
    first look at a year not yet known costs the `holidays` fallback ~0.15 s, which would
    otherwise land on the first letters), and the ORM's mappers configured. Then what start-up
    built — modules, the profile, settings, the engine — is frozen out of the garbage
    collector's sight (`gc.freeze`, long-running only): it lives as long as the process, and
    the full collections of a busy pass then scan only what the work allocates; young
    collections wait for GC_YOUNG_THRESHOLD allocations. `work_done` undoes that.
    """
    today = desk.clock.now().date()
    await asyncio.to_thread(desk.calendar.add_working_days, today, CALENDAR_WARM_WORKING_DAYS)
    configure_mappers()  # else done by the first query that needs them, mid-work
    if not long_running:
        return
    if desk.settings.imap_host:  # the intake parses its chunks in the worker
        await desk.worker.start(warm_up)
    if not _gc_before:
        _gc_before.append(gc.get_threshold())
        gc.collect()
        gc.freeze()
        _, older, oldest = _gc_before[0]
        gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


_gc_before: list[tuple[int, int, int]] = []  # the thresholds ready_for_work replaced


def work_done() -> None:
    """The collector as it was before `ready_for_work` (a process that goes on after serving,
    such as a test run, collects what died since)."""
    if _gc_before:
        gc.set_threshold(*_gc_before.pop())
        gc.unfreeze()
