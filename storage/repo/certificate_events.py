"""A certificate's history: what staff did to it, oldest first."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import Certificate, CertificateEvent


async def add(
    session: AsyncSession,
    certificate_id: int,
    *,
    actor: str,
    type: str,
    at: datetime,
    data: dict[str, Any] | None = None,
) -> CertificateEvent:
    row = CertificateEvent(certificate_id=certificate_id, actor=actor, type=type, at=at, data=data)
    session.add(row)
    await session.flush()
    return row


async def of(session: AsyncSession, certificate_id: int) -> list[CertificateEvent]:
    stmt = (
        select(CertificateEvent)
        .where(CertificateEvent.certificate_id == certificate_id)
        .order_by(col(CertificateEvent.at), col(CertificateEvent.id))
    )
    return list((await session.exec(stmt)).all())


async def every(session: AsyncSession) -> list[Certificate]:
    """The whole register, by number (the console filters it in Python: the schedule decides
    what is overdue)."""
    return list((await session.exec(select(Certificate).order_by(Certificate.number))).all())


async def lock(
    session: AsyncSession, number: str, *, for_update: bool = True
) -> Certificate | None:
    """The certificate with this number (any case), locked for the change unless only read."""
    stmt = select(Certificate).where(func.lower(Certificate.number) == number.strip().lower())
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.exec(stmt)).first()


async def number_of(session: AsyncSession, certificate_id: int) -> str | None:
    row = await session.get(Certificate, certificate_id)
    return row.number if row is not None else None


async def add_many(
    session: AsyncSession,
    events: list[tuple[int, dict[str, Any]]],
    *,
    actor: str,
    type: str,
    at: datetime,
) -> None:
    """One event of `type` for each (certificate id, data): written with one flush."""
    for certificate_id, data in events:
        session.add(CertificateEvent(certificate_id=certificate_id, actor=actor, type=type, at=at,
                                     data=data))  # fmt: skip
    await session.flush()
