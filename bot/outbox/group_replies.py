"""Replies the bot sends straight into a group (a staff command answered in the staff group),
recorded as sent outbox rows: Telegram's 20 a minute to a group count them with the outbox's
alerts and digests, and the pacer (bot.outbox.groups) counts a group's minute from its rows.

The reply has already taken the group's turn in the rate limiter (bot.delivery.telegram_limits),
so it never goes over; recording it lets the pacer merge what waits into a digest sooner rather
than queue it. A record that cannot be written is logged, never the reply's failure.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.clock import Clock
from storage.repo.outbox import record_sent

log = logging.getLogger(__name__)

Record = Callable[[str, str | None, str], Awaitable[None]]


def group_reply_recorder(sessions: async_sessionmaker[AsyncSession], clock: Clock) -> Record:
    """The rate limiter's `on_group` hook: one sent row per request that went to a group."""

    async def record(chat: str, message_id: str | None, text: str) -> None:
        # A fresh key each time: an edit keeps its message's id, and counts as a send too.
        key = f"reply:{chat}:{message_id or '-'}:{uuid.uuid4().hex}"
        try:
            async with sessions() as session, session.begin():
                await record_sent(
                    session, recipient=chat, payload={"text": text}, key=key, now=clock.now()
                )
        except Exception as exc:  # the reply went; only the pacer's count misses it
            log.warning("a reply to group %s was not recorded: %s", chat, type(exc).__name__)

    return record


__all__ = ["Record", "group_reply_recorder"]
