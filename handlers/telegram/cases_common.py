"""What the public case flows share (cases_filing, cases_mine): replies, typed input, uploads.

Thin: every decision is bot.services.cases'; every text is messages/catalogs/cases.toml.
"""

from __future__ import annotations

from typing import Any

from telegram import InlineKeyboardMarkup, Update
from telegram.ext import filters

from bot.services import cases
from bot.services.cases import Attachment, CaseRefused
from handlers.telegram import common
from handlers.telegram.common import Context, desk_of, keyboard, locale_of, send, uow_of
from messages.render import t

# A description or added information: kept whole up to a few Telegram messages' worth (one
# message holds 4,096 characters; a client sends a longer text as several). Longer is cut, and
# the person told: nothing is truncated silently.
TEXT_LIMIT = 16_000


def typed() -> filters.BaseFilter:
    """Text typed as an answer: a new message only. An edit of an earlier message is not an
    answer to the question asked since (it would be taken twice, or out of turn)."""
    return filters.UpdateType.MESSAGE & common.text_input()


def uploaded() -> filters.BaseFilter:
    """A file or photo sent as a new message."""
    return filters.UpdateType.MESSAGE & (filters.Document.ALL | filters.PHOTO)


async def say(
    update: Update,
    context: Context,
    key: str,
    markup: InlineKeyboardMarkup | None = None,
    **a: object,
) -> None:
    """Answer a pressed button, if any, and reply with a catalog text (arguments escaped)."""
    await common.answer_query(update)
    await common.reply(update, context, key, markup=markup, **a)


async def say_refused(update: Update, context: Context, refused: CaseRefused) -> None:
    await common.answer_query(update)
    await send(update, context, cases.refused_html(refused, locale_of(context)))


def text_of(update: Update) -> str:
    message = update.effective_message
    return (message.text or message.caption or "").strip() if message else ""


async def kept_text(update: Update, context: Context, text: str, limit: int = TEXT_LIMIT) -> str:
    """`text` whole when it fits `limit`; else its first `limit` characters, the person told."""
    if len(text) <= limit:
        return text
    await say(update, context, "cases.text_cut", max=f"{limit:,}")
    return text[:limit]


def skip_markup(loc: str) -> InlineKeyboardMarkup:
    return keyboard([[(t("cases.btn_skip", loc), "case:skip")]])


def pressed(update: Update) -> str:
    """The callback data of the button pressed."""
    query = update.callback_query
    assert query is not None and query.data is not None
    return query.data


def user_id(update: Update) -> int:
    assert update.effective_user is not None
    return update.effective_user.id


async def keep_upload(update: Update, context: Context) -> Attachment | None:
    """Download, check and store one uploaded file; say why when it is refused."""
    message = update.effective_message
    assert message is not None
    desk = desk_of(context)
    if message.document is not None:
        tg_file: Any = message.document
        name, size = message.document.file_name, message.document.file_size
    elif message.photo:
        tg_file, name, size = message.photo[-1], "photo.jpg", message.photo[-1].file_size
    else:
        return None
    try:
        # Refused before downloading when the size Telegram reports is enough to tell.
        cases.check_upload_size(desk, size)
        data = bytes(await (await tg_file.get_file()).download_as_bytearray())
        return await cases.keep_attachment(desk, uow_of(context), data, name)
    except CaseRefused as refused:
        await send(update, context, cases.refused_html(refused, locale_of(context)))
        return None


__all__ = [
    "TEXT_LIMIT",
    "keep_upload",
    "kept_text",
    "pressed",
    "say",
    "say_refused",
    "skip_markup",
    "text_of",
    "typed",
    "uploaded",
    "user_id",
]
