"""Appends to many case histories at once (the e-mail intake's batches): the same hash chain,
HMACs and signed heads as `events.append`, computed in memory and written in one statement per
table.

A new case's first events need nothing read back: its row is what the batch wrote, it has no
event and no head yet. An existing case is read once per batch (its row as stored, locked; its
last event; its head) and checked as `append` checks it, then extended as often as the batch
needs; every event follows the one before it in memory.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.domain.history import (
    case_digest,
    event_hash,
    event_mac,
    field_seals,
    head_mac,
    key_id,
)
from bot.domain.history_audit import head_is_valid
from bot.services.cases.events import NOTE_LIMIT, what_is_wrong
from storage.history_key import key_of
from storage.models import Case
from storage.repo import bulk
from storage.repo import history as heads

log = logging.getLogger(__name__)


@dataclass
class _Event:
    """What an event's hash covers (bot.domain.history.EventContent)."""

    case_id: int
    seq: int
    at: datetime
    actor: str
    type: str
    data: dict[str, Any] | None
    prev_hash: str | None
    case_digest: str | None


@dataclass
class _Head:
    """A head being written (bot.domain.history.HeadContent)."""

    case_id: int
    seq: int
    head_hash: str
    fields: dict[str, str]
    note: str | None
    key_id: str


@dataclass
class _Chain:
    ref: str
    seq: int  # the last event's seq
    last_hash: str | None
    note: str | None
    digest: str
    seals: dict[str, str]
    new_head: bool  # no head stored yet: inserted, not updated


class Chains:
    """The appends of one batch; `write` stores the events and the heads."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.key = key_of(session)
        self.key_id = key_id(self.key)
        self._chains: dict[int, _Chain] = {}
        self._events: list[dict[str, Any]] = []
        self._loaded: list[Case] = []
        self._memo: dict[tuple[str, type, Any], str] = {}  # (field, type, value) → seal

    def start(self, case_id: int, ref: str, fields: dict[str, Any]) -> None:
        """A case this batch created: its covered fields as written."""
        self._chains[case_id] = _Chain(
            ref, 0, None, None, case_digest(fields), self._seals(fields), True
        )

    def _seals(self, fields: dict[str, Any]) -> dict[str, str]:
        """`field_seals`, each seal of a plain value computed once per batch (most fields of new
        cases hold the same few values: no contact, no decision, status received …)."""
        seals = {}
        for name, value in fields.items():
            plain = value is None or isinstance(value, bool | int | str | date)
            memo = (name, type(value), value) if plain else None
            seal = self._memo.get(memo) if memo else None
            if seal is None:
                seal = field_seals(self.key, {name: value})[name]
                if memo:
                    self._memo[memo] = seal
            seals[name] = seal
        return seals

    async def load(self, cases: dict[int, Case]) -> None:
        """Existing cases (locked): where their histories stand, checked as `append` does."""
        ids = [cid for cid in cases if cid not in self._chains]
        if not ids:
            return
        session = self.session
        stored = await bulk.stored_fields(session, ids)
        lasts = await bulk.last_events(session, ids)
        found_heads = await bulk.heads_of(session, ids)
        for cid in ids:
            case = cases[cid]
            self._loaded.append(case)
            fields = stored.get(cid)
            if fields is None:
                continue  # deleted meanwhile: `append` would fail on it too
            last, head = lasts.get(cid), found_heads.get(cid)
            seals = self._seals(fields)
            ours = heads.app_changed(session, case)
            wrong = what_is_wrong(self.key, last, head, fields, ours, seals)
            trusted = head is not None and head_is_valid(self.key, head)
            seq = max(last.seq if last else 0, head.seq if head and trusted else 0)
            note = head.note if head is not None and trusted else None
            if wrong:
                log.error("case %s: history altered before event #%d: %s", case.ref, seq + 1, wrong)
                note = "; ".join(n for n in (note, f"#{seq + 1}: {wrong}") if n)[:NOTE_LIMIT]
            self._chains[cid] = _Chain(
                case.ref,
                seq,
                last.hash if last else None,
                note,
                case_digest(fields),
                seals,
                head is None,
            )

    def knows(self, case_id: int) -> bool:
        return case_id in self._chains

    def append(
        self, case_id: int, *, actor: str, type: str, now: datetime, data: dict[str, Any]
    ) -> int:
        """One event after the case's last; its seq. `data` holds JSON values only (dates
        as ISO strings): stored and hashed as it is, as `json_ready` would give it."""
        chain = self._chains[case_id]
        event = _Event(
            case_id, chain.seq + 1, now, actor, type, data, chain.last_hash, chain.digest
        )
        digest = event_hash(event)
        self._events.append({**vars(event), "hash": digest, "mac": event_mac(self.key, digest)})
        chain.seq, chain.last_hash = event.seq, digest
        return event.seq

    async def write(self) -> None:
        new_heads: list[dict[str, Any]] = []
        moved: list[dict[str, Any]] = []
        for cid, chain in self._chains.items():
            if chain.last_hash is None:
                continue  # loaded, never extended
            head = _Head(cid, chain.seq, chain.last_hash, chain.seals, chain.note, self.key_id)
            row = {**vars(head), "mac": head_mac(self.key, head)}
            (new_heads if chain.new_head else moved).append(row)
        await bulk.insert_rows(self.session, bulk.EVENTS, self._events)
        await bulk.insert_rows(self.session, bulk.HEADS, new_heads)
        await bulk.update_rows(self.session, bulk.HEADS, moved, key="case_id")
        self._events = []
        for case in self._loaded:  # what this session changed of them is sealed now
            heads.sealed(self.session, case)
        for chain in self._chains.values():
            chain.new_head = False


__all__ = ["Chains"]
