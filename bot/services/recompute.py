"""Provisional deadlines made final when the calendar override file gains their year.

A deadline computed beyond the known holiday data is stored `provisional`. When a deployer adds
the year's official schedule to CALENDAR_OVERRIDES, the scheduler's calendar watch reloads the
file and this recomputes every open provisional deadline from its start date and rule, and tells
staff which dates moved.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING

from bot.domain.deadlines import due_date
from bot.outbox.to_staff import queue_for_staff
from messages.render import rule_label, th
from storage.repo import deadlines as deadline_repo

if TYPE_CHECKING:
    from bot.desk import Desk
    from storage.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

# The deadline table's unit names, mapped to the deadline engine's.
_UNITS = {"calendar_days": "days", "days": "days", "working_days": "working_days",
          "months": "months", "years": "years"}  # fmt: skip


@dataclass(frozen=True)
class Moved:
    deadline_id: int
    ref: str
    rule_id: str
    old: date
    new: date


@dataclass
class Recomputed:
    moved: list[Moved] = field(default_factory=list)
    confirmed: int = 0  # now final, same date
    still_provisional: int = 0
    years: tuple[int, ...] = ()


async def recompute_provisional(desk: Desk, uow: UnitOfWork) -> Recomputed:
    """Recompute open provisional deadlines with the current calendar; tell staff of moves."""
    result = Recomputed()
    cal, profile = desk.calendar, desk.profile
    years: set[int] = set()
    session = uow.session
    for row, case in await deadline_repo.open_provisional(session):
        rule = profile.rules.get(row.rule_id)
        direction = rule.direction if rule is not None else "after"
        due = due_date(
            row.start_on,
            row.count,
            _UNITS.get(row.unit, row.unit),  # type: ignore[arg-type]
            cal,
            profile.calendar.roll_to_workday,
            direction,
        )
        if due.provisional:
            result.still_provisional += 1
            continue
        years |= {row.due_on.year, due.due.year}
        if due.due != row.due_on:
            ref = case.ref if case is not None else f"#{row.certificate_id}"
            result.moved.append(Moved(row.id or 0, ref, row.rule_id, row.due_on, due.due))
        else:
            result.confirmed += 1
        await deadline_repo.move_deadline(session, row.id or 0, due.due, False)
    result.years = tuple(sorted(y for y in years if cal.is_known_year(y)))
    # Told even with no staff chat: staff messages are kept on the staff channel.
    if result.moved or result.confirmed:
        text = staff_text(result, desk.settings.default_locale)
        # Same changes (e.g. on two instances at once) → one message.
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        await queue_for_staff(desk, session, key=f"recompute:{digest}", text=text)
    return result


def staff_text(result: Recomputed, locale: str) -> str:
    years = ", ".join(map(str, result.years))
    lines = [th("alerts.recomputed_title", locale, years=years)]
    for m in result.moved:
        lines.append(
            th(
                "alerts.recomputed_line",
                locale,
                ref=m.ref,
                rule=rule_label(m.rule_id, locale),
                old=m.old.isoformat(),
                new=m.new.isoformat(),
            )
        )
    if result.confirmed:
        lines.append(th("alerts.recomputed_unchanged", locale, count=result.confirmed))
    return "\n".join(lines)
