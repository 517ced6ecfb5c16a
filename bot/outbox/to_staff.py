"""The staff chat: the one way to queue a message for staff (through the outbox)."""

from __future__ import annotations

import logging
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.desk import Desk
from storage.models import Channel, OutboxMessage
from storage.repo.outbox import enqueue

log = logging.getLogger(__name__)

Buttons = list[list[dict[str, str]]]


async def queue_for_staff(
    desk: Desk,
    session: AsyncSession,
    *,
    key: str,
    text: str,
    buttons: Buttons | None = None,
    case_id: int | None = None,
) -> OutboxMessage | None:
    """Queue an HTML text (with inline buttons) for STAFF_CHAT_ID, once per `key`.

    Without a staff chat nothing is queued: the event itself is already recorded where it
    happened, and the log says what staff would have been told.
    """
    chat = desk.settings.staff_chat_id
    if chat is None:
        log.info("no STAFF_CHAT_ID: staff message %s not queued", key)
        return None
    payload: dict[str, Any] = {"text": text}
    if buttons:
        payload["reply_markup"] = buttons
    return await enqueue(
        session,
        channel=Channel.TELEGRAM,
        recipient=str(chat),
        payload=payload,
        idempotency_key=key,
        case_id=case_id,
        now=desk.clock.now(),
    )
