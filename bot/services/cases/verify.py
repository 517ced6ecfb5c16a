"""Checking case histories against their signed heads (`certdesk cases verify`)."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from bot.domain.history import export_mac, key_id
from bot.domain.history_audit import audit, since_export
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
    "rewound": "the event the export of heads names is gone or another (history rewound)",
    "case_gone": "in the export of heads, now gone with all its history (deleted)",
}
EXPORT_FORMAT = "certdesk-heads/1"


class BadExport(ValueError):
    """An export of heads that is not one, or not signed with this key."""


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


async def verify(
    uow: UnitOfWork, ref: str | None = None, export: Mapping[str, Any] | None = None
) -> list[Problem]:
    """Check every case's history (or one case's); what is wrong, case by case, [] when all is
    intact. With `export` (from `export_heads`, kept away from the database), also that every
    head it names is still there. LookupError when `ref` names no case; BadExport."""
    session = uow.session
    key = key_of(session)
    exported = _exported_heads(key, export) if export is not None else {}
    if ref is not None:
        case = await repo.find_case_by_ref(session, ref)
        if case is None:
            raise LookupError(f"no case {ref}")
        assert case.id is not None
        targets: list[tuple[int, str]] = [(case.id, case.ref)]
        exported = {cid: h for cid, h in exported.items() if cid == case.id}
    else:
        targets = list(await repo.all_case_ids(session))
        # A history whose case row is gone is named by its id.
        targets += [(cid, f"case id {cid}") for cid in await heads.orphan_case_ids(session)]
        known = {cid for cid, _ in targets}
        targets += [(cid, str(h["ref"])) for cid, h in exported.items() if cid not in known]
    problems = []
    for case_id, case_ref in targets:
        fields = await heads.stored_case_fields(session, case_id)
        events, head = await heads.as_stored(session, case_id)
        gone = fields is None and not events and head is None  # only an export knows it
        found = [] if gone else audit(key, events, head, fields)
        if case_id in exported:
            then = exported[case_id]
            old = since_export(int(then["seq"]), str(then["head_hash"]), events, fields is not None)
            if old is not None:
                found.append(old)
        for f in found:
            problems.append(Problem(case_ref, f.seq, f.event_id, f.reason, f.detail))
    return problems


async def export_heads(uow: UnitOfWork, now: datetime) -> dict[str, Any]:
    """Every case's head, signed: kept elsewhere (another machine, a ticket, a mail), it lets
    `verify` tell a database rewound to an older state, which the heads alone cannot."""
    session = uow.session
    key = key_of(session)
    refs = dict(await repo.all_case_ids(session))
    listed = [
        {"case_id": h.case_id, "ref": refs.get(h.case_id), "seq": h.seq, "head_hash": h.head_hash}
        for h in await heads.all_heads(session)
    ]
    export: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "exported_at": now.isoformat(),
        "key_id": key_id(key),
        "heads": listed,
    }
    export["mac"] = export_mac(key, export)
    return export


def _exported_heads(key: bytes, export: Mapping[str, Any]) -> dict[int, Mapping[str, Any]]:
    if not isinstance(export, Mapping) or export.get("format") != EXPORT_FORMAT:
        raise BadExport("not an export of heads (certdesk cases heads)")
    if export.get("key_id") != key_id(key):
        raise BadExport(f"the export is signed with another key (key id {export.get('key_id')})")
    mac = export.get("mac")
    if not isinstance(mac, str) or not hmac.compare_digest(export_mac(key, export), mac):
        raise BadExport("the export of heads was edited: its signature does not match")
    return {int(h["case_id"]): h for h in export["heads"]}


async def count_cases(uow: UnitOfWork) -> int:
    return len(await repo.all_case_ids(uow.session))


__all__ = ["EXPORT_FORMAT", "BadExport", "Problem", "count_cases", "export_heads", "verify"]
