"""Building the desk: load the profile and calendar, connect, refuse an unmigrated database."""

from __future__ import annotations

from bot.clock import Clock
from bot.config import Settings
from bot.desk import Desk, load_calendar
from bot.profiles import load_profile
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
