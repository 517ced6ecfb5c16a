"""Tamper-evident case history: each event carries the SHA-256 of itself and of the one before.

The hash covers a canonical JSON serialisation (sorted keys, no whitespace, UTF-8 unescaped,
instants as UTC ISO with microseconds), so it is the same on SQLite and PostgreSQL and after a
dump and restore. Changing any stored field of an event — or removing or reordering events —
breaks the chain at that event (GGBZ §10.4: electronic records must not be editable).

A chain alone can be recomputed by whoever can write the table, so it is anchored outside the
rows it protects: each event's hash is signed with a key the database does not hold (an HMAC,
`event_mac`), and a signed head per case (`head_mac`: how many events, the last hash, a seal of
each case-row field that matters) tells truncation, forged appends and edited case rows apart.
Each event also records the digest of those case-row fields as they were when it was written.
"""

from __future__ import annotations

import hashlib
import hmac
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
    case_digest: str | None


class EventLike(EventContent, Protocol):
    id: int | None
    hash: str
    mac: str | None


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
        "case_digest": event.case_digest,
    }
    return _canonical_json(body)


# One encoder for every canonical text (json.dumps would build one per call): the same output.
_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_default
)
# Its C scanner, built once (JSONEncoder.encode builds one per call, a fifth of the cost of an
# event's text): the same arguments, without the check for circular values (case data never
# refers to itself; such a value would fail on recursion depth instead of a ValueError).
_MAKE_C_ENCODER: Any = getattr(json.encoder, "c_make_encoder", None)  # not in typeshed
_C_ENCODE: Any = (
    _MAKE_C_ENCODER(
        None, _default, json.encoder.encode_basestring, None, ":", ",", True, False, True
    )
    if _MAKE_C_ENCODER is not None
    else None
)


def _canonical_json(value: object) -> bytes:
    if _C_ENCODE is None or isinstance(value, str):
        return _CANONICAL.encode(value).encode("utf-8")
    return "".join(_C_ENCODE(value, 0)).encode("utf-8")


def event_hash(event: EventContent) -> str:
    return hashlib.sha256(canonical(event)).hexdigest()


# --- what of the case row the history covers ---------------------------------------------------

# Who the complainant is, where replies go, what the case is and when it came, who decided and
# audited (impartiality), and where it stands. Every change the services make to one of these is
# followed by an event in the same transaction, which seals the new values. Left out:
# `thread_message_ids`, which outgoing mail extends without an event (a letter joins a case by
# its sender's address, not by its thread alone).
CASE_FIELDS: tuple[str, ...] = (
    "id",
    "ref",
    "kind",
    "channel",
    "contact_id",
    "complainant_name",
    "complainant_email",
    "complainant_chat_id",
    "locale",
    "created_at",
    "decided_on",
    "decided_by",
    "audit_team",
    "subject",
    "description",
    "concerns",
    "concerns_certificate_no",
    "out_of_time",
    "incomplete",
    "status",
    "assignee",
    "closed_at",
)


def case_fields(case: object) -> dict[str, Any]:
    """The covered fields of a case row (any object with those attributes)."""
    return {name: getattr(case, name) for name in CASE_FIELDS}


def case_digest(fields: Mapping[str, Any]) -> str:
    """SHA-256 of the covered fields, recorded in each event (readable without the key)."""
    return hashlib.sha256(_canonical_json(dict(fields))).hexdigest()


# --- signatures: the anchor outside the database ----------------------------------------------

# Domain separation: an event MAC can never pass for a head or a field seal, or the reverse.
_EVENT, _HEAD, _FIELD, _KEY_ID, _EXPORT = (
    b"certdesk/event/v1\n",
    b"certdesk/head/v1\n",
    b"certdesk/field/v1\n",
    b"certdesk/key-id/v1\n",
    b"certdesk/heads-export/v1\n",
)


def _mac(key: bytes, *parts: bytes) -> str:
    return hmac.digest(key, b"".join(parts), "sha256").hex()  # = hmac.new(…).hexdigest()


def key_id(key: bytes) -> str:
    """A short public name of the key, so a check run with another key says so."""
    return hashlib.sha256(_KEY_ID + key).hexdigest()[:16]


def event_mac(key: bytes, event_hash: str) -> str:
    """The event's signature: its hash covers its content and its predecessor's hash."""
    return _mac(key, _EVENT, event_hash.encode("ascii"))


def field_seals(key: bytes, fields: Mapping[str, Any]) -> dict[str, str]:
    """One keyed seal per covered field, so a check names what was edited (keyed: the seal of
    a chat id or a name gives nothing away to someone who reads the table)."""
    return {
        name: _mac(key, _FIELD, name.encode(), b"\n", _canonical_json(value))[:32]
        for name, value in fields.items()
    }


def changed_fields(key: bytes, fields: Mapping[str, Any], seals: Mapping[str, str]) -> list[str]:
    """The covered fields whose value no longer matches its seal (or has none)."""
    now = field_seals(key, fields)
    return sorted(name for name in set(now) | set(seals) if now.get(name) != seals.get(name))


class HeadContent(Protocol):
    """A case's signed head: the state of its history after the last append."""

    case_id: int
    seq: int  # the seq of the last event appended (its count, unless a gap was left)
    head_hash: str
    fields: dict[str, str]  # field_seals of the case row after that append
    note: str | None  # sticky: what an append found wrong with the history before it
    key_id: str


def head_mac(key: bytes, head: HeadContent) -> str:
    body = {
        "case_id": head.case_id,
        "seq": head.seq,
        "head_hash": head.head_hash,
        "fields": head.fields,
        "note": head.note,
        "key_id": head.key_id,
    }
    return _mac(key, _HEAD, _canonical_json(body))


def export_mac(key: bytes, export: Mapping[str, Any]) -> str:
    """The signature of an export of heads (`certdesk cases heads`), its "mac" left out."""
    body = {k: v for k, v in export.items() if k != "mac"}
    return _mac(key, _EXPORT, _canonical_json(body))


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
