"""The outbox's Telegram sender: one message per outbox row, under Telegram's rate limits.

Telegram allows about 30 messages a second overall and one a second per chat (20 a minute in a
group). Its limiter (bot.delivery.telegram_pace) spaces sends to stay under both; a 429 that
still comes back pauses every send for its `retry_after`, and the row is retried by the outbox
at that time.
The interactive bot's replies take the overall slots of the same limiter (bot.delivery.
telegram_limits.SharedRateLimiter): one budget per token. With several instances on PostgreSQL
the overall slots come from a budget they share (`shared`, storage.repo.send_budget), so the
token's 30 a second hold in total, whichever instance sends. Its `Bot` talks
over `AiohttpRequest`, one pool of kept-alive connections shared by the outbox's lanes.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, InputFile, Message
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
from telegram.request import BaseRequest, RequestData

from bot.delivery import ChatMoved, PermanentFailure, TransientFailure
from bot.delivery.messages import Actions, Outbound, TelegramDocument, TelegramText
from bot.delivery.telegram_pace import (
    GROUP_INTERVAL,
    PACED_BY_OUTBOX,
    PRIVATE_INTERVAL,
    RateLimiter,
    SharedSlots,
)
from bot.delivery.telegram_split import split


class AiohttpRequest(BaseRequest):
    """PTB's transport on aiohttp's connection pool instead of httpx.

    Why: per request, httpx/httpcore's pool bookkeeping costs about as much CPU as the rest of the
    send (measured by bench/outbox_drain.py); aiohttp's pool is a fraction of it. Same contract as
    HTTPXRequest: (status, body) back, timeouts as `TimedOut`, other transport errors as
    `NetworkError`; PTB's `BaseRequest` turns statuses into its errors (429 → RetryAfter, …).
    """

    # Our own name: BaseRequest.USER_AGENT is Final (PTB's default header, used by HTTPXRequest).
    CLIENT_USER_AGENT = "certdesk outbox (python-telegram-bot, aiohttp)"

    def __init__(
        self,
        connections: int = 8,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 5.0,
        write_timeout: float = 5.0,
        keepalive: float = 5.0,
    ) -> None:
        self.connections = connections
        self._read_timeout = read_timeout
        self._connect_timeout = connect_timeout
        self._write_timeout = write_timeout
        # An idle connection is closed before a server would close it under us.
        self._keepalive = keepalive
        self._session: aiohttp.ClientSession | None = None

    @property
    def read_timeout(self) -> float | None:
        return self._read_timeout

    async def initialize(self) -> None:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self.connections, keepalive_timeout=self._keepalive
            )
            self._session = aiohttp.ClientSession(
                connector=connector, headers={"User-Agent": self.CLIENT_USER_AGENT}
            )

    async def shutdown(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = BaseRequest.DEFAULT_NONE,
        write_timeout: Any = BaseRequest.DEFAULT_NONE,
        connect_timeout: Any = BaseRequest.DEFAULT_NONE,
        pool_timeout: Any = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        if self._session is None or self._session.closed:
            raise RuntimeError("This AiohttpRequest is not initialized!")
        data: aiohttp.FormData | dict[str, str] | None = None
        if request_data is not None:
            data = request_data.json_parameters
            files = request_data.multipart_data
            if files:
                # File names as UTF-8, as httpx and browsers send them (quoted, Telegram would
                # show "%E8%90%A5….pdf"); control characters are dropped by the sender.
                form = aiohttp.FormData(data, quote_fields=False)
                for name, part in files.items():
                    filename, content, *mime = part if isinstance(part, tuple) else (name, part)
                    form.add_field(
                        name, content, filename=filename, content_type=mime[0] if mime else None
                    )
                data = form
        timeout = aiohttp.ClientTimeout(
            connect=_given(connect_timeout, self._connect_timeout),
            sock_read=_given(read_timeout, self._read_timeout),
        )
        try:
            async with self._session.request(method, url, data=data, timeout=timeout) as res:
                return res.status, await res.read()
        except TimeoutError as exc:
            raise TimedOut from exc
        except aiohttp.ClientError as exc:
            raise NetworkError(f"aiohttp.{type(exc).__name__}: {exc}") from exc


def _given(value: Any, default: float) -> float | None:
    # PTB passes a DefaultValue placeholder when the caller gave no timeout.
    return default if isinstance(value, type(BaseRequest.DEFAULT_NONE)) else value


def _seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _markup(rows: Actions) -> InlineKeyboardMarkup | None:
    if not rows:
        return None
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(a.label, callback_data=a.data) for a in row] for row in rows]
    )


class TelegramSender:
    """`Sender` for channel "telegram": a `TelegramText` or a `TelegramDocument`."""

    channel = "telegram"

    def __init__(self, bot: Bot, limiter: RateLimiter) -> None:
        self.bot = bot
        self.limiter = limiter

    async def close(self) -> None:
        """The shared budget's connection closed (the `Bot` is shut down by its owner)."""
        await self.limiter.close()

    async def send(self, message: Outbound) -> str | None:
        if isinstance(message, TelegramDocument):
            return await self._send_document(message)
        if not isinstance(message, TelegramText):
            raise PermanentFailure(f"telegram cannot send a {type(message).__name__}")
        # Over 4,096 characters: several messages, the buttons under the last.
        parts = split(message.text, message.html)
        sent_id = None
        for i, text in enumerate(parts):
            last = i == len(parts) - 1
            # HTML, or plain text (e.g. a reason quoted from an error).
            send = functools.partial(
                self.bot.send_message,
                chat_id=int(message.chat_id),
                text=text,
                parse_mode=ParseMode.HTML if message.html else None,
                reply_markup=_markup(message.actions) if last else None,
                disable_web_page_preview=True,
            )
            sent_id = await self._call(message.chat_id, send)
        return sent_id

    async def _send_document(self, message: TelegramDocument) -> str:
        data = await asyncio.to_thread(_read_stored, message)
        return await self._call(
            message.chat_id,
            functools.partial(
                self.bot.send_document,
                chat_id=int(message.chat_id),
                document=InputFile(data, filename=_file_name(message.file_name)),
                caption=message.caption or None,
                parse_mode=ParseMode.HTML,
                reply_markup=_markup(message.actions),
            ),
        )

    async def _call(self, chat_id: str, send: Callable[[], Awaitable[Message]]) -> str:
        """One request under the limiter, its errors as the outbox's failures."""
        await self.limiter.acquire(chat_id)
        paced = PACED_BY_OUTBOX.set(True)
        try:
            sent = await send()
        except RetryAfter as exc:
            wait = _seconds(exc.retry_after)
            await self.limiter.pause(wait)
            raise TransientFailure(f"429 Too Many Requests: retry after {wait:g}", wait) from exc
        except ChatMigrated as exc:
            raise ChatMoved(str(exc), str(exc.new_chat_id)) from exc
        except (Forbidden, InvalidToken) as exc:
            raise PermanentFailure(str(exc)) from exc
        except BadRequest as exc:
            # Chat not found, bad HTML, text too long: sending again cannot succeed.
            raise PermanentFailure(str(exc)) from exc
        except (TimedOut, NetworkError) as exc:
            # Includes 5xx answers (PTB raises NetworkError for them) and connection errors.
            raise TransientFailure(f"{type(exc).__name__}: {exc}") from exc
        except TelegramError as exc:
            raise TransientFailure(f"{type(exc).__name__}: {exc}") from exc
        finally:
            PACED_BY_OUTBOX.reset(paced)
        return str(sent.message_id)


def _file_name(name: str) -> str:
    """A file name fit for a multipart header: no control characters (no header injection)."""
    return "".join(c for c in name if c.isprintable()).strip() or "document"


def _read_stored(message: TelegramDocument) -> bytes:
    """The stored file's bytes, from under DATA_DIR only, and the bytes it was stored as."""
    if message.root is None:
        raise PermanentFailure("document without its DATA_DIR: not sent through the worker")
    root = Path(message.root).resolve()
    path = (root / message.file).resolve()
    if not path.is_relative_to(root):
        raise PermanentFailure(f"document outside DATA_DIR: {message.file}")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise PermanentFailure(f"stored file missing: {message.file}") from None
    except OSError as exc:
        raise TransientFailure(f"reading {message.file}: {exc}") from exc
    if message.sha256 and hashlib.sha256(data).hexdigest() != message.sha256:
        raise PermanentFailure(f"stored file changed on disk: {message.file}")
    return data


def telegram_sender(
    token: str,
    *,
    base_url: str = "https://api.telegram.org/bot",
    base_file_url: str = "https://api.telegram.org/file/bot",
    per_second: float = 30.0,
    private_interval: float = PRIVATE_INTERVAL,
    group_interval: float = GROUP_INTERVAL,
    connections: int = 8,
    shared: SharedSlots | None = None,
) -> TelegramSender:
    """A sender with its own `telegram.Bot` (call `await sender.bot.initialize()` before use).

    `connections`: HTTP pool size (kept-alive connections reused by every send): at least the
    lanes of all outbox workers sharing this sender (`Outbox(concurrency=…)`, 8 by default).
    `shared`: the budget the instances share for the token (scope `budget_scope(token)`).
    """
    request = AiohttpRequest(connections)
    bot = Bot(token, base_url=base_url, base_file_url=base_file_url, request=request)
    limiter = RateLimiter(
        per_second, private_interval=private_interval, group_interval=group_interval, shared=shared
    )
    return TelegramSender(bot, limiter)
