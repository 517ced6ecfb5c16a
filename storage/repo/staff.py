"""Queries of the staff directory."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import StaffMember


async def by_email(session: AsyncSession, email: str) -> StaffMember | None:
    return (await session.exec(select(StaffMember).where(StaffMember.email == email))).first()


async def by_id(session: AsyncSession, staff_id: int) -> StaffMember | None:
    return await session.get(StaffMember, staff_id)


async def by_telegram_id(session: AsyncSession, user_id: int) -> StaffMember | None:
    query = select(StaffMember).where(StaffMember.telegram_user_id == user_id)
    return (await session.exec(query)).first()


async def everyone(session: AsyncSession) -> Sequence[StaffMember]:
    query = select(StaffMember).order_by(col(StaffMember.disabled), col(StaffMember.name))
    return (await session.exec(query)).all()


async def by_emails_or_telegram_ids(
    session: AsyncSession, emails: Iterable[str], telegram_ids: Iterable[int]
) -> Sequence[StaffMember]:
    """Members named by address or by Telegram id (to show actors by name)."""
    emails, ids = list(emails), list(telegram_ids)
    if not emails and not ids:
        return []
    query = select(StaffMember).where(
        col(StaffMember.email).in_(emails) | col(StaffMember.telegram_user_id).in_(ids)
    )
    return (await session.exec(query)).all()


async def add(
    session: AsyncSession,
    *,
    name: str,
    email: str,
    telegram_user_id: int | None,
    role: str,
    password_hash: str,
    now: datetime,
) -> StaffMember:
    member = StaffMember(
        name=name,
        email=email,
        telegram_user_id=telegram_user_id,
        role=role,
        password_hash=password_hash,
        created_at=now,
    )
    session.add(member)
    await session.flush()
    return member


__all__ = ["add", "by_email", "by_emails_or_telegram_ids", "by_id", "by_telegram_id", "everyone"]
