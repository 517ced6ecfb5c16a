"""Queries of case histories' signed heads, and what the case row holds in the database.

An append checks the case row as the database holds it against the head's field seals, so
an edit made behind the application's back is noted before the new head would seal it. To
tell such an edit from the application's own changes in the same transaction, each flush
records which covered fields of a case the session itself changed (`app_changed`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, UOWTransaction
from sqlalchemy.orm import SessionTransaction as SyncTransaction
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import Select

from bot.domain.history import CASE_FIELDS
from storage.models import Case, CaseEvent, CaseHead

log = logging.getLogger(__name__)
_CHANGED = "certdesk_case_fields_changed"


def _pending(case: Case) -> set[str]:
    state = sa.inspect(case)
    if state.key is not None and not state.committed_state:
        return set()  # persistent and nothing set since it was loaded (the common case: quick)
    return {name for name in CASE_FIELDS if state.attrs[name].history.has_changes()}


@sa.event.listens_for(Session, "before_flush")
def _note_app_changes(session: Session, _ctx: UOWTransaction, _instances: Any) -> None:
    for obj in session.dirty:
        if isinstance(obj, Case) and obj.id is not None:
            changed = _pending(obj)
            if changed:
                session.info.setdefault(_CHANGED, {}).setdefault(obj.id, set()).update(changed)


@sa.event.listens_for(Session, "before_commit")
def _warn_unsealed(session: Session) -> None:
    # A covered field changed with no event after it: `cases verify` would report the row as
    # edited. A bug of the code that changed it (see bot.domain.history.CASE_FIELDS).
    unsealed: dict[int, set[str]] = {
        cid: set(names) for cid, names in session.info.get(_CHANGED, {}).items()
    }
    for obj in session.dirty:
        if isinstance(obj, Case) and obj.id is not None and _pending(obj):
            unsealed.setdefault(obj.id, set()).update(_pending(obj))
    for case_id, names in unsealed.items():
        if names:
            log.error(
                "case id %d: %s changed without a history event: verify will report it",
                case_id,
                ", ".join(sorted(names)),
            )


@sa.event.listens_for(Session, "after_transaction_end")
def _forget_app_changes(session: Session, transaction: SyncTransaction) -> None:
    if transaction.parent is None:  # the outer transaction: committed or rolled back
        session.info.pop(_CHANGED, None)


def app_changed(session: AsyncSession, case: Case) -> set[str]:
    """Covered fields of `case` this session changed since its last append (flushed or not)."""
    flushed: dict[int, set[str]] = session.info.get(_CHANGED, {})
    return set(flushed.get(case.id or 0, set())) | _pending(case)


def sealed(session: AsyncSession, case: Case) -> None:
    """The case's changes so far are sealed by a new head: nothing pending any more."""
    session.info.get(_CHANGED, {}).pop(case.id or 0, None)


async def stored_case_fields(
    session: AsyncSession, case_id: int, *, lock: bool = False
) -> dict[str, Any] | None:
    """The covered fields as the database holds them (this session's unflushed changes left
    out), the row locked until commit on PostgreSQL if `lock`; None when the row is gone."""
    columns = [sa.inspect(Case).columns[name] for name in CASE_FIELDS]
    query: Select[*tuple[Any, ...]] = Select(*columns).where(col(Case.id) == case_id)
    if lock:
        query = query.with_for_update()
    with session.no_autoflush:
        row = (await session.exec(query)).one_or_none()
    return None if row is None else dict(zip(CASE_FIELDS, row, strict=True))


async def head_of(session: AsyncSession, case_id: int) -> CaseHead | None:
    """The head as stored now: a session kept across commits may hold an older copy."""
    return await session.get(CaseHead, case_id, populate_existing=True)


async def as_stored(session: AsyncSession, case_id: int) -> tuple[list[CaseEvent], CaseHead | None]:
    """A case's events and head as the database holds them now, not as this session last saw
    them (a check must see what someone else changed)."""
    fresh = {"populate_existing": True}
    query = select(CaseEvent).where(CaseEvent.case_id == case_id).order_by(col(CaseEvent.seq))
    events = list((await session.exec(query.execution_options(**fresh))).all())
    return events, await head_of(session, case_id)


async def all_heads(session: AsyncSession) -> Sequence[CaseHead]:
    query = select(CaseHead).order_by(col(CaseHead.case_id))
    return (await session.exec(query.execution_options(populate_existing=True))).all()


async def orphan_case_ids(session: AsyncSession) -> Sequence[int]:
    """Case ids with events or a head but no case row (deleted behind the application)."""
    rows = sa.select(col(Case.id))
    evented = select(CaseEvent.case_id).where(col(CaseEvent.case_id).not_in(rows)).distinct()
    headed = select(CaseHead.case_id).where(col(CaseHead.case_id).not_in(rows))
    ids = set((await session.exec(evented)).all()) | set((await session.exec(headed)).all())
    return sorted(ids)


__all__ = [
    "all_heads",
    "app_changed",
    "as_stored",
    "head_of",
    "orphan_case_ids",
    "sealed",
    "stored_case_fields",
]
