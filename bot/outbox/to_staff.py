"""The one way to queue a message for staff: one outbox row per configured staff channel."""

from __future__ import annotations

import logging

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.desk import Desk
from bot.outbox.console_links import console_link
from bot.outbox.staff_notice import UNROUTED, render, targets
from storage.models import Channel, OutboxMessage
from storage.repo.outbox import enqueue

log = logging.getLogger(__name__)

Buttons = list[list[dict[str, str]]]

__all__ = ["UNROUTED", "Buttons", "queue_for_staff"]


async def queue_for_staff(
    desk: Desk,
    session: AsyncSession,
    *,
    key: str,
    text: str,
    buttons: Buttons | None = None,
    case_id: int | None = None,
) -> OutboxMessage | None:
    """Queue an HTML text (with inline buttons on Telegram) for every staff channel, once per
    `key`: the staff chat, each group robot, each STAFF_ALERT_EMAILS address. One row per channel,
    each with its own key, so a failing channel holds up none of the others. Returns the first
    row (the staff chat's when there is one).

    With no staff channel the message is still stored, on the `staff` channel: it stays queued
    (shown by `certdesk outbox status`) until a staff channel can take it, never lost.
    """
    found = targets(desk.settings)
    if not found:
        log.info("no staff channel configured: staff message %s kept on the staff channel", key)
        return await enqueue(
            session,
            channel=Channel.STAFF,
            recipient=UNROUTED,
            payload={"text": text, **({"reply_markup": buttons} if buttons else {})},
            idempotency_key=key,
            case_id=case_id,
            now=desk.clock.now(),
        )
    link = await console_link(desk, session, key, case_id)  # its page, with CONSOLE_BASE_URL
    rows = [
        await enqueue(
            session,
            channel=target.channel,
            recipient=target.recipient,
            payload=render(target, desk.settings, text, buttons, link),
            idempotency_key=target.key(key),
            case_id=case_id,
            now=desk.clock.now(),
        )
        for target in found
    ]
    return rows[0]
