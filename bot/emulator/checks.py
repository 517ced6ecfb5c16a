"""Telegram's checks on what the bot sends: texts and captions (HTML parse mode), keyboards,
commands and chat actions. Each refusal is the ``ApiError`` Telegram answers."""

from __future__ import annotations

import re
from typing import Any

from bot.emulator.faults import ApiError
from bot.emulator.html import EntityError, parse_html, utf16_len

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_DATA = 64  # bytes
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
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
_BUTTON_URL = re.compile(r"^(https?|tg)://\S+$")


def format_text(
    text: Any, parse_mode: str | None, entities: Any, *, caption: bool = False
) -> tuple[str, list[dict[str, Any]] | None]:
    """A text or caption as Telegram checks it; returns (plain text, entities)."""
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


def check_markup(markup: Any) -> dict[str, Any] | None:
    """A reply_markup as sent, after checking every inline button."""
    if markup is None:
        return None
    if not isinstance(markup, dict):
        raise ApiError(400, "Bad Request: can't parse reply keyboard markup JSON object")
    for row in markup.get("inline_keyboard", []):
        for button in row:
            _check_button(button)
    return markup


def inline_only(markup: dict[str, Any] | None) -> dict[str, Any] | None:
    """A sent Message echoes only an inline keyboard, never a reply keyboard."""
    if markup and markup.get("inline_keyboard"):
        return {"inline_keyboard": markup["inline_keyboard"]}
    return None


def check_commands(commands: list[dict[str, Any]]) -> None:
    for c in commands:
        if (
            not _COMMAND.match(c.get("command", ""))
            or not 1 <= len(c.get("description", "")) <= 256
        ):
            raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")


def check_chat_action(action: Any) -> None:
    if action not in _CHAT_ACTIONS:
        raise ApiError(400, "Bad Request: wrong parameter action in request")


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
    if url is not None and not _BUTTON_URL.match(str(url)):
        raise ApiError(400, "Bad Request: BUTTON_URL_INVALID")
