"""Replies in the update's chat: HTML from the catalog, split over Telegram's 4,096 characters,
buttons as (text, callback data) rows; the main menu."""

from __future__ import annotations

from collections.abc import Sequence

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.constants import MessageLimit

from handlers.telegram.context import MENU_ITEMS, Context, commit_before_reply, locale_of
from messages.render import th

# --- replies ---------------------------------------------------------------------------------


def split_text(text: str, limit: int = MessageLimit.MAX_TEXT_LENGTH) -> list[str]:
    """Pieces of at most `limit` UTF-16 units, cut at line ends where possible; a long line is
    cut before an HTML entity or tag, never inside one."""

    def size(s: str) -> int:
        return len(s.encode("utf-16-le")) // 2

    pieces: list[str] = []
    current = ""
    for line in text.split("\n"):
        candidate = f"{current}\n{line}" if current else line
        if size(candidate) <= limit:
            current = candidate
            continue
        if current:
            pieces.append(current)
        while size(line) > limit:
            cut = limit
            while size(line[:cut]) > limit:
                cut -= 1
            # Do not cut inside "&amp;" or "<b>": back up to the start of an open one.
            head = line[:cut]
            for opener, closer in (("&", ";"), ("<", ">")):
                at = head.rfind(opener)
                if at > 0 and closer not in head[at:]:
                    cut = at
                    head = line[:cut]
            pieces.append(head)
            line = line[cut:]
        current = line
    if current or not pieces:
        pieces.append(current)
    return pieces


async def send(
    update: Update,
    context: Context,
    text: str,
    markup: InlineKeyboardMarkup | None = None,
) -> Message:
    """Send HTML text to the update's chat, split over 4,096 characters; buttons on the last."""
    chat = update.effective_chat
    assert chat is not None
    await commit_before_reply()
    pieces = split_text(text)
    message: Message | None = None
    for i, piece in enumerate(pieces):
        last = i == len(pieces) - 1
        message = await context.bot.send_message(
            chat.id, piece, reply_markup=markup if last else None
        )
    assert message is not None
    return message


async def reply(
    update: Update,
    context: Context,
    key: str,
    *,
    markup: InlineKeyboardMarkup | None = None,
    **args: object,
) -> Message:
    """Send a catalog text in the contact's language (arguments escaped)."""
    return await send(update, context, th(key, locale_of(context), **args), markup)


def button(text: str, data: str) -> InlineKeyboardButton:
    return InlineKeyboardButton(text, callback_data=data)


def keyboard(rows: Sequence[Sequence[tuple[str, str]]]) -> InlineKeyboardMarkup:
    """Rows of (text, callback_data)."""
    return InlineKeyboardMarkup([[button(t, d) for t, d in row] for row in rows])


def main_menu(locale: str) -> InlineKeyboardMarkup:
    items = [(th(key, locale), data) for data, key in MENU_ITEMS]
    return keyboard([items[i : i + 2] for i in range(0, len(items), 2)])


def language_keyboard() -> InlineKeyboardMarkup:
    return keyboard(
        [[(th("menu.btn_zh", "zh_CN"), "lang:zh_CN"), (th("menu.btn_en", "en"), "lang:en")]]
    )


async def answer_query(update: Update) -> None:
    """Acknowledge a button press (Telegram shows a spinner until then)."""
    if update.callback_query is not None:
        await update.callback_query.answer()


async def show_menu(update: Update, context: Context) -> None:
    locale = locale_of(context)
    await send(update, context, th("menu.main", locale), main_menu(locale))
