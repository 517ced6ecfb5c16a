"""The typed outbound messages, and their one encoding to (channel, recipient, stored payload).

Every message leaves through the outbox as one of these: `enqueue` (bot.outbox.messages) encodes
it into a row, the worker decodes the row back before handing it to its channel's sender. The
stored payload keeps the keys rows have always had, so rows queued before this module decode.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, ClassVar

from bot.domain.vocabulary import Channel

ROBOT_CHANNELS = (Channel.WECOM, Channel.DINGTALK, Channel.FEISHU)
UNROUTED = "staff"  # the recipient of a staff message no staff channel took yet


class BadPayload(ValueError):
    """A stored payload that is not a message of its channel: sending it can never succeed."""


@dataclass(frozen=True)
class Action:
    """A button: its label, and the callback data the bot's handlers read back."""

    label: str
    data: str


Actions = tuple[tuple[Action, ...], ...]


def actions(rows: Iterable[Iterable[Mapping[str, str] | Action]] | None) -> Actions:
    """Rows of buttons as given by the texts' builders ({"text", "callback_data"}) → actions."""
    return tuple(
        tuple(b if isinstance(b, Action) else Action(b["text"], b["callback_data"]) for b in row)
        for row in rows or ()
    )


def _rows(found: Actions) -> list[list[dict[str, str]]]:
    return [[{"text": a.label, "callback_data": a.data} for a in row] for row in found]


@dataclass(frozen=True)
class TelegramText:
    """A Telegram message: HTML (or plain text when `html` is False), with inline buttons."""

    chat_id: str
    text: str
    actions: Actions = ()
    html: bool = True
    channel: ClassVar[Channel] = Channel.TELEGRAM

    @property
    def recipient(self) -> str:
        return self.chat_id


@dataclass(frozen=True)
class TelegramDocument:
    """A file sent to a Telegram chat (sendDocument): the stored file by its reference under
    DATA_DIR (storage.files: files/ab/cd/<sha256>), never its bytes in the payload, with an
    HTML caption and inline buttons under it."""

    chat_id: str
    file: str  # relative to DATA_DIR, as storage.files stores it
    file_name: str
    caption: str = ""  # HTML, at most 1,024 characters as Telegram counts them
    actions: Actions = ()
    sha256: str | None = None  # checked when read back: the bytes are the ones reviewed
    content_type: str | None = None
    root: str | None = field(default=None, compare=False)  # DATA_DIR, set by the worker
    channel: ClassVar[Channel] = Channel.TELEGRAM

    @property
    def recipient(self) -> str:
        return self.chat_id

    @property
    def text(self) -> str:
        """What it says (its caption), for a copy of it on another channel."""
        return self.caption


@dataclass(frozen=True)
class Letter:
    """An e-mail: plain text (and its HTML alternative), threaded by `in_reply_to`/`references`."""

    to: str
    subject: str
    text: str
    html: str | None = None
    locale: str = "zh_CN"
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    auto_reply: bool = False
    case_ref: str | None = None
    message_id: str | None = None  # pre-assigned: a reply or a bounce finds the case at once
    channel: ClassVar[Channel] = Channel.EMAIL

    @property
    def recipient(self) -> str:
        return self.to


@dataclass(frozen=True)
class RobotAlert:
    """A staff alert to a group robot (WeCom, DingTalk, Feishu): plain text, a link to act."""

    robot: Channel
    title: str
    text: str
    link: str | None = None
    act_hint: str | None = None

    @property
    def channel(self) -> Channel:
        return self.robot

    @property
    def recipient(self) -> str:
        return self.robot.value  # the robot's own lane in the outbox


@dataclass(frozen=True)
class StaffNotice:
    """A staff message waiting for a staff channel to be configured: kept, never lost."""

    text: str  # Telegram HTML
    actions: Actions = field(default=())
    channel: ClassVar[Channel] = Channel.STAFF
    recipient: ClassVar[str] = UNROUTED


Outbound = TelegramText | TelegramDocument | Letter | RobotAlert | StaffNotice


def encode(message: Outbound) -> tuple[Channel, str, dict[str, Any]]:
    """The row's channel, recipient and JSON payload."""
    payload: dict[str, Any]
    if isinstance(message, TelegramDocument):
        payload = {
            "document": message.file,
            "file_name": message.file_name,
            "caption": message.caption,
            "sha256": message.sha256,
            "content_type": message.content_type,
        }
        if message.actions:
            payload["reply_markup"] = _rows(message.actions)
    elif isinstance(message, TelegramText | StaffNotice):
        payload = {"text": message.text}
        if message.actions:
            payload["reply_markup"] = _rows(message.actions)
        if isinstance(message, TelegramText) and not message.html:
            payload["parse_mode"] = None
    elif isinstance(message, Letter):
        payload = {
            "subject": message.subject,
            "text": message.text,
            "html": message.html,
            "locale": message.locale,
            "in_reply_to": message.in_reply_to,
            "references": list(message.references),
            "auto_reply": message.auto_reply,
            "case_ref": message.case_ref,
            "message_id": message.message_id,
        }
    else:
        payload = {
            "title": message.title,
            "text": message.text,
            "link": message.link,
            "act_hint": message.act_hint,
        }
    return message.channel, message.recipient, payload


def _str(payload: Mapping[str, Any], key: str, *, required: bool = False) -> str | None:
    value = payload.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise BadPayload(f"{key!r} must be a string, not {type(value).__name__}")
    return value


def _ids(value: Any) -> tuple[str, ...]:
    if not value:
        return ()
    if isinstance(value, str):
        return tuple(value.split())
    if isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise BadPayload("'references' must be a list of strings")


def _actions(payload: Mapping[str, Any]) -> Actions:
    try:
        return actions(payload.get("reply_markup"))
    except (KeyError, TypeError) as exc:
        raise BadPayload(f"bad 'reply_markup': {exc!r}") from None


def _document(recipient: str, payload: Mapping[str, Any]) -> TelegramDocument:
    file = _str(payload, "document", required=True) or ""
    parts = PurePosixPath(file).parts
    # Only a path storage.files made: under files/, never absolute, never climbing out.
    if not parts or parts[0] != "files" or ".." in parts or file.startswith("/") or "\\" in file:
        raise BadPayload(f"'document' must be a stored file under files/, not {file!r}")
    name = _str(payload, "file_name", required=True) or ""
    if not name.strip():
        raise BadPayload("needs a non-empty 'file_name'")
    return TelegramDocument(
        chat_id=recipient,
        file=file,
        file_name=name,
        caption=_str(payload, "caption") or "",
        actions=_actions(payload),
        sha256=_str(payload, "sha256"),
        content_type=_str(payload, "content_type"),
    )


def decode(channel: str, recipient: str, payload: Mapping[str, Any]) -> Outbound:
    """A stored row back into its message; `BadPayload` when it is not one."""
    try:
        kind = Channel(channel)
    except ValueError:
        raise BadPayload(f"unknown channel {channel!r}") from None
    if kind is Channel.TELEGRAM and "document" in payload:
        return _document(recipient, payload)
    if kind is Channel.TELEGRAM:
        text = _str(payload, "text", required=True) or ""
        html = payload.get("parse_mode", "HTML") is not None
        return TelegramText(recipient, text, _actions(payload), html)
    if kind is Channel.STAFF:
        return StaffNotice(_str(payload, "text", required=True) or "", _actions(payload))
    if kind is Channel.EMAIL:
        return Letter(
            to=recipient,
            subject=str(payload.get("subject") or ""),
            text=str(payload.get("text") or ""),
            html=_str(payload, "html"),
            locale=_str(payload, "locale") or "zh_CN",
            in_reply_to=_str(payload, "in_reply_to"),
            references=_ids(payload.get("references")),
            auto_reply=bool(payload.get("auto_reply")),
            case_ref=_str(payload, "case_ref"),
            message_id=_str(payload, "message_id"),
        )
    title = _str(payload, "title", required=True) or ""
    link = _str(payload, "link") or None
    if not title.strip():
        raise BadPayload("needs a non-empty 'title'")
    if link and urllib.parse.urlsplit(link).scheme.lower() not in ("http", "https"):
        raise BadPayload("'link' must be an http(s) URL")
    return RobotAlert(
        kind, title, _str(payload, "text", required=True) or "", link, _str(payload, "act_hint")
    )


__all__ = [
    "ROBOT_CHANNELS",
    "UNROUTED",
    "Action",
    "Actions",
    "BadPayload",
    "Letter",
    "Outbound",
    "RobotAlert",
    "StaffNotice",
    "TelegramDocument",
    "TelegramText",
    "actions",
    "decode",
    "encode",
]
