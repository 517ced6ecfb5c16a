"""The case history (append-only, hash-chained, signed) and the unit of work the services
write through."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.domain.cases import CaseRefused
from bot.domain.history import (
    case_digest,
    case_fields,
    changed_fields,
    event_hash,
    event_mac,
    field_seals,
    head_mac,
    json_ready,
    key_id,
)
from bot.domain.history_audit import head_is_valid
from storage.history_key import key_of
from storage.models import Case, CaseEvent, CaseHead
from storage.repo import cases as repo
from storage.repo import history as heads
from storage.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)
NOTE_LIMIT = 2000  # a head's sticky note keeps the first findings, not an endless list

# What the services intake calls accept: the caller's unit of work, or (the e-mail intake,
# which manages its own transactions and savepoints) a session it commits itself.
Work = UnitOfWork | AsyncSession


def session_of(work: Work) -> AsyncSession:
    return work.session if isinstance(work, UnitOfWork) else work


async def append(
    session: AsyncSession,
    case: Case,
    *,
    actor: str,
    type: str,
    now: datetime,
    data: dict[str, Any] | None = None,
) -> CaseEvent:
    """Append one hash-chained, signed event and move the case's signed head to it.

    The case row is locked so `seq` cannot be taken twice. What the append finds already wrong
    (a head missing or not matching the last event, a case row edited behind the application)
    is kept on the new head for good, and the numbering skips what was deleted, so the new
    head never makes an earlier edit look intact.
    """
    assert case.id is not None
    key = key_of(session)
    # The row as the database holds it, before this session's changes flush (locked: one
    # writer per case), and which covered fields this session changed itself.
    stored = await heads.stored_case_fields(session, case.id, lock=True)
    ours = heads.app_changed(session, case)
    await session.flush()
    last = await repo.last_event(session, case.id)
    head = await heads.head_of(session, case.id)
    found = what_is_wrong(key, last, head, stored, ours)
    trusted = head is not None and head_is_valid(key, head)
    seq = max(last.seq if last else 0, head.seq if head and trusted else 0) + 1
    # Sealed as the row now is, ours included: an object loaded before another instance's
    # change would otherwise seal its stale values.
    fields = await heads.stored_case_fields(session, case.id) or case_fields(case)
    clean = json_ready(data) if data is not None else None
    event = CaseEvent(
        case_id=case.id,
        seq=seq,
        at=now,
        actor=actor,
        type=type,
        data=clean,
        prev_hash=None if last is None else last.hash,
        case_digest=case_digest(fields),
        hash="",
    )
    event.hash = event_hash(event)
    event.mac = event_mac(key, event.hash)
    session.add(event)
    note = head.note if head is not None and trusted else None
    if found:
        log.error("case %s: history altered before event #%d: %s", case.ref, seq, found)
        note = "; ".join(n for n in (note, f"#{seq}: {found}") if n)[:NOTE_LIMIT]
    if head is None:
        head = CaseHead(case_id=case.id, seq=0, head_hash="", fields={}, key_id="", mac="")
    head.seq, head.head_hash, head.note = seq, event.hash, note
    head.fields, head.key_id = field_seals(key, fields), key_id(key)
    head.mac = head_mac(key, head)
    session.add(head)
    await session.flush()
    heads.sealed(session, case)
    return event


class Signed(Protocol):
    """What an append reads of a case's last event."""

    seq: int
    hash: str
    mac: str | None


def what_is_wrong(
    key: bytes,
    last: Signed | None,
    head: CaseHead | None,
    stored: dict[str, Any] | None,
    ours: set[str],
    seals: Mapping[str, str] | None = None,
) -> str:
    """What an append finds already wrong with the history it extends ("" when nothing).
    `seals`: the field seals of `stored`, when the caller has them already."""
    if head is None:
        return "" if last is None else "no signed head"
    if head.key_id != key_id(key):
        return f"head signed with another key ({head.key_id})"
    if not head_is_valid(key, head):
        return "head signature invalid"
    wrong = []
    if last is None or last.seq < head.seq:
        wrong.append(f"events missing after #{last.seq if last else 0} (head #{head.seq})")
    elif last.seq > head.seq:
        wrong.append(f"events beyond the head (#{head.seq + 1}-#{last.seq})")
    elif last.hash != head.head_hash or last.mac != event_mac(key, last.hash):
        wrong.append(f"event #{last.seq} is not the one signed")
    if stored is not None:
        if seals is None:
            changed = changed_fields(key, stored, head.fields)
        else:
            changed = sorted(n for n in set(seals) | set(head.fields)
                             if seals.get(n) != head.fields.get(n))  # fmt: skip
        edited = [f for f in changed if f not in ours]
        if edited:
            wrong.append("case row edited outside the history: " + ", ".join(edited))
    return "; ".join(wrong)


def check_open(case: Case) -> None:
    if case.closed_at is not None:
        raise CaseRefused("cases.refused_closed", ref=case.ref)
