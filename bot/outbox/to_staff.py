"""The one way to queue a message for staff: one outbox row per configured staff channel."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.desk import Desk
from bot.outbox.messages import Action, StaffNotice, actions, enqueue
from bot.outbox.staff_notice import UNROUTED, render, targets
from storage.models import OutboxMessage

log = logging.getLogger(__name__)

Buttons = Iterable[Iterable[Mapping[str, str] | Action]]

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
    row (the staff chat's when there is one). Every row is on the staff lane.

    With no staff channel the message is still stored, on the `staff` channel: it stays queued
    (shown by `certdesk outbox status`) until a staff channel can take it, never lost.
    """
    found, now, acts = targets(desk.settings), desk.clock.now(), actions(buttons)
    if not found:
        log.info("no staff channel configured: staff message %s kept on the staff channel", key)
        return await enqueue(
            session, StaffNotice(text, acts), key=key, case_id=case_id, now=now, lane="staff"
        )
    rows = [
        await enqueue(
            session,
            render(target, desk.settings, text, acts),
            key=target.key(key),
            case_id=case_id,
            now=now,
            lane="staff",
        )
        for target in found
    ]
    return rows[0]
