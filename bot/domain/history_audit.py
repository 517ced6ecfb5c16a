"""Checking one case's history against its signed head: what `certdesk cases verify` reports.

Each way of rewriting a history without the key leaves its own trace:
- an event edited in place no longer matches its hash (`hash`), or its successor's link;
- a chain edited and recomputed has hashes that check but signatures that do not (`mac`);
- events deleted from the end leave fewer than the signed head counts (`truncated`);
- an event added without the key lies beyond the signed head (`forged`);
- a case row edited directly no longer matches the head's field seals (`case_row`);
- a head deleted, or edited, is missing or fails its own signature (`checkpoint`).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from bot.domain.history import (
    EventLike,
    HeadContent,
    case_digest,
    changed_fields,
    event_mac,
    first_break,
    head_mac,
    key_id,
)


class HeadLike(HeadContent, Protocol):
    mac: str


@dataclass(frozen=True)
class Finding:
    """One thing wrong with a case's history, at the event (seq) where it shows."""

    seq: int
    event_id: int | None
    reason: str
    detail: str = ""


REASONS = (
    "hash",  # an event's content does not match its hash: edited in place
    "prev_hash",  # an event does not link to the one before: inserted, removed or edited
    "seq",  # a gap in the numbering: events removed from the middle
    "missing",  # no history at all, and no signed head either
    "mac",  # hashes check but a signature does not: chain recomputed, or an event replaced
    "forged",  # events beyond the signed head: appended without the key
    "truncated",  # fewer events than the signed head counts: the last ones deleted
    "head",  # the signed head names another last event: the history was replaced
    "case_row",  # the case row's covered fields do not match their seals: edited directly
    "checkpoint",  # the signed head is missing or fails its signature
    "key",  # the head is signed with another key than the one given
    "noted",  # an append found the history already altered (kept on the head for good)
    "case_deleted",  # history (or a head) for a case row that is gone
    "rewound",  # an exported head's event is gone or another: rewound since the export
    "case_gone",  # a case in an export is gone with all its history and its head
)


def _signed(key: bytes, event: EventLike) -> bool:
    return event.mac is not None and hmac.compare_digest(event_mac(key, event.hash), event.mac)


def head_is_valid(key: bytes, head: HeadLike) -> bool:
    return head.key_id == key_id(key) and hmac.compare_digest(head_mac(key, head), head.mac)


def audit(
    key: bytes,
    events: Sequence[EventLike],
    head: HeadLike | None,
    fields: Mapping[str, Any] | None,
) -> list[Finding]:
    """Everything wrong with one case's history; [] when it is intact.

    `events` in seq order, `head` the case's signed head (None if there is none), `fields` the
    case row's covered fields (`case_fields`), None when the row is gone.
    """
    found: list[Finding] = []
    if fields is None:
        found.append(Finding(0, None, "case_deleted"))
    if not events and head is None:
        return [*found, Finding(1, None, "missing")]
    trusted: HeadLike | None = None
    if head is None:
        found.append(Finding(events[-1].seq, None, "checkpoint", "missing"))
    elif head.key_id != key_id(key):
        # Nothing can be told apart with a key that did not sign it: say so, and only that.
        return [*found, Finding(head.seq, None, "key", head.key_id)]
    elif not head_is_valid(key, head):
        found.append(Finding(head.seq, None, "checkpoint", "signature"))
    else:
        trusted = head
        if head.note:
            found.append(Finding(head.seq, None, "noted", head.note))

    broken = first_break(events)
    if broken is not None:
        found.append(Finding(broken.seq, broken.event_id, broken.reason))
    limit = trusted.seq if trusted is not None else None
    unsigned = next(
        (e for e in events if (limit is None or e.seq <= limit) and not _signed(key, e)), None
    )
    if unsigned is not None:
        found.append(Finding(unsigned.seq, unsigned.id, "mac"))
    if limit is not None:
        beyond = next((e for e in events if e.seq > limit), None)
        if beyond is not None:
            found.append(Finding(beyond.seq, beyond.id, "forged"))

    if trusted is not None:
        at_head = next((e for e in events if e.seq == trusted.seq), None)
        if at_head is None:
            kept = max((e.seq for e in events if e.seq < trusted.seq), default=0)
            found.append(Finding(kept + 1, None, "truncated", str(trusted.seq - kept)))
        elif at_head.hash != trusted.head_hash and unsigned is None:
            found.append(Finding(trusted.seq, at_head.id, "head"))
        if fields is not None:
            changed = changed_fields(key, fields, trusted.fields)
            if changed:
                found.append(Finding(trusted.seq, None, "case_row", ", ".join(changed)))
    elif events and fields is not None and case_digest(fields) != events[-1].case_digest:
        # No head to name the fields by: the last event's digest still tells an edit.
        found.append(Finding(events[-1].seq, events[-1].id, "case_row"))
    return found


def since_export(
    exported_seq: int, exported_hash: str, events: Sequence[EventLike], row_exists: bool
) -> Finding | None:
    """What became of a head exported earlier: its event must still be there, unchanged.

    This is what a database rewound to an older, validly signed state cannot hide (an old
    head put back after deleting the events that followed, a case deleted with everything).
    """
    at = next((e for e in events if e.seq == exported_seq), None)
    if at is not None and at.hash == exported_hash:
        return None
    if at is None and not events and not row_exists:
        return Finding(exported_seq, None, "case_gone")
    return Finding(exported_seq, None if at is None else at.id, "rewound")
