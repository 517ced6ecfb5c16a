"""Staff tools on the outbox: the rows that need eyes (failed, retrying), and retrying them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, or_, update
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select

from storage.models import OutboxMessage

PROBLEMS_SHOWN = 50


@dataclass(frozen=True)
class Problem:
    id: int
    status: str  # "failed" or "retrying"
    channel: str
    recipient: str
    attempts: int
    next_attempt_at: datetime
    error: str | None

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "status": self.status,
            "channel": self.channel,
            "recipient": self.recipient,
            "attempts": self.attempts,
            "next_attempt_at": self.next_attempt_at.isoformat(),
            "error": self.error,
        }


async def problems(sessions: async_sessionmaker, limit: int = PROBLEMS_SHOWN) -> list[Problem]:
    """Failed rows, then rows queued again after a failure, newest first within each."""
    retrying = and_(col(OutboxMessage.status) == "queued", col(OutboxMessage.attempts) > 0)
    query = (
        select(OutboxMessage)
        .where(or_(col(OutboxMessage.status) == "failed", retrying))
        .order_by(col(OutboxMessage.status), col(OutboxMessage.id).desc())
        .limit(limit)
    )
    async with sessions() as session:
        rows = (await session.exec(query)).all()
    return [
        Problem(
            id=row.id or 0,
            status="failed" if row.status == "failed" else "retrying",
            channel=row.channel,
            recipient=row.recipient,
            attempts=row.attempts,
            next_attempt_at=row.next_attempt_at,
            error=row.last_error,
        )
        for row in rows
    ]


async def retry(sessions: async_sessionmaker, now: datetime, ids: list[int] | None) -> list[int]:
    """Failed rows (those of `ids`, or all when None) back to queued, due `now`, attempts reset:
    the worker sends them on its next pass. Rows named by id that are retrying (a staff alert
    kept after its channel failed) are made due now too. Returns the ids requeued."""
    where = col(OutboxMessage.status) == "failed"
    if ids is not None:
        retrying = and_(col(OutboxMessage.status) == "queued", col(OutboxMessage.attempts) > 0)
        where = and_(or_(where, retrying), col(OutboxMessage.id).in_(ids))
    stmt = (
        update(OutboxMessage)
        .where(where)
        .values(status="queued", attempts=0, next_attempt_at=now, claimed_by=None)
        .returning(col(OutboxMessage.id))
        .execution_options(synchronize_session=False)
    )
    async with sessions() as session, session.begin():
        return sorted((await session.exec(stmt)).scalars().all())


async def status_counts(sessions: async_sessionmaker) -> dict[str, int]:
    """Queued, retrying (queued after a failure), sending, sent and failed counts; `digested`:
    of those sent, how many went as a line of a group's digest (their `sent_in` says which)."""
    retrying = and_(col(OutboxMessage.status) == "queued", col(OutboxMessage.attempts) > 0)
    async with sessions() as session:
        rows = await session.exec(
            select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
        )
        counts = {status: n for status, n in rows.all()}
        n_retrying = (
            await session.exec(select(func.count()).select_from(OutboxMessage).where(retrying))
        ).one()
        in_digest = col(OutboxMessage.sent_in).is_not(None)
        n_digested = (
            await session.exec(select(func.count()).select_from(OutboxMessage).where(in_digest))
        ).one()
    queued = counts.get("queued", 0)
    return {
        "queued": queued - n_retrying,
        "retrying": n_retrying,
        "sending": counts.get("sending", 0),
        "sent": counts.get("sent", 0),
        "failed": counts.get("failed", 0),
        "digested": n_digested,
    }
