"""A Telegram Bot API emulator the real PTB ``Application`` talks to over HTTP.

It plays Telegram (the Bot API methods certdesk uses, validated the way Telegram validates them)
and the people (``FakeUser``) on the other side, and records everything the bot sent, so tests,
benches and the local terminal mode exercise the real bot without the network.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json
import math
import re
import struct
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from bot.clock import Clock
from bot.emulator.html import EntityError, parse_html, utf16_len

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_DATA = 64  # bytes
MAX_DOWNLOAD = 20 * 1024 * 1024  # getFile refuses bigger files
MAX_UPLOAD = 50 * 1024 * 1024
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)
# Sending methods Telegram throttles (flood control); polling and look-ups are not.
RATED = frozenset(
    [
        "sendmessage",
        "senddocument",
        "sendphoto",
        "editmessagetext",
        "editmessagereplymarkup",
        "editmessagecaption",
        "copymessage",
        "forwardmessage",
    ]
)
# Parameters that are strings by definition: never JSON-decode them ("123" stays text).
_STRINGS = frozenset(
    [
        "text",
        "caption",
        "parse_mode",
        "callback_query_id",
        "file_id",
        "document",
        "photo",
        "url",
        "action",
        "secret_token",
        "language_code",
        "inline_message_id",
        "ip_address",
    ]
)
_CHAT_ACTIONS = frozenset(
    [
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    ]
)
_BUTTON_ACTIONS = frozenset(
    [
        "url",
        "callback_data",
        "web_app",
        "login_url",
        "switch_inline_query",
        "switch_inline_query_current_chat",
        "switch_inline_query_chosen_chat",
        "copy_text",
        "callback_game",
        "pay",
    ]
)
_COMMAND = re.compile(r"^[a-z0-9_]{1,32}$")


class ApiError(Exception):
    """A Bot API error answer: HTTP status, Telegram's description, optional parameters."""

    def __init__(self, status: int, description: str, parameters: dict | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.status,
            "description": self.description,
        }
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def _too_many(retry_after: float) -> ApiError:
    shown = int(retry_after) if float(retry_after).is_integer() else retry_after
    return ApiError(429, f"Too Many Requests: retry after {shown}", {"retry_after": shown})


_DEFAULT_DESCRIPTIONS = {
    400: "Bad Request",
    403: "Forbidden: bot was blocked by the user",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


@dataclass
class Call:
    """One HTTP call the bot made, as answered."""

    method: str
    params: dict[str, Any]
    status: int
    response: dict[str, Any]
    at: float  # time.perf_counter()

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def result(self) -> Any:
        return self.response.get("result")


@dataclass
class StoredFile:
    """A file Telegram holds: uploaded by a user or sent by the bot."""

    file_id: str
    file_unique_id: str
    content: bytes
    file_path: str
    file_name: str | None
    mime_type: str | None
    file_size: int

    def as_document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": self.file_size,
        }
        if self.file_name:
            doc["file_name"] = self.file_name
        if self.mime_type:
            doc["mime_type"] = self.mime_type
        return doc

    def as_file(self) -> dict[str, Any]:
        return {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": self.file_size,
            "file_path": self.file_path,
        }


@dataclass
class Reply:
    """Something the bot showed in a chat: a new message or an edit of one."""

    method: str
    chat_id: int
    message_id: int
    text: str  # plain text as the person sees it (caption for files)
    raw: str | None  # text or caption exactly as the bot sent it
    parse_mode: str | None
    reply_markup: dict[str, Any] | None
    message: dict[str, Any]  # the Bot API Message returned to the bot
    file: StoredFile | None = None
    at: float = field(default_factory=time.perf_counter)

    @property
    def edited(self) -> bool:
        return self.method.startswith("edit")

    @property
    def keyboard(self) -> list[list[dict[str, Any]]]:
        """Inline keyboard rows (empty when there is none)."""
        return (self.reply_markup or {}).get("inline_keyboard", [])

    @property
    def buttons(self) -> list[str]:
        """Texts of the inline buttons, row by row."""
        return [b["text"] for row in self.keyboard for b in row]

    @property
    def reply_keyboard(self) -> list[str]:
        """Texts of a reply keyboard's buttons (empty when there is none)."""
        rows = (self.reply_markup or {}).get("keyboard", [])
        return [b if isinstance(b, str) else b["text"] for row in rows for b in row]


@dataclass
class _Fault:
    status: int
    retry_after: float
    description: str | None
    after_delivery: bool

    def error(self) -> ApiError:
        if self.status == 429:
            return _too_many(self.retry_after)
        return ApiError(
            self.status,
            self.description or _DEFAULT_DESCRIPTIONS.get(self.status, "Error"),
        )


class NoReplyError(AssertionError):
    """The bot did not answer in time; the message shows what it did do."""


class _Window:
    """Sliding one-second window of accepted calls."""

    def __init__(self, per_second: int) -> None:
        self.per_second = per_second
        self.stamps: deque[float] = deque()

    def retry_after(self, now: float) -> int:
        """0 when a call may pass now; else whole seconds to wait, as Telegram says."""
        while self.stamps and self.stamps[0] <= now - 1:
            self.stamps.popleft()
        if len(self.stamps) < self.per_second:
            return 0
        return max(1, math.ceil(self.stamps[0] + 1 - now))


class Emulator:
    """Telegram Bot API on 127.0.0.1:<ephemeral port>; ``async with Emulator() as emu:``."""

    def __init__(
        self,
        *,
        token: str | None = None,
        bot_username: str = "certdesk_bot",
        bot_name: str = "certdesk",
        clock: Clock | None = None,
        poll_cap: float | None = None,
    ) -> None:
        self.token = token  # None accepts any token
        self.clock = clock or Clock()
        self.poll_cap = poll_cap  # upper bound on a long poll's wait, seconds
        bot_id = int(token.split(":")[0]) if token and token.split(":")[0].isdigit() else 100
        self.bot_user: dict[str, Any] = {
            "id": bot_id,
            "is_bot": True,
            "first_name": bot_name,
            "username": bot_username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }
        self.sent: list[Call] = []
        self.updates: list[dict[str, Any]] = []  # every update ever queued
        self.unknown: list[str] = []  # unknown methods the bot called
        self.rejected = 0  # calls refused by rate_limit()
        self.files: dict[str, StoredFile] = {}
        self._paths: dict[str, StoredFile] = {}  # file_path → file, for the download route
        self.commands: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.callback_answers: dict[str, dict[str, Any] | None] = {}
        self.webhook_url: str | None = None
        self._cond = asyncio.Condition()
        self._pending: list[dict[str, Any]] = []  # not yet confirmed by getUpdates offset
        self._allowed: set[str] | None = None
        self._update_ids = itertools.count(100_001)
        self._file_ids = itertools.count(1)
        self._callback_ids = itertools.count(1)
        self._message_ids: dict[int, itertools.count] = defaultdict(lambda: itertools.count(1))
        self._chats: dict[int, dict[str, Any]] = {}
        self._blocked: set[int] = set()
        self._messages: dict[int, dict[int, dict[str, Any]]] = defaultdict(dict)
        self._outputs: dict[int, list[Reply]] = defaultdict(list)
        self._faults: dict[str, deque[_Fault]] = defaultdict(deque)
        self._global_window: _Window | None = None
        self._chat_limit: int | None = None
        self._chat_windows: dict[int, _Window] = {}
        self._poll_generation = 0
        self._closing = False
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._methods: dict[str, Callable[..., Any]] = {
            name.lower(): fn
            for name, fn in {
                "getMe": lambda p, f: self.bot_user,
                "getUpdates": self._get_updates,
                "setWebhook": self._set_webhook,
                "deleteWebhook": self._delete_webhook,
                "getWebhookInfo": self._get_webhook_info,
                "setMyCommands": self._set_my_commands,
                "getMyCommands": self._get_my_commands,
                "deleteMyCommands": self._delete_my_commands,
                "getChat": lambda p, f: self._chat(p),
                "sendMessage": self._send_message,
                "editMessageText": self._edit_message_text,
                "editMessageReplyMarkup": self._edit_message_reply_markup,
                "editMessageCaption": self._edit_message_caption,
                "deleteMessage": self._delete_message,
                "answerCallbackQuery": self._answer_callback_query,
                "sendChatAction": self._send_chat_action,
                "sendDocument": lambda p, f: self._send_file(p, f, "document"),
                "sendPhoto": lambda p, f: self._send_file(p, f, "photo"),
                "getFile": self._get_file,
            }.items()
        }

    # ---- lifecycle -------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """For ``ApplicationBuilder().base_url(...)``; PTB appends the token."""
        return f"http://127.0.0.1:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/file/bot"

    async def start(self) -> None:
        app = web.Application(client_max_size=MAX_UPLOAD + 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        # handler_cancellation: a long poll whose client went away (PTB stopping) ends at once.
        self._runner = web.AppRunner(
            app, handler_cancellation=True, shutdown_timeout=0.25, access_log=None
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        async with self._cond:
            self._closing = True  # pending long polls answer [] now
            self._cond.notify_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---- the test's side ---------------------------------------------------------------------

    def user(
        self,
        user_id: int,
        first_name: str = "Test",
        *,
        language_code: str | None = "zh-hans",
        chat_type: str = "private",
        chat_id: int | None = None,
        username: str | None = None,
        last_name: str | None = None,
    ) -> FakeUser:
        """A person who has started the bot (so the bot may write to them)."""
        return FakeUser(
            self,
            user_id,
            first_name,
            language_code=language_code,
            chat_type=chat_type,
            chat_id=chat_id,
            username=username,
            last_name=last_name,
        )

    def block(self, chat_id: int, blocked: bool = True) -> None:
        """The user blocks the bot: sending to them answers 403 Forbidden."""
        (self._blocked.add if blocked else self._blocked.discard)(chat_id)

    def fail_next(
        self,
        method: str,
        n: int = 1,
        status: int = 429,
        retry_after: float = 1,
        *,
        description: str | None = None,
        after_delivery: bool = False,
    ) -> None:
        """Answer the next ``n`` calls of ``method`` with an error.

        ``retry_after`` is whole seconds on real Telegram; a fraction keeps tests fast (PTB accepts
        it). ``after_delivery=True`` performs the call first and then fails it, as a 5xx after
        Telegram already delivered does, to test that retries do not send twice.
        """
        fault = _Fault(status, retry_after, description, after_delivery)
        self._faults[method.lower()].extend(fault for _ in range(n))

    def rate_limit(
        self, per_second: int | None = None, per_chat_per_second: int | None = None
    ) -> None:
        """Flood control for sending methods: over the limit answers 429 with retry_after."""
        self._global_window = _Window(per_second) if per_second else None
        self._chat_limit = per_chat_per_second
        self._chat_windows.clear()

    def calls(self, method: str) -> list[Call]:
        """Every recorded call of ``method`` (case-insensitive), failed ones included."""
        key = method.lower()
        return [c for c in self.sent if c.method.lower() == key]

    def outputs(self, chat_id: int) -> list[Reply]:
        """Everything the bot showed in a chat: messages and edits, in order."""
        return list(self._outputs[chat_id])

    def delivered(self, chat_id: int) -> list[Reply]:
        """Messages that reached the chat (sendMessage/sendDocument/sendPhoto), not edits."""
        return [r for r in self._outputs[chat_id] if not r.edited]

    def message(self, chat_id: int, message_id: int) -> dict[str, Any] | None:
        """The message's current state (after edits), or None if deleted or unknown."""
        return self._messages[chat_id].get(message_id)

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        """Wait until ``predicate()`` holds after some call or update; False on timeout."""
        try:
            async with asyncio.timeout(timeout), self._cond:
                await self._cond.wait_for(predicate)
        except TimeoutError:
            return False
        return True

    async def queue_update(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Queue an update of type ``kind`` ("message", "callback_query", …) for getUpdates."""
        update = {"update_id": next(self._update_ids), kind: payload}
        async with self._cond:
            self.updates.append(update)
            self._pending.append(update)
            self._cond.notify_all()
        return update

    # ---- HTTP ----------------------------------------------------------------------------------

    async def _handle_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params, files = await _read_params(request)
        try:
            if self.token is not None and request.match_info["token"] != self.token:
                raise ApiError(401, "Unauthorized")
            result = await self._dispatch(method, params, files)
            status, body = 200, {"ok": True, "result": result}
        except ApiError as err:
            status, body = err.status, err.body()
        async with self._cond:
            # Recorded and announced together, so a waiter that sees a reply also sees the call.
            self.sent.append(Call(method, params, status, body, time.perf_counter()))
            self._cond.notify_all()
        return web.json_response(body, status=status)

    async def _handle_file(self, request: web.Request) -> web.Response:
        stored = self._paths.get(request.match_info["path"])
        if stored is None:
            raise web.HTTPNotFound()
        return web.Response(body=stored.content, content_type="application/octet-stream")

    async def _dispatch(self, method: str, params: dict, files: dict) -> Any:
        key = method.lower()
        handler = self._methods.get(key)
        if handler is None:
            self.unknown.append(method)
            raise ApiError(404, "Not Found: method not found")
        fault = self._faults[key].popleft() if self._faults.get(key) else None
        if fault and not fault.after_delivery:
            raise fault.error()
        if key in RATED:
            self._check_rate(params)
        result = handler(params, files)
        if inspect.isawaitable(result):
            result = await result
        if fault:
            raise fault.error()
        return result

    def _check_rate(self, params: dict) -> None:
        now = time.monotonic()
        windows = [self._global_window] if self._global_window else []
        if self._chat_limit and "chat_id" in params:
            chat = params["chat_id"]
            windows.append(self._chat_windows.setdefault(chat, _Window(self._chat_limit)))
        wait = max((w.retry_after(now) for w in windows), default=0)
        if wait:
            self.rejected += 1
            raise _too_many(wait)
        for w in windows:
            w.stamps.append(now)

    # ---- updates -------------------------------------------------------------------------------

    async def _get_updates(self, p: dict, files: dict) -> list[dict[str, Any]]:
        if self.webhook_url:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset, limit = int(p.get("offset", 0)), min(max(int(p.get("limit", 100)), 1), 100)
        timeout = float(p.get("timeout", 0))
        if self.poll_cap is not None:
            timeout = min(timeout, self.poll_cap)
        if "allowed_updates" in p:
            self._allowed = set(p["allowed_updates"]) or None
        async with self._cond:
            self._confirm(offset)
            self._poll_generation += 1
            generation = self._poll_generation
            self._cond.notify_all()  # an older poll still waiting is superseded

        def ready() -> bool:
            return (
                bool(self._deliverable(limit))
                or self._closing
                or (generation != self._poll_generation)
            )

        await self.wait_for(ready, timeout)
        if generation != self._poll_generation:
            raise ApiError(
                409,
                "Conflict: terminated by other getUpdates request; make sure that only one "
                "bot instance is running",
            )
        return self._deliverable(limit)

    def _confirm(self, offset: int) -> None:
        if offset < 0:
            self._pending = self._pending[offset:]
        elif offset:
            self._pending = [u for u in self._pending if u["update_id"] >= offset]

    def _deliverable(self, limit: int) -> list[dict[str, Any]]:
        if self._allowed is not None:
            # Telegram drops updates of types the bot did not ask for.
            self._pending = [u for u in self._pending if _kind(u) in self._allowed]
        return self._pending[:limit]

    def _set_webhook(self, p: dict, files: dict) -> bool:
        self.webhook_url = p.get("url") or None
        return True

    def _delete_webhook(self, p: dict, files: dict) -> bool:
        self.webhook_url = None
        if p.get("drop_pending_updates"):
            self._pending.clear()
        return True

    def _get_webhook_info(self, p: dict, files: dict) -> dict[str, Any]:
        return {
            "url": self.webhook_url or "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._pending),
        }

    # ---- commands ------------------------------------------------------------------------------

    @staticmethod
    def _commands_key(p: dict) -> tuple[str, str]:
        scope = p.get("scope") or {"type": "default"}
        return json.dumps(scope, sort_keys=True), p.get("language_code") or ""

    def _set_my_commands(self, p: dict, files: dict) -> bool:
        commands = p.get("commands") or []
        for c in commands:
            if (
                not _COMMAND.match(c.get("command", ""))
                or not 1 <= len(c.get("description", "")) <= 256
            ):
                raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
        self.commands[self._commands_key(p)] = commands
        return True

    def _get_my_commands(self, p: dict, files: dict) -> list[dict[str, Any]]:
        return self.commands.get(self._commands_key(p), [])

    def _delete_my_commands(self, p: dict, files: dict) -> bool:
        self.commands.pop(self._commands_key(p), None)
        return True

    # ---- chats and messages --------------------------------------------------------------------

    def _register_chat(self, chat: dict[str, Any]) -> None:
        self._chats[chat["id"]] = chat

    def _chat(self, p: dict) -> dict[str, Any]:
        if "chat_id" not in p:
            raise ApiError(400, "Bad Request: chat_id is empty")
        chat_id = p["chat_id"]
        chat = self._chats.get(chat_id) if isinstance(chat_id, int) else None
        if chat is None:
            raise ApiError(400, "Bad Request: chat not found")
        if chat_id in self._blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        return chat

    def _now(self) -> int:
        return int(self.clock.now().timestamp())

    def _new_message(
        self, chat: dict[str, Any], sender: dict[str, Any], **content: Any
    ) -> dict[str, Any]:
        message_id = next(self._message_ids[chat["id"]])
        message = {
            "message_id": message_id,
            "from": sender,
            "chat": chat,
            "date": self._now(),
            **{k: v for k, v in content.items() if v is not None},
        }
        self._messages[chat["id"]][message_id] = message
        return message

    def _format(
        self, text: Any, parse_mode: str | None, entities: Any, *, caption: bool = False
    ) -> tuple[str, list[dict[str, Any]] | None]:
        """Telegram's checks on a text or caption; returns (plain text, entities)."""
        text = "" if text is None else str(text)
        if (parse_mode or "").lower() == "html":
            try:
                text, entities = parse_html(text)
            except EntityError as err:
                raise ApiError(400, f"Bad Request: can't parse entities: {err}") from None
        if not caption and not text.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if caption and utf16_len(text) > MAX_CAPTION:
            raise ApiError(400, "Bad Request: message caption is too long")
        if not caption and utf16_len(text) > MAX_TEXT:
            raise ApiError(400, "Bad Request: message is too long")
        return text, entities or None

    @staticmethod
    def _markup(markup: Any) -> dict[str, Any] | None:
        if markup is None:
            return None
        if not isinstance(markup, dict):
            raise ApiError(400, "Bad Request: can't parse reply keyboard markup JSON object")
        for row in markup.get("inline_keyboard", []):
            for button in row:
                _check_button(button)
        return markup

    def _reply_to(self, p: dict, chat_id: int) -> dict[str, Any] | None:
        ref = p.get("reply_parameters") or {}
        if "reply_to_message_id" in p:
            ref = {"message_id": p["reply_to_message_id"], **ref}
        if not ref:
            return None
        target = self._messages[ref.get("chat_id", chat_id)].get(ref.get("message_id"))
        if target is None:
            if ref.get("allow_sending_without_reply") or p.get("allow_sending_without_reply"):
                return None
            raise ApiError(400, "Bad Request: message to be replied not found")
        return {k: v for k, v in target.items() if k != "reply_to_message"}

    def _record_output(
        self, method: str, message: dict, raw: str | None, p: dict, file: StoredFile | None = None
    ) -> None:
        text = message.get("text", message.get("caption", ""))
        markup = p.get("reply_markup") if "reply_markup" in p else message.get("reply_markup")
        self._outputs[message["chat"]["id"]].append(
            Reply(
                method=method,
                chat_id=message["chat"]["id"],
                message_id=message["message_id"],
                text=text,
                raw=raw,
                parse_mode=p.get("parse_mode"),
                reply_markup=markup,
                message=message,
                file=file,
            )
        )

    def _send_message(self, p: dict, files: dict) -> dict[str, Any]:
        chat = self._chat(p)
        text, entities = self._format(p.get("text"), p.get("parse_mode"), p.get("entities"))
        markup = self._markup(p.get("reply_markup"))
        message = self._new_message(
            chat,
            self.bot_user,
            text=text,
            entities=entities,
            reply_to_message=self._reply_to(p, chat["id"]),
            reply_markup=_inline_only(markup),
        )
        self._record_output("sendMessage", message, p.get("text"), p)
        return message

    def _bot_message(self, p: dict, verb: str) -> dict[str, Any]:
        if "inline_message_id" in p:
            raise ApiError(400, "Bad Request: inline messages are not emulated")
        chat = self._chat(p)
        message = self._messages[chat["id"]].get(p.get("message_id"))
        if message is None:
            raise ApiError(400, f"Bad Request: message to {verb} not found")
        if verb == "edit" and message["from"]["id"] != self.bot_user["id"]:
            raise ApiError(400, "Bad Request: message can't be edited")
        return message

    def _replace(self, old: dict, method: str, p: dict, **changes: Any) -> dict[str, Any]:
        new = {k: v for k, v in {**old, **changes}.items() if v is not None}
        if all(old.get(k) == new.get(k) for k in ("text", "caption", "entities", "reply_markup")):
            raise ApiError(400, NOT_MODIFIED)
        new["edit_date"] = self._now()
        self._messages[new["chat"]["id"]][new["message_id"]] = new
        self._record_output(method, new, p.get("text", p.get("caption")), p)
        return new

    def _edit_message_text(self, p: dict, files: dict) -> dict[str, Any]:
        old = self._bot_message(p, "edit")
        if "text" not in old:
            raise ApiError(400, "Bad Request: there is no text in the message to edit")
        text, entities = self._format(p.get("text"), p.get("parse_mode"), p.get("entities"))
        markup = _inline_only(self._markup(p.get("reply_markup")))
        return self._replace(
            old, "editMessageText", p, text=text, entities=entities, reply_markup=markup
        )

    def _edit_message_caption(self, p: dict, files: dict) -> dict[str, Any]:
        old = self._bot_message(p, "edit")
        if "text" in old:
            raise ApiError(400, "Bad Request: there is no caption in the message to edit")
        caption, entities = self._format(
            p.get("caption"), p.get("parse_mode"), p.get("caption_entities"), caption=True
        )
        markup = _inline_only(self._markup(p.get("reply_markup")))
        return self._replace(
            old,
            "editMessageCaption",
            p,
            caption=caption or None,
            caption_entities=entities,
            reply_markup=markup,
        )

    def _edit_message_reply_markup(self, p: dict, files: dict) -> dict[str, Any]:
        old = self._bot_message(p, "edit")
        markup = _inline_only(self._markup(p.get("reply_markup")))
        return self._replace(old, "editMessageReplyMarkup", p, reply_markup=markup)

    def _delete_message(self, p: dict, files: dict) -> bool:
        message = self._bot_message(p, "delete")
        del self._messages[message["chat"]["id"]][message["message_id"]]
        return True

    def _answer_callback_query(self, p: dict, files: dict) -> bool:
        query_id = p.get("callback_query_id")
        if query_id not in self.callback_answers or self.callback_answers[query_id] is not None:
            raise ApiError(
                400,
                "Bad Request: query is too old and response timeout expired or query ID is invalid",
            )
        self.callback_answers[query_id] = p
        return True

    def _send_chat_action(self, p: dict, files: dict) -> bool:
        self._chat(p)
        if p.get("action") not in _CHAT_ACTIONS:
            raise ApiError(400, "Bad Request: wrong parameter action in request")
        return True

    # ---- files ---------------------------------------------------------------------------------

    def store_file(
        self,
        content: bytes,
        *,
        file_name: str | None,
        mime_type: str | None,
        folder: str = "documents",
        file_size: int | None = None,
    ) -> StoredFile:
        """Keep a file as Telegram would; ``file_size`` may claim more than ``content`` holds."""
        n = next(self._file_ids)
        suffix = (file_name or "").rpartition(".")[2] if "." in (file_name or "") else "bin"
        if folder == "photos":
            suffix = "jpg"
        stored = StoredFile(
            file_id=f"F{n:06d}-{folder}",
            file_unique_id=f"U{n:06d}",
            content=content,
            file_path=f"{folder}/file_{n}.{suffix}",
            file_name=file_name,
            mime_type=mime_type,
            file_size=len(content) if file_size is None else file_size,
        )
        self.files[stored.file_id] = stored
        self._paths[stored.file_path] = stored
        return stored

    def _input_file(self, p: dict, files: dict, kind: str) -> StoredFile:
        if kind in files:
            name, content, mime = files[kind]
            folder = "photos" if kind == "photo" else "documents"
            return self.store_file(content, file_name=name, mime_type=mime, folder=folder)
        ref = p.get(kind)
        if not ref:
            raise ApiError(400, f"Bad Request: there is no {kind} in the request")
        stored = self.files.get(str(ref))
        if stored is None:
            raise ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
        return stored

    def _send_file(self, p: dict, files: dict, kind: str) -> dict[str, Any]:
        chat = self._chat(p)
        caption, entities = self._format(
            p.get("caption"), p.get("parse_mode"), p.get("caption_entities"), caption=True
        )
        markup = self._markup(p.get("reply_markup"))
        stored = self._input_file(p, files, kind)
        media: Any = stored.as_document() if kind == "document" else [_photo_size(stored)]
        message = self._new_message(
            chat,
            self.bot_user,
            caption=caption or None,
            caption_entities=entities,
            reply_to_message=self._reply_to(p, chat["id"]),
            reply_markup=_inline_only(markup),
            **{kind: media},
        )
        self._record_output("send" + kind.capitalize(), message, p.get("caption"), p, stored)
        return message

    def _get_file(self, p: dict, files: dict) -> dict[str, Any]:
        stored = self.files.get(str(p.get("file_id")))
        if stored is None:
            raise ApiError(400, "Bad Request: invalid file_id")
        if stored.file_size > MAX_DOWNLOAD:
            raise ApiError(400, "Bad Request: file is too big")
        return stored.as_file()


class FakeUser:
    """A person in a chat with the bot: sends, presses, uploads, and reads the bot's replies."""

    def __init__(
        self,
        emulator: Emulator,
        user_id: int,
        first_name: str,
        *,
        language_code: str | None,
        chat_type: str,
        chat_id: int | None,
        username: str | None,
        last_name: str | None,
    ) -> None:
        self.emulator = emulator
        self.user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name}
        for key, value in (
            ("last_name", last_name),
            ("username", username),
            ("language_code", language_code),
        ):
            if value:
                self.user[key] = value
        if chat_type == "private":
            self.chat: dict[str, Any] = {"id": chat_id or user_id, "type": "private"}
            self.chat |= {
                k: self.user[k] for k in ("first_name", "last_name", "username") if k in self.user
            }
        else:
            self.chat = {"id": chat_id or -user_id, "type": chat_type, "title": "Test group"}
        emulator._register_chat(self.chat)
        self._cursor = 0

    @property
    def id(self) -> int:
        return self.user["id"]

    @property
    def chat_id(self) -> int:
        return self.chat["id"]

    @property
    def replies(self) -> list[Reply]:
        """Everything the bot showed in this chat so far."""
        return self.emulator.outputs(self.chat_id)

    async def send(self, text: str, *, reply_to: int | None = None) -> dict[str, Any]:
        """A text message; a leading /command gets its bot_command entity as Telegram adds it."""
        content: dict[str, Any] = {"text": text}
        if text.startswith("/"):
            command = text.split(maxsplit=1)[0]
            content["entities"] = [
                {"type": "bot_command", "offset": 0, "length": utf16_len(command)}
            ]
        if reply_to is not None:
            content["reply_to_message"] = self.emulator.message(self.chat_id, reply_to)
        return await self._message(**content)

    async def upload(
        self,
        content: bytes,
        filename: str,
        mime_type: str = "application/octet-stream",
        *,
        caption: str | None = None,
        file_size: int | None = None,
    ) -> dict[str, Any]:
        """A document message; the bot can fetch it with get_file + download."""
        stored = self.emulator.store_file(
            content, file_name=filename, mime_type=mime_type, file_size=file_size
        )
        return await self._message(document=stored.as_document(), caption=caption)

    async def upload_photo(
        self,
        content: bytes,
        *,
        caption: str | None = None,
        width: int | None = None,
        height: int | None = None,
    ) -> dict[str, Any]:
        stored = self.emulator.store_file(content, file_name=None, mime_type=None, folder="photos")
        return await self._message(photo=[_photo_size(stored, width, height)], caption=caption)

    async def press(self, text_or_data: str, *, message_id: int | None = None) -> dict[str, Any]:
        """Press an inline button (by text or callback_data) of the latest keyboard in the chat.

        A reply-keyboard button is "pressed" by sending its text, as Telegram clients do.
        """
        message = self._keyboard_message(message_id)
        if message is not None:
            for row in message["reply_markup"]["inline_keyboard"]:
                for button in row:
                    if text_or_data in (button["text"], button.get("callback_data")):
                        return await self._callback(message, button)
        for reply in reversed(self.replies):
            if text_or_data in reply.reply_keyboard:
                return await self.send(text_or_data)
        shown = [
            b["text"]
            for row in (message or {}).get("reply_markup", {}).get("inline_keyboard", [])
            for b in row
        ]
        raise LookupError(f"no button {text_or_data!r} in chat {self.chat_id}; buttons: {shown}")

    async def next_reply(self, timeout: float = 5.0) -> Reply:
        """The next thing the bot showed in this chat (message or edit), waiting for it."""
        outputs = self.emulator._outputs[self.chat_id]
        if not await self.emulator.wait_for(lambda: len(outputs) > self._cursor, timeout):
            raise NoReplyError(self._silence_report(timeout))
        reply = outputs[self._cursor]
        self._cursor += 1
        return reply

    def _silence_report(self, timeout: float) -> str:
        shown = [f"{r.method}: {r.text[:80]!r}" for r in self.replies] or ["nothing"]
        recent = [
            f"{c.method} -> {c.status}" + ("" if c.ok else f" {c.response.get('description')}")
            for c in self.emulator.sent
            if c.method != "getUpdates"
        ][-10:]
        return (
            f"no reply to chat {self.chat_id} within {timeout}s "
            f"(read {self._cursor} of {len(shown)}).\n"
            f"Shown in this chat: {shown}\nLast calls: {recent or 'none'}"
        )

    def _keyboard_message(self, message_id: int | None) -> dict[str, Any] | None:
        messages = self.emulator._messages[self.chat_id]
        if message_id is not None:
            return messages.get(message_id)
        for message in reversed(messages.values()):
            if (message.get("reply_markup") or {}).get("inline_keyboard"):
                return message
        return None

    async def _message(self, **content: Any) -> dict[str, Any]:
        message = self.emulator._new_message(self.chat, self.user, **content)
        return await self.emulator.queue_update("message", message)

    async def _callback(self, message: dict, button: dict) -> dict[str, Any]:
        if "callback_data" not in button:
            raise LookupError(f"button {button['text']!r} is not a callback button: {button}")
        query_id = f"{self.id}-{next(self.emulator._callback_ids)}"
        self.emulator.callback_answers[query_id] = None
        query = {
            "id": query_id,
            "from": self.user,
            "message": message,
            "chat_instance": str(self.chat_id),
            "data": button["callback_data"],
        }
        return await self.emulator.queue_update("callback_query", query)


# ---- helpers -------------------------------------------------------------------------------


def _kind(update: dict[str, Any]) -> str:
    return next(k for k in update if k != "update_id")


def _inline_only(markup: dict[str, Any] | None) -> dict[str, Any] | None:
    """A sent Message echoes only an inline keyboard, never a reply keyboard."""
    if markup and markup.get("inline_keyboard"):
        return {"inline_keyboard": markup["inline_keyboard"]}
    return None


def _check_button(button: Any) -> None:
    if not isinstance(button, dict) or not button.get("text"):
        raise ApiError(400, "Bad Request: can't parse inline keyboard button: text is empty")
    actions = _BUTTON_ACTIONS & button.keys()
    if len(actions) != 1:
        raise ApiError(
            400,
            "Bad Request: can't parse inline keyboard button: Text buttons are unallowed in the "
            "inline keyboard",
        )
    data = button.get("callback_data")
    if data is not None and not 1 <= len(str(data).encode()) <= MAX_CALLBACK_DATA:
        raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
    url = button.get("url")
    if url is not None and not re.match(r"^(https?|tg)://\S+$", str(url)):
        raise ApiError(400, "Bad Request: BUTTON_URL_INVALID")


def _photo_size(
    stored: StoredFile, width: int | None = None, height: int | None = None
) -> dict[str, Any]:
    png_w, png_h = _png_size(stored.content)
    return {
        "file_id": stored.file_id,
        "file_unique_id": stored.file_unique_id,
        "file_size": stored.file_size,
        "width": width or png_w or 800,
        "height": height or png_h or 600,
    }


def _png_size(content: bytes) -> tuple[int, int]:
    if content[:8] == b"\x89PNG\r\n\x1a\n" and len(content) >= 24:
        return struct.unpack(">II", content[16:24])
    return 0, 0


def _decode(key: str, value: str) -> Any:
    """Bot API form values: non-strings arrive JSON-encoded."""
    if key in _STRINGS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


async def _read_params(
    request: web.Request,
) -> tuple[dict[str, Any], dict[str, tuple[str | None, bytes, str | None]]]:
    """Query string, then a form (urlencoded or multipart) or a JSON body."""
    params: dict[str, Any] = {k: _decode(k, v) for k, v in request.query.items()}
    files: dict[str, tuple[str | None, bytes, str | None]] = {}
    if request.content_type == "application/json":
        body = await request.json() if request.can_read_body else {}
        params.update(body or {})
    elif request.can_read_body:
        for key, value in (await request.post()).items():
            if isinstance(value, web.FileField):
                files[key] = (value.filename, value.file.read(), value.content_type)
            else:
                params[key] = _decode(key, str(value))
    return params, files
