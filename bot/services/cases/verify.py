"""Checking case histories against their signed heads (`certdesk cases verify`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from bot.domain.history_audit import audit
from storage.history_key import key_of
from storage.repo import cases as repo
from storage.repo import history as heads
from storage.unit_of_work import UnitOfWork

_WHAT = {
    "hash": "content does not match its hash (altered)",
    "prev_hash": "does not link to the event before it (inserted, removed or altered)",
    "seq": "sequence gap (an event is missing or out of order)",
    "missing": "the case has no history at all (events removed)",
    "mac": "signature does not match (chain recomputed or event replaced without the key)",
    "forged": "appended without the key (beyond the signed head)",
    "truncated": "events deleted from the end ({detail} missing)",
    "head": "not the event the signed head names (history replaced)",
    "case_row": "case row edited outside the history ({detail})",
    "checkpoint": "signed head {detail}",
    "key": "history signed with another key (key id {detail}): wrong HISTORY_HMAC_KEY?",
    "noted": "found altered when later events were added: {detail}",
    "case_deleted": "the case row is gone but its history remains (deleted)",
}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a case's history, at the first event where it shows."""

    ref: str
    seq: int
    event_id: int | None
    reason: str  # one of bot.domain.history_audit.REASONS
    detail: str = ""

    def __str__(self) -> str:
        what = _WHAT[self.reason].format(detail=self.detail or "?")
        if self.reason == "case_row" and not self.detail:
            what = "case row edited outside the history"
        return f"{self.ref}: event #{self.seq} (id {self.event_id}): {what}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"message": str(self)}


async def verify(uow: UnitOfWork, ref: str | None = None) -> list[Problem]:
    """Check every case's history (or one case's); what is wrong, case by case, [] when all is
    intact. LookupError when `ref` names no case. Needs the session's history key."""
    session = uow.session
    key = key_of(session)
    if ref is not None:
        case = await repo.find_case_by_ref(session, ref)
        if case is None:
            raise LookupError(f"no case {ref}")
        assert case.id is not None
        targets: list[tuple[int, str]] = [(case.id, case.ref)]
    else:
        targets = list(await repo.all_case_ids(session))
        # A history whose case row is gone is named by its id.
        targets += [(cid, f"case id {cid}") for cid in await heads.orphan_case_ids(session)]
    problems = []
    for case_id, case_ref in targets:
        fields = await heads.stored_case_fields(session, case_id)
        events, head = await heads.as_stored(session, case_id)
        for f in audit(key, events, head, fields):
            problems.append(Problem(case_ref, f.seq, f.event_id, f.reason, f.detail))
    return problems


async def count_cases(uow: UnitOfWork) -> int:
    return len(await repo.all_case_ids(uow.session))


__all__ = ["Problem", "count_cases", "verify"]
