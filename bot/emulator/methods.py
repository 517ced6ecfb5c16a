"""The Bot API methods certdesk uses, over the emulator's ``State``: messages and their edits,
callback answers, chat actions, commands and files. Updates and webhooks are ``UpdateQueue``'s."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from bot.emulator.checks import (
    NOT_MODIFIED,
    check_chat_action,
    check_commands,
    check_markup,
    format_text,
    inline_only,
)
from bot.emulator.faults import ApiError
from bot.emulator.state import State, StoredFile
from bot.emulator.updates import UpdateQueue

MAX_DOWNLOAD = 20 * 1024 * 1024  # getFile refuses bigger files

# A method gets the call's parameters and its uploaded files (name, content, mime type).
Params = dict[str, Any]
Uploads = dict[str, tuple[str | None, bytes, str | None]]
Method = Callable[[Params, Uploads], Any]


class BotApi:
    """Telegram's side of each method; ``table()`` maps lower-cased names to them."""

    def __init__(self, state: State, queue: UpdateQueue) -> None:
        self.state = state
        self.queue = queue

    def table(self) -> dict[str, Method]:
        methods: dict[str, Method] = {
            "getMe": lambda p, f: self.state.bot_user,
            "getUpdates": self.queue.get_updates,
            "setWebhook": self.queue.set_webhook,
            "deleteWebhook": self.queue.delete_webhook,
            "getWebhookInfo": self.queue.get_webhook_info,
            "setMyCommands": self.set_my_commands,
            "getMyCommands": self.get_my_commands,
            "deleteMyCommands": self.delete_my_commands,
            "getChat": lambda p, f: self.state.chat(p),
            "sendMessage": self.send_message,
            "editMessageText": self.edit_message_text,
            "editMessageReplyMarkup": self.edit_message_reply_markup,
            "editMessageCaption": self.edit_message_caption,
            "deleteMessage": self.delete_message,
            "answerCallbackQuery": self.answer_callback_query,
            "sendChatAction": self.send_chat_action,
            "sendDocument": lambda p, f: self.send_file(p, f, "document"),
            "sendPhoto": lambda p, f: self.send_file(p, f, "photo"),
            "getFile": self.get_file,
        }
        return {name.lower(): fn for name, fn in methods.items()}

    # ---- commands ------------------------------------------------------------------------------

    def set_my_commands(self, p: Params, files: Uploads) -> bool:
        commands = p.get("commands") or []
        if len(commands) > 100:
            raise ApiError(400, "Bad Request: BOT_COMMANDS_TOO_MUCH")
        check_commands(commands)
        self.state.commands[_commands_key(p)] = commands
        return True

    def get_my_commands(self, p: Params, files: Uploads) -> list[dict[str, Any]]:
        return self.state.commands.get(_commands_key(p), [])

    def delete_my_commands(self, p: Params, files: Uploads) -> bool:
        self.state.commands.pop(_commands_key(p), None)
        return True

    # ---- messages ------------------------------------------------------------------------------

    def send_message(self, p: Params, files: Uploads) -> dict[str, Any]:
        chat = self.state.chat(p)
        text, entities = format_text(p.get("text"), p.get("parse_mode"), p.get("entities"))
        markup = check_markup(p.get("reply_markup"))
        message = self.state.new_message(
            chat,
            self.state.bot_user,
            text=text,
            entities=entities,
            reply_to_message=self._reply_to(p, chat["id"]),
            reply_markup=inline_only(markup),
        )
        self.state.record_output("sendMessage", message, p.get("text"), p)
        return message

    def edit_message_text(self, p: Params, files: Uploads) -> dict[str, Any]:
        old = self._bot_message(p, "edit")
        if "text" not in old:
            raise ApiError(400, "Bad Request: there is no text in the message to edit")
        text, entities = format_text(p.get("text"), p.get("parse_mode"), p.get("entities"))
        markup = inline_only(check_markup(p.get("reply_markup")))
        return self._replace(
            old, "editMessageText", p, text=text, entities=entities, reply_markup=markup
        )

    def edit_message_caption(self, p: Params, files: Uploads) -> dict[str, Any]:
        old = self._bot_message(p, "edit")
        if "text" in old:
            raise ApiError(400, "Bad Request: there is no caption in the message to edit")
        caption, entities = format_text(
            p.get("caption"), p.get("parse_mode"), p.get("caption_entities"), caption=True
        )
        markup = inline_only(check_markup(p.get("reply_markup")))
        return self._replace(
            old,
            "editMessageCaption",
            p,
            caption=caption or None,
            caption_entities=entities,
            reply_markup=markup,
        )

    def edit_message_reply_markup(self, p: Params, files: Uploads) -> dict[str, Any]:
        old = self._bot_message(p, "edit")
        markup = inline_only(check_markup(p.get("reply_markup")))
        return self._replace(old, "editMessageReplyMarkup", p, reply_markup=markup)

    def delete_message(self, p: Params, files: Uploads) -> bool:
        message = self._bot_message(p, "delete")
        del self.state.messages[message["chat"]["id"]][message["message_id"]]
        return True

    def answer_callback_query(self, p: Params, files: Uploads) -> bool:
        query_id = p.get("callback_query_id")
        answers = self.state.callback_answers
        if query_id not in answers or answers[query_id] is not None:
            raise ApiError(
                400,
                "Bad Request: query is too old and response timeout expired or query ID is invalid",
            )
        answers[query_id] = p
        return True

    def send_chat_action(self, p: Params, files: Uploads) -> bool:
        self.state.chat(p)
        check_chat_action(p.get("action"))
        return True

    def _bot_message(self, p: Params, verb: str) -> dict[str, Any]:
        """The message an edit or delete names; only the bot's own may be edited."""
        if "inline_message_id" in p:
            raise ApiError(400, "Bad Request: inline messages are not emulated")
        chat = self.state.chat(p)
        message = self.state.find_message(chat["id"], p.get("message_id"))
        if message is None:
            raise ApiError(400, f"Bad Request: message to {verb} not found")
        if verb == "edit" and message["from"]["id"] != self.state.bot_user["id"]:
            raise ApiError(400, "Bad Request: message can't be edited")
        return message

    def _replace(self, old: dict, method: str, p: Params, **changes: Any) -> dict[str, Any]:
        new = {k: v for k, v in {**old, **changes}.items() if v is not None}
        if all(old.get(k) == new.get(k) for k in ("text", "caption", "entities", "reply_markup")):
            raise ApiError(400, NOT_MODIFIED)
        new["edit_date"] = self.state.now()
        self.state.messages[new["chat"]["id"]][new["message_id"]] = new
        self.state.record_output(method, new, p.get("text", p.get("caption")), p)
        return new

    def _reply_to(self, p: Params, chat_id: int) -> dict[str, Any] | None:
        ref = p.get("reply_parameters") or {}
        if "reply_to_message_id" in p:
            ref = {"message_id": p["reply_to_message_id"], **ref}
        if not ref:
            return None
        target = self.state.find_message(ref.get("chat_id", chat_id), ref.get("message_id"))
        if target is None:
            if ref.get("allow_sending_without_reply") or p.get("allow_sending_without_reply"):
                return None
            raise ApiError(400, "Bad Request: message to be replied not found")
        return {k: v for k, v in target.items() if k != "reply_to_message"}

    # ---- files ---------------------------------------------------------------------------------

    def send_file(self, p: Params, files: Uploads, kind: str) -> dict[str, Any]:
        chat = self.state.chat(p)
        caption, entities = format_text(
            p.get("caption"), p.get("parse_mode"), p.get("caption_entities"), caption=True
        )
        markup = check_markup(p.get("reply_markup"))
        stored = self._input_file(p, files, kind)
        media: Any = stored.as_document() if kind == "document" else [stored.as_photo_size()]
        message = self.state.new_message(
            chat,
            self.state.bot_user,
            caption=caption or None,
            caption_entities=entities,
            reply_to_message=self._reply_to(p, chat["id"]),
            reply_markup=inline_only(markup),
            **{kind: media},
        )
        self.state.record_output("send" + kind.capitalize(), message, p.get("caption"), p, stored)
        return message

    def get_file(self, p: Params, files: Uploads) -> dict[str, Any]:
        stored = self.state.files.get(str(p.get("file_id")))
        if stored is None:
            raise ApiError(400, "Bad Request: invalid file_id")
        if stored.file_size > MAX_DOWNLOAD:
            raise ApiError(400, "Bad Request: file is too big")
        return stored.as_file()

    def _input_file(self, p: Params, files: Uploads, kind: str) -> StoredFile:
        """An upload in the request, or a file_id Telegram already holds."""
        if kind in files:
            name, content, mime = files[kind]
            folder = "photos" if kind == "photo" else "documents"
            return self.state.store_file(content, file_name=name, mime_type=mime, folder=folder)
        ref = p.get(kind)
        if not ref:
            raise ApiError(400, f"Bad Request: there is no {kind} in the request")
        stored = self.state.files.get(str(ref))
        if stored is None:
            raise ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
        return stored


# BotCommandScope types, with the fields each needs (core.telegram.org/bots/api#botcommandscope).
_SCOPES: dict[str, tuple[str, ...]] = {
    "default": (),
    "all_private_chats": (),
    "all_group_chats": (),
    "all_chat_administrators": (),
    "chat": ("chat_id",),
    "chat_administrators": ("chat_id",),
    "chat_member": ("chat_id", "user_id"),
}


def _commands_key(p: Params) -> tuple[str, str]:
    """Telegram keeps one command list per (scope, language); a scope it does not know, or one
    without the chat it names, is refused as Telegram refuses it."""
    scope = p.get("scope") or {"type": "default"}
    if isinstance(scope, str):
        scope = json.loads(scope)
    needs = _SCOPES.get(scope.get("type", "")) if isinstance(scope, dict) else None
    if needs is None:
        raise ApiError(400, "Bad Request: wrong parameter scope")
    if any(scope.get(k) in (None, "") for k in needs):
        raise ApiError(400, "Bad Request: chat not found")
    return json.dumps(scope, sort_keys=True), p.get("language_code") or ""
