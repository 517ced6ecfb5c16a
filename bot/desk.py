"""The desk: what every handler, service, worker and CLI command shares. It is built once at
start-up by the composition root (bot.main.desk.open_desk)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.clock import Clock
from bot.config import Settings
from bot.domain.calendar import CalendarOverrides, WorkCalendar, parse_overrides
from bot.domain.policy import Profile
from storage import history_key


@dataclass
class Desk:
    settings: Settings
    profile: Profile
    calendar: WorkCalendar
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    clock: Clock = field(default_factory=Clock)

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
