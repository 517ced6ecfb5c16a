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
UNROUTED = "staff"  # the recipient of a staff message no staff channel took yet


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

    Without a staff chat the message is still stored, on the `staff` channel: it stays queued
    (shown by `certdesk outbox status`) until a staff channel can take it, never lost.
    """
    chat = desk.settings.staff_chat_id
    payload: dict[str, Any] = {"text": text}
    if buttons:
        payload["reply_markup"] = buttons
    if chat is None:
        log.info("no STAFF_CHAT_ID: staff message %s kept on the staff channel", key)
    return await enqueue(
        session,
        channel=Channel.TELEGRAM if chat is not None else Channel.STAFF,
        recipient=str(chat) if chat is not None else UNROUTED,
        payload=payload,
        idempotency_key=key,
        case_id=case_id,
        now=desk.clock.now(),
    )
