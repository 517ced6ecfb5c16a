"""The one clock everything timed asks, so tests can travel in time."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from bot.domain.zone import SHANGHAI


class Clock:
    """Real time. Instants are UTC; deadline dates are Asia/Shanghai calendar dates."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def local_now(self) -> datetime:
        return self.now().astimezone(SHANGHAI)

    def today(self) -> date:
        return self.local_now().date()


class FrozenClock(Clock):
    """A clock tests set and move."""

    def __init__(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("FrozenClock needs an aware datetime")
        self._at = at

    def now(self) -> datetime:
        return self._at.astimezone(UTC)

    def set(self, at: datetime) -> None:
        self._at = at

    def advance(self, **delta: float) -> None:
        self._at = self._at + timedelta(**delta)


__all__ = ["SHANGHAI", "Clock", "FrozenClock"]
