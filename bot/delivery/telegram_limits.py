"""The interactive bot's PTB rate limiter, on the same budget as the outbox sender of its token.

Telegram's ~30 messages a second are per bot token: the replies in chats and the outbox's sends
share them, so both take their slots from one `RateLimiter`. Replies take only the overall slot
(a user waiting for an answer is not spaced a second apart); the outbox adds the per-chat spacing
for what it sends. A 429 that still comes back pauses every send of the token.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from datetime import timedelta
from typing import Any

from telegram.error import RetryAfter
from telegram.ext import BaseRateLimiter

from bot.delivery.telegram import RateLimiter

BeforeSend = Callable[[], Awaitable[None]]


class SharedRateLimiter(BaseRateLimiter[None]):
    """PTB's hook around every Bot API request but getUpdates.

    `before_send` runs first (the application commits the update's unit of work there, so no
    reply ever announces what is not yet durable)."""

    def __init__(self, limiter: RateLimiter, before_send: BeforeSend | None = None) -> None:
        self.limiter = limiter
        self.before_send = before_send

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
        if self.before_send is not None:
            await self.before_send()
        await self.limiter.acquire_overall()
        try:
            return await callback(*args, **kwargs)
        except RetryAfter as exc:
            wait = exc.retry_after
            await self.limiter.pause(wait.total_seconds() if isinstance(wait, timedelta) else wait)
            raise
