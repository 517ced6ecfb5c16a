"""Telegram's command menus, set per scope at start-up, and /help in the staff chat.

- Private chats (and the default scope): every public command, /link and /change among them.
- The staff chat (`BotCommandScopeChat`, STAFF_CHAT_ID): the staff commands.
Each list in Chinese (also the list for clients in any other language) and in English.
Texts: messages/catalogs/menu.toml (`cmd_*`) and staff.toml (`cmd_*`, `help`).
"""

from __future__ import annotations

from telegram import (
    BotCommand,
    BotCommandScope,
    BotCommandScopeAllPrivateChats,
    BotCommandScopeChat,
    BotCommandScopeDefault,
    Update,
)
from telegram.ext import Application, CommandHandler, filters

from bot.desk import Desk
from handlers.telegram.context import COMMANDS, Context, Group, desk_of
from handlers.telegram.flows import stay
from handlers.telegram.replies import send
from handlers.telegram.staff_gate import StaffOnly
from messages.render import th

# The public menu: the context's commands, with /link (a contact joins their organisation with
# the code staff gave it) beside /change.
PUBLIC_COMMANDS: tuple[tuple[str, str], ...] = tuple(
    item
    for name, key in COMMANDS
    for item in ([(name, key), ("link", "menu.cmd_link")] if name == "change" else [(name, key)])
)

STAFF_COMMANDS: tuple[tuple[str, str], ...] = (
    ("cases", "staff.cmd_cases"),
    ("case", "staff.cmd_case"),
    ("assign", "staff.cmd_assign"),
    ("milestone", "staff.cmd_milestone"),
    ("reply", "staff.cmd_reply"),
    ("help", "staff.cmd_help"),
)
# (catalog locale, Telegram language_code): None is every language without a list of its own.
LANGUAGES: tuple[tuple[str, str | None], ...] = (("zh_CN", "zh"), ("en", "en"), ("zh_CN", None))


def _commands(items: tuple[tuple[str, str], ...], locale: str) -> list[BotCommand]:
    return [BotCommand(name, th(key, locale)) for name, key in items]


def scopes(desk: Desk) -> list[tuple[BotCommandScope, tuple[tuple[str, str], ...]]]:
    """Each scope with its list; the staff chat's only when STAFF_CHAT_ID is set."""
    found: list[tuple[BotCommandScope, tuple[tuple[str, str], ...]]] = [
        (BotCommandScopeDefault(), PUBLIC_COMMANDS),
        (BotCommandScopeAllPrivateChats(), PUBLIC_COMMANDS),
    ]
    chat = desk.settings.staff_chat_id
    if chat is not None:
        found.append((BotCommandScopeChat(chat), STAFF_COMMANDS))
    return found


async def set_commands(app: Application, desk: Desk) -> None:
    """At start-up (post_init): every scope's list in every language."""
    for scope, items in scopes(desk):
        for locale, language_code in LANGUAGES:
            await app.bot.set_my_commands(
                _commands(items, locale), scope=scope, language_code=language_code
            )


async def staff_help(update: Update, context: Context) -> None:
    """/help in the staff chat: what each staff command does (staff texts: DEFAULT_LOCALE)."""
    await send(update, context, th("staff.help", desk_of(context).settings.default_locale))


def register(app: Application, desk: Desk) -> None:
    """/help from staff in the staff chat explains the staff commands; anyone else's /help (and
    staff's in a private chat) is the public help (handlers.telegram.common)."""
    chat = desk.settings.staff_chat_id
    if chat is None:
        return
    where = StaffOnly(desk) & filters.Chat(chat) & filters.UpdateType.MESSAGE
    app.add_handler(CommandHandler("help", stay(staff_help), filters=where), group=Group.STAFF)


__all__ = ["PUBLIC_COMMANDS", "STAFF_COMMANDS", "register", "scopes", "set_commands", "staff_help"]
