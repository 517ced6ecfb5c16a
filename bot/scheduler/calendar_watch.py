"""The calendar watch: the override file reloaded when it changes, provisional deadlines
recomputed in one unit of work (bot.services.recompute)."""

from __future__ import annotations

import logging

from bot.desk import Desk, load_calendar
from bot.services.recompute import Recomputed, recompute_provisional
from storage.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)


class CalendarWatch:
    """Reloads the override file when it changes, then recomputes provisional deadlines."""

    def __init__(self, desk: Desk) -> None:
        self.desk = desk
        self._stamp = self._file_stamp()

    def _file_stamp(self) -> tuple[int, int] | None:
        path = self.desk.settings.calendar_overrides
        if path is None or not path.exists():
            return None
        st = path.stat()
        return st.st_mtime_ns, st.st_size

    async def check(self) -> Recomputed | None:
        """Recompute if the file changed since the last check (and at the first check)."""
        stamp = self._file_stamp()
        if stamp != self._stamp:
            try:
                self.desk.calendar = load_calendar(self.desk.settings)
            except ValueError as exc:  # a bad edit: keep the calendar we have, say why
                log.error("calendar overrides not reloaded: %s", exc)
                return None
            self._stamp = stamp
        async with UnitOfWork(self.desk.sessions) as uow:
            return await recompute_provisional(self.desk, uow)
