"""The one way out: a typed message (bot.delivery.messages) queued in the caller's transaction."""

from __future__ import annotations

from datetime import datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.delivery.messages import (
    UNROUTED,
    Action,
    Actions,
    BadPayload,
    Letter,
    Outbound,
    RobotAlert,
    StaffNotice,
    TelegramDocument,
    TelegramText,
    actions,
    decode,
    encode,
)
from storage.models import OutboxMessage
from storage.repo import outbox as repo


async def enqueue(
    session: AsyncSession,
    message: Outbound,
    *,
    key: str,
    now: datetime,
    case_id: int | None = None,
    not_before: datetime | None = None,
    lane: str | None = None,
) -> OutboxMessage:
    """Queue `message` once per `key` (a repeat returns the row already queued); sent only if the
    caller's transaction commits. `now` is the caller's clock; `not_before` delays the first try.
    `lane`: "staff" for staff messages (their own lane: a flood never delays complainants)."""
    channel, recipient, payload = encode(message)
    if lane is None:
        lane = repo.STAFF_LANE if isinstance(message, RobotAlert | StaffNotice) else repo.MAIN_LANE
    return await repo.enqueue(
        session,
        channel=channel,
        recipient=recipient,
        payload=payload,
        idempotency_key=key,
        case_id=case_id,
        not_before=not_before,
        now=now,
        lane=lane,
    )


def message_of(row: OutboxMessage) -> Outbound:
    """The message a row holds; `BadPayload` when its payload is not one."""
    return decode(row.channel, row.recipient, row.payload or {})


__all__ = [
    "UNROUTED",
    "Action",
    "Actions",
    "BadPayload",
    "Letter",
    "Outbound",
    "RobotAlert",
    "StaffNotice",
    "TelegramDocument",
    "TelegramText",
    "actions",
    "enqueue",
    "message_of",
]
