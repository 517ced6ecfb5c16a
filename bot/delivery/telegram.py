"""The outbox's Telegram sender: one message per outbox row, under Telegram's rate limits.

Telegram allows about 30 messages a second overall and one a second per chat (20 a minute in a
group). The limiter below spaces sends to stay under both; a 429 that still comes back pauses every
send for its `retry_after`, and the row is retried by the outbox at that time.
PTB's AIORateLimiter is for the interactive bot; this sender owns its own pacing.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from datetime import timedelta
from typing import Any

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.request import HTTPXRequest

from bot.delivery import PermanentFailure, TransientFailure
from storage.models import OutboxMessage

# Per-chat spacing Telegram asks for: private chats 1/s, groups 20/min, plus a margin: requests
# spaced exactly 1 s apart here may arrive less than 1 s apart after network jitter.
MARGIN = 0.03
PRIVATE_INTERVAL = 1.0 + MARGIN
GROUP_INTERVAL = 3.0 + MARGIN
_CHATS_REMEMBERED = 10_000


class RateLimiter:
    """Spaces sends: at most `per_second` overall and one per chat interval (monotonic time)."""

    def __init__(
        self,
        per_second: float,
        *,
        private_interval: float = PRIVATE_INTERVAL,
        group_interval: float = GROUP_INTERVAL,
    ) -> None:
        self.interval = (1.0 + MARGIN) / per_second
        self.private_interval = private_interval
        self.group_interval = group_interval
        self._next_global = 0.0
        self._next_chat: OrderedDict[str, float] = OrderedDict()
        self._lock = asyncio.Lock()

    async def acquire(self, chat_id: str) -> None:
        """Wait for this chat's turn; concurrent callers are served in order."""
        async with self._lock:
            now = time.monotonic()
            start = max(now, self._next_global, self._next_chat.get(chat_id, 0.0))
            self._next_global = start + self.interval
            gap = self.group_interval if chat_id.startswith("-") else self.private_interval
            self._next_chat[chat_id] = start + gap
            self._next_chat.move_to_end(chat_id)
            while len(self._next_chat) > _CHATS_REMEMBERED:
                self._next_chat.popitem(last=False)
        # Sleep outside the lock: the slots are reserved, other chats proceed meanwhile.
        if start > now:
            await asyncio.sleep(start - now)

    def pause(self, seconds: float) -> None:
        """Telegram said to wait (429): no send of this bot before then."""
        self._next_global = max(self._next_global, time.monotonic() + seconds)


def _seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _markup(rows: Any) -> InlineKeyboardMarkup | None:
    if not rows:
        return None
    return InlineKeyboardMarkup(
        [
            [InlineKeyboardButton(b["text"], callback_data=b["callback_data"]) for b in row]
            for row in rows
        ]
    )


class TelegramSender:
    """`Sender` for channel "telegram": payload {"text", "parse_mode"?, "reply_markup"?}."""

    channel = "telegram"

    def __init__(self, bot: Bot, limiter: RateLimiter) -> None:
        self.bot = bot
        self.limiter = limiter

    async def send(self, message: OutboxMessage) -> str | None:
        payload = message.payload
        # Default HTML; an explicit null means plain text (e.g. a reason quoted from an error).
        parse_mode = payload.get("parse_mode", ParseMode.HTML)
        await self.limiter.acquire(message.recipient)
        try:
            sent = await self.bot.send_message(
                chat_id=int(message.recipient),
                text=payload["text"],
                parse_mode=parse_mode,
                reply_markup=_markup(payload.get("reply_markup")),
                disable_web_page_preview=True,
            )
        except RetryAfter as exc:
            wait = _seconds(exc.retry_after)
            self.limiter.pause(wait)
            raise TransientFailure(f"429 Too Many Requests: retry after {wait:g}", wait) from exc
        except (Forbidden, ChatMigrated, InvalidToken) as exc:
            raise PermanentFailure(str(exc)) from exc
        except BadRequest as exc:
            # Chat not found, bad HTML, text too long: sending again cannot succeed.
            raise PermanentFailure(str(exc)) from exc
        except (TimedOut, NetworkError) as exc:
            # Includes 5xx answers (PTB raises NetworkError for them) and connection errors.
            raise TransientFailure(f"{type(exc).__name__}: {exc}") from exc
        except TelegramError as exc:
            raise TransientFailure(f"{type(exc).__name__}: {exc}") from exc
        return str(sent.message_id)


def telegram_sender(
    token: str,
    *,
    base_url: str = "https://api.telegram.org/bot",
    base_file_url: str = "https://api.telegram.org/file/bot",
    per_second: float = 30.0,
    private_interval: float = PRIVATE_INTERVAL,
    group_interval: float = GROUP_INTERVAL,
    connections: int = 8,
) -> TelegramSender:
    """A sender with its own `telegram.Bot` (call `await sender.bot.initialize()` before use).

    `connections`: HTTP pool size, for several outbox workers sharing this sender.
    """
    request = HTTPXRequest(connection_pool_size=connections)
    bot = Bot(token, base_url=base_url, base_file_url=base_file_url, request=request)
    limiter = RateLimiter(
        per_second, private_interval=private_interval, group_interval=group_interval
    )
    return TelegramSender(bot, limiter)
