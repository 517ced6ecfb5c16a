"""Telling rewritten histories apart from a signed head, without a database."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from bot.domain.history import (
    CASE_FIELDS,
    case_digest,
    changed_fields,
    event_hash,
    event_mac,
    field_seals,
    head_mac,
    key_id,
)
from bot.domain.history_audit import audit

KEY = b"k" * 32
AT = datetime(2026, 9, 28, 2, 0, tzinfo=UTC)
ROW: dict[str, Any] = {name: None for name in CASE_FIELDS} | {
    "id": 7,
    "ref": "TS-2026-AAAAAA",
    "kind": "complaint",
    "channel": "email",
    "complainant_email": "li@example.cn",
    "created_at": AT,
    "decided_on": date(2026, 9, 1),
    "audit_team": ["张三"],
    "out_of_time": False,
}


@dataclass(frozen=True)
class Ev:
    case_id: int
    seq: int
    at: datetime
    actor: str = "system"
    type: str = "note"
    data: dict[str, Any] | None = None
    prev_hash: str | None = None
    case_digest: str | None = None
    id: int | None = None
    hash: str = ""
    mac: str | None = None

    def sealed(self, key: bytes = KEY) -> Ev:
        h = event_hash(self)
        return replace(self, hash=h, mac=event_mac(key, h))


@dataclass
class Head:
    case_id: int
    seq: int
    head_hash: str
    fields: dict[str, str] = field(default_factory=dict)
    note: str | None = None
    key_id: str = ""
    mac: str = ""

    def signed(self, key: bytes = KEY) -> Head:
        self.key_id = key_id(key)
        self.mac = head_mac(key, self)
        return self


def history(n: int, row: dict[str, Any] = ROW) -> tuple[list[Ev], Head]:
    events: list[Ev] = []
    prev = None
    for seq in range(1, n + 1):
        ev = Ev(7, seq, AT + timedelta(minutes=seq), data={"n": seq}, prev_hash=prev, id=seq)
        ev = replace(ev, case_digest=case_digest(row)).sealed()
        events.append(ev)
        prev = ev.hash
    head = Head(7, n, events[-1].hash, field_seals(KEY, row)).signed()
    return events, head


def reasons(events: list[Ev], head: Head | None, row: dict[str, Any] | None = ROW) -> list[Any]:
    return [(f.seq, f.reason) for f in audit(KEY, events, head, row)]


def test_intact() -> None:
    events, head = history(4)
    assert reasons(events, head) == []


def test_rehashed_chain_fails_at_the_first_rewritten_signature() -> None:
    events, head = history(4)
    prev = events[0].hash
    for i in range(1, 4):  # rewrite #2 and rehash everything after it, without the key
        ev = replace(events[i], prev_hash=prev, data={"n": "改"} if i == 1 else events[i].data)
        events[i] = replace(ev, hash=event_hash(ev), mac=events[i].mac)
        prev = events[i].hash
    assert reasons(events, head) == [(2, "mac")]


def test_rehashed_chain_with_a_head_signed_by_a_guessed_key_is_still_told() -> None:
    events, head = history(3)
    forged = Head(7, 3, events[-1].hash, head.fields).signed(b"guess" * 8)
    assert reasons(events, forged) == [(3, "key")]


def test_truncation_forged_append_and_replaced_head() -> None:
    events, head = history(5)
    assert reasons(events[:3], head) == [(4, "truncated")]
    assert audit(KEY, events[:3], head, ROW)[0].detail == "2"
    assert reasons([], head) == [(1, "truncated")]
    extra = replace(events[-1], seq=6, prev_hash=events[-1].hash, id=6)
    extra = replace(extra, hash=event_hash(extra), mac=None)
    assert reasons([*events, extra], head) == [(6, "forged")]
    other, _ = history(5, ROW | {"kind": "appeal"})  # a whole other, validly signed chain
    assert (5, "head") in reasons(other, head)


def test_edited_case_row_names_its_fields() -> None:
    events, head = history(2)
    edited = ROW | {"complainant_email": "x@evil.test", "created_at": AT + timedelta(days=1)}
    found = audit(KEY, events, head, edited)
    assert [(f.reason, f.detail) for f in found] == [("case_row", "complainant_email, created_at")]
    # Without a trusted head, the last event's digest still tells the edit (not which field).
    assert reasons(events, None, edited) == [(2, "checkpoint"), (2, "case_row")]


def test_head_missing_edited_noted_and_row_deleted() -> None:
    events, head = history(2)
    assert reasons(events, None) == [(2, "checkpoint")]
    head.seq = 1
    assert reasons(events, head) == [(1, "checkpoint")]
    noted = Head(7, 2, events[-1].hash, field_seals(KEY, ROW), note="#2: x").signed()
    assert reasons(events, noted) == [(2, "noted")]
    assert reasons(events, history(2)[1], None) == [(0, "case_deleted")]
    assert reasons([], None) == [(1, "missing")]


def test_field_seals_are_keyed_and_per_field() -> None:
    seals = field_seals(KEY, ROW)
    assert set(seals) == set(CASE_FIELDS)
    assert field_seals(b"x" * 32, ROW) != seals
    assert changed_fields(KEY, ROW, seals) == []
    assert changed_fields(KEY, ROW | {"channel": "telegram"}, seals) == ["channel"]
    assert changed_fields(KEY, ROW, {}) == sorted(CASE_FIELDS)
    # thread_message_ids grows with every mail sent, without an event: not covered.
    assert "thread_message_ids" not in CASE_FIELDS
