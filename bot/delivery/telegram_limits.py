"""The interactive bot's PTB rate limiter, on the same budget as the outbox sender of its token.

Telegram's ~30 messages a second are per bot token: the replies in chats and the outbox's sends
share them, so both take their slots from one `RateLimiter`. Replies in a private chat take only
the overall slot (a user waiting for an answer is not spaced a second apart); the outbox adds the
per-chat spacing for what it sends. A reply into a group (a staff command answered in the staff
group) takes the group's turn too, as the outbox's digests and alerts do: Telegram's 20 a minute
to a group count both, so a full minute makes the reply wait rather than go over, and `on_group`
records it so the outbox's pacer counts it (bot.outbox.groups). A 429 that still comes back
pauses every send of the token.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from datetime import timedelta
from typing import Any

from telegram.error import RetryAfter
from telegram.ext import BaseRateLimiter

from bot.delivery.telegram_pace import PACED_BY_OUTBOX, RateLimiter

BeforeSend = Callable[[], Awaitable[None]]
# A request sent to a group: (chat id, the answer's message id or None, its text or caption).
OnGroup = Callable[[str, str | None, str], Awaitable[None]]
# The methods that put something in a chat (Telegram's flood control counts them); "typing…"
# is not a message.
_SENDING = ("send", "edit", "copy", "forward")
_NOT_A_MESSAGE = frozenset({"sendChatAction"})


def group_of(endpoint: str, data: dict[str, Any]) -> str | None:
    """The group chat a sending request goes to (negative id), or None."""
    chat = data.get("chat_id")
    if chat is None or not endpoint.startswith(_SENDING) or endpoint in _NOT_A_MESSAGE:
        return None
    chat = str(chat)
    return chat if chat.startswith("-") else None


class SharedRateLimiter(BaseRateLimiter[None]):
    """PTB's hook around every Bot API request but getUpdates.

    `before_send` runs first (the application commits the update's unit of work there, so no
    reply ever announces what is not yet durable)."""

    def __init__(
        self,
        limiter: RateLimiter,
        before_send: BeforeSend | None = None,
        on_group: OnGroup | None = None,
    ) -> None:
        self.limiter = limiter
        self.before_send = before_send
        self.on_group = on_group

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | dict[str, Any] | list[dict[str, Any]]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: None,
    ) -> bool | dict[str, Any] | list[dict[str, Any]]:
        if PACED_BY_OUTBOX.get():  # the outbox's sender through this Bot: paced and recorded
            return await callback(*args, **kwargs)
        if self.before_send is not None:
            await self.before_send()
        group = group_of(endpoint, data)
        if group is None:
            await self.limiter.acquire_overall()
        else:
            await self.limiter.acquire(group, reply=True)
        try:
            result = await callback(*args, **kwargs)
        except RetryAfter as exc:
            wait = exc.retry_after
            await self.limiter.pause(wait.total_seconds() if isinstance(wait, timedelta) else wait)
            raise
        if group is not None and self.on_group is not None:
            message_id = result.get("message_id") if isinstance(result, dict) else None
            text = data.get("text") or data.get("caption") or ""
            await self.on_group(group, None if message_id is None else str(message_id), str(text))
        return result
