"""What every Telegram flow shares: the desk, the contact and its language, the guard that runs
before any handler (redelivered updates, group chats, floods), the main menu, /start /help /menu
/cancel /language, replies from the catalog, staff checks.

Handler groups (`Group`, context.py; an update visits every group in order until a handler
stops it):
- GUARD: idempotency, refusal of group chats, flood protection, contact lookup, edited messages
  (never answers: dropped here, the person told);
- FLOW_EXIT: an update that starts something else (a command some handler takes, another flow's
  button, a main-menu button) ends every waiting flow of the chat first;
- STAFF: staff buttons and commands, behind the one staff gate (staff_gate.py);
- one group per flow (STAFF_REPLY … CHANGES), and the groups of /status and /mycases;
- GLOBAL: /start, /menu, /help, /cancel, /language and the catch-all.
Flow callbacks stop propagation (`stay`), so the catch-all only answers what no flow took.
"""

from __future__ import annotations

from typing import Any

from telegram import Update
from telegram.constants import ChatType
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    MessageHandler,
    TypeHandler,
    filters,
)

from bot.desk import Desk
from bot.services import contacts
from handlers.telegram.context import (
    _CONTACT,
    COMMANDS,
    LANG_PREFIX,
    MENU_APPLICATION,
    MENU_CASES,
    MENU_CERTIFICATE,
    MENU_CHANGES,
    MENU_DOCUMENTS,
    MENU_ELIGIBILITY,
    MENU_HELP,
    MENU_ITEMS,
    MENU_MAIN,
    MENU_QUOTE,
    CachedContact,
    Callback,
    Context,
    F,
    Group,
    cached_contact,
    commit_before_reply,
    contact_of,
    desk_of,
    locale_of,
    remember_contact,
    uow_of,
)
from handlers.telegram.flows import (
    FLOOD_GATE,
    conversation,
    desk_of_app,
    exit_fallbacks,
    leave_waiting_flows,
    not_a_button,
    stay,
    text_input,
)
from handlers.telegram.guard import (
    FloodGate,
    guard,
)
from handlers.telegram.help_text import help_text
from handlers.telegram.replies import (
    answer_query,
    button,
    keyboard,
    language_keyboard,
    main_menu,
    reply,
    send,
    show_menu,
    split_text,
)
from messages.render import LOCALES, th
from storage.persistence import UpdateLog

# --- global commands -------------------------------------------------------------------------


async def start(update: Update, context: Context) -> None:
    """/start: greeting; on first contact also the language choice; then the main menu."""
    if update.effective_chat is None or update.effective_chat.type != ChatType.PRIVATE:
        return
    desk = desk_of(context)
    locale = locale_of(context)
    user = update.effective_user
    body = desk.profile.body
    name = user.first_name if user else ""
    greeting = th(
        "menu.greeting", locale, name=name, body=body.name_zh if locale == "zh_CN" else body.name_en
    )
    if context.user_data is not None and context.user_data.pop("_new_contact", False):
        # First contact: one message, so the choice arrives with the greeting.
        text = f"{greeting}\n\n{th('menu.choose_language', locale)}"
        await send(update, context, text, language_keyboard())
        return
    await send(update, context, f"{greeting}\n\n{th('menu.main', locale)}", main_menu(locale))


async def menu(update: Update, context: Context) -> None:
    """/menu or the main-menu button."""
    await answer_query(update)
    await show_menu(update, context)


async def help_(update: Update, context: Context) -> None:
    """/help and the help button."""
    await answer_query(update)
    locale = locale_of(context)
    text = help_text(desk_of(context).profile.body.contact, locale)
    await send(update, context, text, main_menu(locale))


async def cancel(update: Update, context: Context) -> None:
    """/cancel: any flow has already ended quietly; say so and show the menu."""
    locale = locale_of(context)
    await send(update, context, th("menu.cancelled", locale), main_menu(locale))


async def language(update: Update, context: Context) -> None:
    """/language: offer the choice again."""
    await send(update, context, th("menu.choose_language", locale_of(context)), language_keyboard())


async def choose_language(update: Update, context: Context) -> None:
    """A language button: store the choice on the contact."""
    query = update.callback_query
    assert query is not None and query.data is not None
    chosen = query.data.removeprefix(LANG_PREFIX)
    await query.answer()
    if chosen not in LOCALES or context.user_data is None or _CONTACT not in context.user_data:
        return
    contact = context.user_data[_CONTACT]
    fresh = await contacts.set_locale(uow_of(context), contact.id, chosen)
    remember_contact(context, fresh)
    await send(update, context, th("menu.language_set", chosen))
    await show_menu(update, context)


async def not_available(update: Update, context: Context) -> None:
    """A menu button whose flow is not installed in this deployment."""
    await answer_query(update)
    await reply(update, context, "menu.not_available", markup=main_menu(locale_of(context)))


async def fallback(update: Update, context: Context) -> None:
    """Anything no flow took, in a private chat: point to the menu."""
    if update.effective_chat is None or update.effective_chat.type != ChatType.PRIVATE:
        return
    await reply(update, context, "menu.unknown", markup=main_menu(locale_of(context)))


def register(app: Application, desk: Desk) -> None:
    settings = desk.settings
    app.bot_data[FLOOD_GATE] = FloodGate(settings.flood_max_updates, settings.flood_window_seconds)
    app.bot_data["update_log"] = UpdateLog()
    app.add_handler(TypeHandler(Update, guard), group=Group.GUARD)
    app.add_handler(TypeHandler(Update, leave_waiting_flows), group=Group.FLOW_EXIT)
    g = Group.GLOBAL
    app.add_handler(CommandHandler("start", start), group=g)
    app.add_handler(CommandHandler("menu", menu), group=g)
    app.add_handler(CommandHandler("help", help_), group=g)
    app.add_handler(CommandHandler("cancel", cancel), group=g)
    app.add_handler(CommandHandler("language", language), group=g)
    app.add_handler(CallbackQueryHandler(choose_language, pattern=rf"^{LANG_PREFIX}"), group=g)
    app.add_handler(CallbackQueryHandler(help_, pattern=rf"^{MENU_HELP}$"), group=g)
    app.add_handler(CallbackQueryHandler(menu, pattern=rf"^{MENU_MAIN}$"), group=g)
    # Any other menu button reaching here has no flow registered (e.g. a disabled module).
    app.add_handler(CallbackQueryHandler(not_available, pattern=r"^menu:"), group=g)
    app.add_handler(MessageHandler(filters.ChatType.PRIVATE, fallback), group=g)


# --- the applicant's organisation ------------------------------------------------------------

ORG_NAME_MIN, ORG_NAME_MAX = 2, 200


async def organisation(context: Context) -> Any:
    """The contact's organisation, or None when it has not been named yet."""
    fresh, org = await contacts.organisation_of(uow_of(context), cached_contact(context).id)
    remember_contact(context, fresh)
    return org


async def has_organisation(context: Context) -> bool:
    """Whether the contact has named (or been linked to) an organisation. Only this process
    links a Telegram contact to one (and keeps its copy fresh), and never unlinks it: a known
    organisation needs no read."""
    if cached_contact(context).organisation_id is not None:
        return True
    return await organisation(context) is not None


async def name_organisation(update: Update, context: Context) -> Any:
    """Create the organisation from the typed name; None (and a reason sent) when invalid."""
    text = (
        " ".join((update.effective_message.text or "").split()) if update.effective_message else ""
    )
    if not ORG_NAME_MIN <= len(text) <= ORG_NAME_MAX:
        await reply(
            update, context, "applicant.org_name_invalid", min=ORG_NAME_MIN, max=ORG_NAME_MAX
        )
        return None
    desk = desk_of(context)
    now = desk.clock.now()
    fresh, org = await contacts.name_organisation(
        uow_of(context), cached_contact(context).id, text, now
    )
    remember_contact(context, fresh)
    return org


# Every handler module reaches the shared pieces through this one (`common.send`, …).
__all__ = [
    "COMMANDS",
    "LANG_PREFIX",
    "MENU_APPLICATION",
    "MENU_CASES",
    "MENU_CERTIFICATE",
    "MENU_CHANGES",
    "MENU_DOCUMENTS",
    "MENU_ELIGIBILITY",
    "MENU_HELP",
    "MENU_ITEMS",
    "MENU_MAIN",
    "MENU_QUOTE",
    "ORG_NAME_MAX",
    "ORG_NAME_MIN",
    "CachedContact",
    "Callback",
    "Context",
    "F",
    "FloodGate",
    "Group",
    "answer_query",
    "button",
    "cached_contact",
    "cancel",
    "choose_language",
    "commit_before_reply",
    "contact_of",
    "conversation",
    "desk_of",
    "desk_of_app",
    "exit_fallbacks",
    "fallback",
    "guard",
    "has_organisation",
    "help_",
    "keyboard",
    "language",
    "language_keyboard",
    "locale_of",
    "main_menu",
    "menu",
    "name_organisation",
    "not_a_button",
    "not_available",
    "organisation",
    "register",
    "reply",
    "send",
    "show_menu",
    "split_text",
    "start",
    "stay",
    "text_input",
    "uow_of",
]
