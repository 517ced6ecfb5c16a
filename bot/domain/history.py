"""Tamper-evident case history: each event carries the SHA-256 of itself and of the one before.

The hash covers a canonical JSON serialisation (sorted keys, no whitespace, UTF-8 unescaped,
instants as UTC ISO with microseconds), so it is the same on SQLite and PostgreSQL and after a
dump and restore. Changing any stored field of an event — or removing or reordering events —
breaks the chain at that event (GGBZ §10.4: electronic records must not be editable).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Protocol


class EventContent(Protocol):
    """What an event's hash covers: everything stored about it but its id and its own hash."""

    case_id: int
    seq: int
    at: datetime
    actor: str
    type: str
    data: dict[str, Any] | None
    prev_hash: str | None


class EventLike(EventContent, Protocol):
    id: int | None
    hash: str


def _default(value: object) -> str:
    if isinstance(value, datetime):
        return instant(value)
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__} in a case event")


def instant(at: datetime) -> str:
    if at.tzinfo is None:
        raise ValueError("event instants must be aware")
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def canonical(event: EventContent) -> bytes:
    body = {
        "case_id": event.case_id,
        "seq": event.seq,
        "at": instant(event.at),
        "actor": event.actor,
        "type": event.type,
        "data": event.data,
        "prev_hash": event.prev_hash,
    }
    text = json.dumps(
        body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_default
    )
    return text.encode("utf-8")


def event_hash(event: EventContent) -> str:
    return hashlib.sha256(canonical(event)).hexdigest()


def json_ready(data: Mapping[str, Any]) -> dict[str, Any]:
    """`data` as the JSON column will give it back (dates as ISO strings), so hashes agree."""
    result: dict[str, Any] = json.loads(json.dumps(data, ensure_ascii=False, default=_default))
    return result


@dataclass(frozen=True)
class Break:
    """The first event of a chain that does not verify."""

    seq: int
    event_id: int | None
    reason: str  # "hash" | "prev_hash" | "seq" — what does not match


def first_break(events: Iterable[EventLike]) -> Break | None:
    """Recompute a case's chain, events in `seq` order; None when it is intact."""
    prev: str | None = None
    expected_seq = 1
    for ev in events:
        if ev.seq != expected_seq:
            return Break(ev.seq, ev.id, "seq")
        if ev.prev_hash != prev:
            return Break(ev.seq, ev.id, "prev_hash")
        if event_hash(ev) != ev.hash:
            return Break(ev.seq, ev.id, "hash")
        prev = ev.hash
        expected_seq += 1
    return None
