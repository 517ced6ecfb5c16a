"""The people on the other side: a ``FakeUser`` sends, presses, uploads and reads the bot's
replies, the way a Telegram client would."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.emulator.html import utf16_len
from bot.emulator.state import Reply

if TYPE_CHECKING:
    from bot.emulator.server import Emulator


class NoReplyError(AssertionError):
    """The bot did not answer in time; the message shows what it did do."""


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
        emulator.state.register_chat(self.chat)
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
        content = _text_content(text)
        if reply_to is not None:
            content["reply_to_message"] = self.emulator.message(self.chat_id, reply_to)
        return await self._message(**content)

    async def edit(self, message: dict[str, Any] | int, text: str) -> dict[str, Any]:
        """Edit a text message this user sent earlier (its id, or the update or message dict
        `send` returned): Telegram sends an ``edited_message`` update with the new text, the
        original id and date, and an ``edit_date``."""
        if isinstance(message, dict):
            message = message.get("message", message)["message_id"]
        assert isinstance(message, int)
        old = self.emulator.message(self.chat_id, message)
        if old is None or old["from"]["id"] != self.id or "text" not in old:
            raise LookupError(f"no text message {message} of user {self.id} to edit")
        edited = {k: v for k, v in old.items() if k not in ("text", "entities", "edit_date")}
        edited |= _text_content(text) | {"edit_date": self.emulator.state.now()}
        self.emulator.state.messages[self.chat_id][message] = edited
        return await self.emulator.queue_update("edited_message", edited)

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
        return await self._message(photo=[stored.as_photo_size(width, height)], caption=caption)

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
        outputs = self.emulator.state.outputs[self.chat_id]
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
        messages = self.emulator.state.messages[self.chat_id]
        if message_id is not None:
            return messages.get(message_id)
        for message in reversed(messages.values()):
            if (message.get("reply_markup") or {}).get("inline_keyboard"):
                return message
        return None

    async def _message(self, **content: Any) -> dict[str, Any]:
        message = self.emulator.state.new_message(self.chat, self.user, **content)
        return await self.emulator.queue_update("message", message)

    async def _callback(self, message: dict, button: dict) -> dict[str, Any]:
        if "callback_data" not in button:
            raise LookupError(f"button {button['text']!r} is not a callback button: {button}")
        query = {
            "id": self.emulator.state.open_callback(self.id),
            "from": self.user,
            "message": message,
            "chat_instance": str(self.chat_id),
            "data": button["callback_data"],
        }
        return await self.emulator.queue_update("callback_query", query)


def _text_content(text: str) -> dict[str, Any]:
    """A text and, for a leading /command, its bot_command entity, as Telegram adds it."""
    content: dict[str, Any] = {"text": text}
    if text.startswith("/"):
        command = text.split(maxsplit=1)[0]
        content["entities"] = [{"type": "bot_command", "offset": 0, "length": utf16_len(command)}]
    return content
