"""Recomputing the hash chains of case histories (`certdesk cases verify`)."""

from __future__ import annotations

from dataclasses import dataclass

from bot.domain.history import Break, first_break
from storage.repo import cases as repo
from storage.unit_of_work import UnitOfWork


@dataclass(frozen=True)
class Problem:
    """A case whose history does not verify, naming the first broken event."""

    ref: str
    seq: int
    event_id: int | None
    reason: str

    def __str__(self) -> str:
        what = {
            "hash": "content does not match its hash (altered)",
            "prev_hash": "does not link to the event before it (inserted, removed or altered)",
            "seq": "sequence gap (an event is missing or out of order)",
            "missing": "the case has no history at all (events removed)",
        }[self.reason]
        return f"{self.ref}: event #{self.seq} (id {self.event_id}): {what}"


async def verify(uow: UnitOfWork, ref: str | None = None) -> list[Problem]:
    """Recompute every case's chain (or one case's); one Problem per broken case.
    LookupError when `ref` names no case."""
    session = uow.session
    if ref is not None:
        case = await repo.find_case_by_ref(session, ref)
        if case is None:
            raise LookupError(f"no case {ref}")
        targets = [(case.id, case.ref)]
    else:
        targets = list(await repo.all_case_ids(session))
    problems = []
    for case_id, case_ref in targets:
        assert case_id is not None
        events = await repo.events_of(session, case_id)
        if not events:  # every case is opened with its "received" event
            problems.append(Problem(case_ref, 1, None, "missing"))
            continue
        broken: Break | None = first_break(events)
        if broken is not None:
            problems.append(Problem(case_ref, broken.seq, broken.event_id, broken.reason))
    return problems


async def count_cases(uow: UnitOfWork) -> int:
    return len(await repo.all_case_ids(uow.session))
