"""The hash chain of case events: canonical form, and the first broken event found."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.domain import history
from bot.domain.history import canonical, event_hash, first_break, json_ready

AT = datetime(2026, 9, 28, 2, 0, 0, 123456, tzinfo=UTC)


@dataclass(frozen=True)
class Ev:
    """An event as the chain sees it (the table's row without the database)."""

    case_id: int
    seq: int
    at: datetime = AT
    actor: str = "a"
    type: str = "t"
    data: dict[str, Any] | None = None
    prev_hash: str | None = None
    case_digest: str | None = None
    id: int | None = None
    hash: str = ""
    mac: str | None = None

    def sealed(self) -> Ev:
        return replace(self, hash=event_hash(self))


def chain(n: int) -> list[Ev]:
    events: list[Ev] = []
    prev = None
    for seq in range(1, n + 1):
        event = Ev(
            id=100 + seq,
            case_id=7,
            seq=seq,
            at=AT + timedelta(minutes=seq),
            actor="staff:1",
            type="note",
            data={"text": f"第{seq}条", "n": seq},
            prev_hash=prev,
        ).sealed()
        events.append(event)
        prev = event.hash
    return events


def test_canonical_is_compact_sorted_unescaped_and_utc() -> None:
    shanghai = timezone(timedelta(hours=8))
    text = canonical(
        Ev(
            case_id=1,
            seq=1,
            at=AT.astimezone(shanghai),
            type="received",
            data={"b": "投诉", "a": 1},
        )
    ).decode()
    assert text == (
        '{"actor":"a","at":"2026-09-28T02:00:00.123456+00:00","case_digest":null,"case_id":1,'
        '"data":{"a":1,"b":"投诉"},"prev_hash":null,"seq":1,"type":"received"}'
    )


def test_same_instant_in_any_zone_same_hash() -> None:
    utc = event_hash(Ev(case_id=1, seq=1, at=AT))
    local = event_hash(Ev(case_id=1, seq=1, at=AT.astimezone(timezone(timedelta(hours=8)))))
    assert utc == local and len(utc) == 64


def test_naive_instant_refused() -> None:
    with pytest.raises(ValueError):
        event_hash(Ev(case_id=1, seq=1, at=AT.replace(tzinfo=None)))


def test_json_ready_turns_dates_into_strings() -> None:
    from datetime import date

    assert json_ready({"d": date(2026, 9, 28), "l": [AT]}) == {
        "d": "2026-09-28",
        "l": ["2026-09-28T02:00:00.123456+00:00"],
    }


def test_intact_chain() -> None:
    assert first_break(chain(5)) is None
    assert first_break([]) is None


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"data": {"text": "改过", "n": 3}}, "hash"),
        ({"actor": "someone else"}, "hash"),
        ({"at": AT}, "hash"),
        ({"type": "withdrawn"}, "hash"),
    ],
)
def test_altered_event_is_named(change: dict[str, Any], reason: str) -> None:
    events = chain(5)
    events[2] = replace(events[2], **change)
    found = first_break(events)
    assert found is not None and (found.seq, found.event_id, found.reason) == (3, 103, reason)


def test_rehashed_event_breaks_the_next_link() -> None:
    events = chain(4)
    forged = replace(events[1], data={"text": "伪造"}).sealed()
    events[1] = forged
    found = first_break(events)
    assert found is not None and (found.seq, found.reason) == (3, "prev_hash")


def test_removed_event_is_a_gap() -> None:
    events = chain(4)
    del events[1]
    found = first_break(events)
    assert found is not None and (found.seq, found.reason) == (3, "seq")


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
    | st.datetimes(timezones=st.just(UTC)) | st.dates(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)  # fmt: skip


@given(_JSON)
def test_the_canonical_text_is_the_one_the_standard_encoder_writes(value: Any) -> None:
    # The hashes of stored histories depend on these bytes: the encoder built once must write
    # exactly what json.JSONEncoder(sort_keys, compact, ensure_ascii=False) writes.
    standard = json.JSONEncoder(
        sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=history._default
    )
    assert history._canonical_json(value) == standard.encode(value).encode("utf-8")
