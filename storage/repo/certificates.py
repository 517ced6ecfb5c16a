"""Queries of certificates: import (insert or update by number) and lookup."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import Certificate, Nonconformity, Organisation


async def by_number(session: AsyncSession, number: str) -> Certificate | None:
    return (await session.exec(select(Certificate).where(Certificate.number == number))).first()


async def upsert(
    session: AsyncSession, values: Mapping[str, Any], now: datetime
) -> tuple[Certificate, bool]:
    """Insert a certificate or update the one with the same number; (row, created)."""
    row = await by_number(session, values["number"])
    created = row is None
    if row is None:
        row = Certificate(**values, updated_at=now)
    else:
        for key, value in values.items():
            setattr(row, key, value)
        row.updated_at = now
    session.add(row)
    await session.flush()
    return row, created


async def open_nonconformities(session: AsyncSession, certificate_id: int) -> list[Nonconformity]:
    query = select(Nonconformity).where(
        Nonconformity.certificate_id == certificate_id,
        Nonconformity.closed_on == None,  # noqa: E711  (SQL IS NULL)
    )
    return list((await session.exec(query)).all())


async def organisation(session: AsyncSession, organisation_id: int) -> Organisation | None:
    return await session.get(Organisation, organisation_id)


async def find(session: AsyncSession, text: str) -> list[Certificate]:
    """Certificates by number, case-insensitive, else by holder name (exact, then contained)."""
    key = text.strip().lower()
    by_no = select(Certificate).where(func.lower(col(Certificate.number)) == key)
    found = list((await session.exec(by_no)).all())
    if found:
        return found
    holder = func.lower(col(Certificate.holder))
    exact = select(Certificate).where(holder == key).order_by(col(Certificate.number))
    found = list((await session.exec(exact)).all())
    if found:
        return found
    pattern = "%" + key.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    like = (
        select(Certificate)
        .where(holder.like(pattern, escape="\\"))
        .order_by(col(Certificate.number))
        .limit(20)
    )
    return list((await session.exec(like)).all())


async def by_numbers(session: AsyncSession, numbers: list[str]) -> list[Certificate]:
    """The certificates with these numbers (an import's page: one query, not one a row)."""
    if not numbers:
        return []
    stmt = select(Certificate).where(col(Certificate.number).in_(numbers))
    return list((await session.exec(stmt)).all())


async def insert_many(session: AsyncSession, rows: list[dict[str, Any]]) -> list[int]:
    """New certificates in multi-row INSERTs (one a ~1,000 rows); their ids, in order."""
    return await inserted(session, Certificate, rows)


async def inserted(
    session: AsyncSession, table: type[Any], rows: list[dict[str, Any]]
) -> list[int]:
    """Insert `rows` into `table` through SQLAlchemy's "insertmanyvalues" batching (an ORM
    flush sends one statement a row); the new ids, in the order of `rows`."""
    if not rows:
        return []
    await session.flush()  # pending ORM changes first: the connection below bypasses autoflush
    stmt = insert(table).returning(table.id, sort_by_parameter_order=True)
    conn = await session.connection()
    return [int(i) for i in (await conn.execute(stmt, rows)).scalars().all()]
