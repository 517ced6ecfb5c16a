"""What the emulated Telegram remembers: chats, messages, files, commands, pending callback
queries, and the record of what the bot showed in each chat (``Reply``) and called (``Call``)."""

from __future__ import annotations

import asyncio
import itertools
import struct
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bot.clock import Clock
from bot.emulator.faults import ApiError


@dataclass
class Call:
    """One HTTP call the bot made, as answered."""

    method: str
    params: dict[str, Any]
    status: int
    response: dict[str, Any]
    at: float  # time.perf_counter()
    clock_at: float = 0.0  # the emulator's clock (a test's own), Unix seconds

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

    def as_photo_size(self, width: int | None = None, height: int | None = None) -> dict[str, Any]:
        """A PhotoSize; the size is read from a PNG header when not given."""
        png_w, png_h = _png_size(self.content)
        return {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": self.file_size,
            "width": width or png_w or 800,
            "height": height or png_h or 600,
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


class State:
    """Telegram's memory. ``changed`` is notified whenever a call, update or reply lands, so
    ``wait_for`` waits on news instead of sleeping."""

    def __init__(self, bot_user: dict[str, Any], clock: Clock) -> None:
        self.bot_user = bot_user
        self.clock = clock  # message dates; a test's FrozenClock gives its own dates
        self.changed = asyncio.Condition()
        self.chats: dict[int, dict[str, Any]] = {}
        self.blocked: set[int] = set()
        self.migrated: dict[int, int] = {}  # group → the supergroup it became
        self.messages: dict[int, dict[int, dict[str, Any]]] = defaultdict(dict)
        self.outputs: dict[int, list[Reply]] = defaultdict(list)
        self.files: dict[str, StoredFile] = {}
        self.paths: dict[str, StoredFile] = {}  # file_path → file, for the download route
        self.commands: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.callback_answers: dict[str, dict[str, Any] | None] = {}  # None: not answered yet
        self._file_ids = itertools.count(1)
        self._callback_ids = itertools.count(1)
        self._message_ids: dict[int, itertools.count[int]] = defaultdict(lambda: itertools.count(1))

    async def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``predicate()`` holds after some news; False on timeout."""
        try:
            async with asyncio.timeout(timeout), self.changed:
                await self.changed.wait_for(predicate)
        except TimeoutError:
            return False
        return True

    def now(self) -> int:
        """A Bot API date: Unix seconds from the emulator's clock."""
        return int(self.clock.now().timestamp())

    # ---- chats and messages ------------------------------------------------------------------

    def register_chat(self, chat: dict[str, Any]) -> None:
        self.chats[chat["id"]] = chat

    def chat(self, p: dict[str, Any]) -> dict[str, Any]:
        """The chat a call's ``chat_id`` names, refused as Telegram refuses it."""
        if "chat_id" not in p:
            raise ApiError(400, "Bad Request: chat_id is empty")
        chat_id = p["chat_id"]
        chat = self.chats.get(chat_id) if isinstance(chat_id, int) else None
        if chat is None:
            raise ApiError(400, "Bad Request: chat not found")
        if chat_id in self.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        if chat_id in self.migrated:
            raise ApiError(
                400,
                "Bad Request: group chat was upgraded to a supergroup chat",
                {"migrate_to_chat_id": self.migrated[chat_id]},
            )
        return chat

    def new_message(
        self, chat: dict[str, Any], sender: dict[str, Any], **content: Any
    ) -> dict[str, Any]:
        message_id = next(self._message_ids[chat["id"]])
        message = {
            "message_id": message_id,
            "from": sender,
            "chat": chat,
            "date": self.now(),
            **{k: v for k, v in content.items() if v is not None},
        }
        self.messages[chat["id"]][message_id] = message
        return message

    def find_message(self, chat_id: Any, message_id: Any) -> dict[str, Any] | None:
        """A message by the ids a call names; None when unknown or deleted."""
        messages = self.messages.get(chat_id)
        if messages is None or not isinstance(message_id, int):
            return None
        return messages.get(message_id)

    def record_output(
        self,
        method: str,
        message: dict[str, Any],
        raw: str | None,
        p: dict[str, Any],
        file: StoredFile | None = None,
    ) -> None:
        """Note what the person now sees; the markup as sent (a reply keyboard included)."""
        text = message.get("text", message.get("caption", ""))
        markup = p.get("reply_markup") if "reply_markup" in p else message.get("reply_markup")
        self.outputs[message["chat"]["id"]].append(
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

    def open_callback(self, user_id: int) -> str:
        """A new callback query id the bot must answer."""
        query_id = f"{user_id}-{next(self._callback_ids)}"
        self.callback_answers[query_id] = None
        return query_id

    # ---- files -------------------------------------------------------------------------------

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
        self.paths[stored.file_path] = stored
        return stored


def _png_size(content: bytes) -> tuple[int, int]:
    if content[:8] == b"\x89PNG\r\n\x1a\n" and len(content) >= 24:
        width, height = struct.unpack(">II", content[16:24])
        return width, height
    return 0, 0
