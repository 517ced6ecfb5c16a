"""The desk: what every handler, worker and CLI command shares, built once at start-up."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.calendar import WorkCalendar, load_overrides
from bot.clock import Clock
from bot.config import Settings
from bot.policy import Profile, load_profile
from storage.db import check_migrated, make_engine, session_factory


@dataclass
class Desk:
    settings: Settings
    profile: Profile
    calendar: WorkCalendar
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    clock: Clock = field(default_factory=Clock)

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir

    @property
    def staff_ids(self) -> frozenset[int]:
        return frozenset(self.settings.staff_user_ids)

    def is_staff(self, user_id: int | None) -> bool:
        return user_id is not None and user_id in self.staff_ids

    async def close(self) -> None:
        await self.engine.dispose()


def load_calendar(settings: Settings) -> WorkCalendar:
    overrides = load_overrides(settings.calendar_overrides) if settings.calendar_overrides else None
    return WorkCalendar(overrides)


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
