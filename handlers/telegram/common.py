"""What every Telegram flow shares: the desk, the contact and its language, the guard that runs
before any handler (redelivered updates, group chats, floods), the main menu, /start /help /menu
/cancel /language, replies from the catalog, staff checks.

Handler groups (an update visits every group in order until a handler stops it):
- GUARD_GROUP (-2): idempotency, refusal of group chats, flood protection, contact lookup;
- STAFF_GROUP (0): staff buttons and commands (issue 4 staff modules register here too);
- conversation groups from `conversation_group(app)`: one per flow, so a menu button pressed in
  the middle of one flow quietly ends it (`exit_fallbacks`) and the next group starts the other;
- GLOBAL_GROUP (1000): /start, /menu, /help, /cancel, /language and the catch-all.
Flow callbacks stop propagation (`stay`), so the catch-all only answers what no flow took.
"""

from __future__ import annotations

import functools
import time
import warnings
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from sqlmodel.ext.asyncio.session import AsyncSession
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.constants import ChatType, MessageLimit
from telegram.ext import (
    Application,
    ApplicationHandlerStop,
    BaseHandler,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    ConversationHandler,
    MessageHandler,
    TypeHandler,
    filters,
)
from telegram.warnings import PTBUserWarning

from bot.desk import Desk
from bot.services import contacts
from messages.render import LOCALES, normalise_locale, th
from storage.models import Contact
from storage.persistence import UpdateLog, record_update
from storage.unit_of_work import AlreadyHandled, UnitOfWork, current

Context = ContextTypes.DEFAULT_TYPE
Callback = Callable[[Update, Context], Awaitable[Any]]
F = TypeVar("F", bound=Callback)

GUARD_GROUP = -2
STAFF_GROUP = 0
FIRST_CONVERSATION_GROUP = 10
GLOBAL_GROUP = 1000

# Main-menu callback data; other modules register handlers for theirs.
MENU_ELIGIBILITY = "menu:eligibility"
MENU_QUOTE = "menu:quote"
MENU_DOCUMENTS = "menu:documents"
MENU_APPLICATION = "menu:application"
MENU_CERTIFICATE = "menu:certificate"
MENU_CASES = "menu:cases"
MENU_CHANGES = "menu:changes"
MENU_HELP = "menu:help"
MENU_MAIN = "menu:main"  # "back to the main menu" buttons
MENU_ITEMS: tuple[tuple[str, str], ...] = (
    (MENU_ELIGIBILITY, "menu.btn_eligibility"),
    (MENU_QUOTE, "menu.btn_quote"),
    (MENU_DOCUMENTS, "menu.btn_documents"),
    (MENU_APPLICATION, "menu.btn_application"),
    (MENU_CERTIFICATE, "menu.btn_certificate"),
    (MENU_CASES, "menu.btn_cases"),
    (MENU_CHANGES, "menu.btn_changes"),
    (MENU_HELP, "menu.btn_help"),
)
LANG_PREFIX = "lang:"

# Commands shown in Telegram's menu (setMyCommands), with their catalog descriptions.
COMMANDS: tuple[tuple[str, str], ...] = (
    ("start", "menu.cmd_start"),
    ("menu", "menu.cmd_menu"),
    ("eligibility", "menu.cmd_eligibility"),
    ("quote", "menu.cmd_quote"),
    ("documents", "menu.cmd_documents"),
    ("status", "menu.cmd_status"),
    ("certificate", "menu.cmd_certificate"),
    ("language", "menu.cmd_language"),
    ("help", "menu.cmd_help"),
    ("cancel", "menu.cmd_cancel"),
)

_CONTACT = "contact"  # user_data key: the contact row, loaded by the guard (a read cache)


def desk_of(context: Context) -> Desk:
    return context.bot_data["desk"]


def uow_of(context: Context) -> UnitOfWork:
    """The unit of work of the update being handled (bot.main.app opens one per update)."""
    uow = current()
    if uow is None:
        raise LookupError("no unit of work: not within an update")
    return uow


async def commit_before_reply() -> None:
    """Make what the update did durable before the user hears of it; if another instance
    handled this update meanwhile, say nothing (ApplicationHandlerStop)."""
    uow = current()
    if uow is None:
        return
    try:
        await uow.commit()
    except AlreadyHandled:
        raise ApplicationHandlerStop from None


def contact_of(context: Context) -> Contact:
    """The contact the guard loaded for this update (private chats only)."""
    contact = context.user_data.get(_CONTACT) if context.user_data is not None else None
    if contact is None:
        raise LookupError("no contact for this update (not a private chat?)")
    return contact


def locale_of(context: Context) -> str:
    if context.user_data is not None and (c := context.user_data.get(_CONTACT)) is not None:
        return c.locale
    return desk_of(context).settings.default_locale


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


# --- conversations ---------------------------------------------------------------------------


def stay(fn: F) -> F:
    """A flow callback: its result is the next state and no later group sees the update."""

    @functools.wraps(fn)
    async def wrapper(update: Update, context: Context) -> Any:
        raise ApplicationHandlerStop(await fn(update, context))

    return wrapper  # type: ignore[return-value]


async def _quiet_end(update: Update, context: Context) -> int:
    """Leave the flow without a word: a later group answers the command or button."""
    return ConversationHandler.END


async def _timed_out(update: Update, context: Context) -> None:
    chat = update.effective_chat if isinstance(update, Update) else None
    if chat is not None:
        locale = locale_of(context)
        await context.bot.send_message(chat.id, th("menu.timeout", locale))


def exit_fallbacks() -> list[BaseHandler[Update, Context, Any]]:
    """Every conversation's fallbacks: the global commands and the main menu end it quietly."""
    return [
        CommandHandler(["start", "menu", "help", "cancel", "language"], _quiet_end),
        CommandHandler(["eligibility", "quote", "documents", "status", "certificate"], _quiet_end),
        CallbackQueryHandler(_quiet_end, pattern=r"^menu:"),
    ]


def conversation_group(app: Application) -> int:
    """A handler group of its own for one conversation (see the module docstring)."""
    group = app.bot_data.get("_next_group", FIRST_CONVERSATION_GROUP)
    app.bot_data["_next_group"] = group + 1
    return group


def conversation(
    app: Application,
    name: str,
    entry_points: list[BaseHandler[Update, Context, Any]],
    states: dict[object, list[BaseHandler[Update, Context, Any]]],
) -> ConversationHandler[Context]:
    """A persistent conversation with the shared fallbacks and the polite idle timeout."""
    timeout = desk_of_app(app).settings.conversation_timeout_seconds
    states = {**states, ConversationHandler.TIMEOUT: [TypeHandler(Update, _timed_out)]}
    with warnings.catch_warnings():
        # Buttons are tracked per chat and user, not per message, on purpose: answers carry
        # the question id in their callback data instead (PTB warns about the former).
        warnings.filterwarnings("ignore", message=r".*per_message", category=PTBUserWarning)
        handler: ConversationHandler[Context] = ConversationHandler(
            entry_points=entry_points,
            states=states,
            fallbacks=exit_fallbacks(),
            name=name,
            persistent=True,
            conversation_timeout=timeout,
            allow_reentry=True,
        )
    app.add_handler(handler, group=conversation_group(app))
    return handler


def desk_of_app(app: Application) -> Desk:
    return app.bot_data["desk"]


def text_input() -> filters.BaseFilter:
    return filters.TEXT & ~filters.COMMAND


def not_a_button(reminder_key: str = "menu.use_buttons") -> MessageHandler[Context, Any]:
    """In a state that waits for a button: anything typed gets a reminder, state unchanged."""

    @stay
    async def remind(update: Update, context: Context) -> None:
        await reply(update, context, reminder_key)
        return None  # None keeps the conversation in its current state

    return MessageHandler(filters.ALL & ~filters.COMMAND, remind)


# --- staff -----------------------------------------------------------------------------------


def staff_only(fn: F) -> F:
    """Staff callbacks and commands: anyone else is refused and nothing happens."""

    @functools.wraps(fn)
    async def wrapper(update: Update, context: Context) -> Any:
        user = update.effective_user
        if not desk_of(context).is_staff(user.id if user else None):
            locale = locale_of(context)
            if update.callback_query is not None:
                await update.callback_query.answer(th("menu.not_staff", locale), show_alert=True)
            elif update.effective_chat is not None:
                await context.bot.send_message(
                    update.effective_chat.id, th("menu.not_staff", locale)
                )
            raise ApplicationHandlerStop
        return await fn(update, context)

    return wrapper  # type: ignore[return-value]


# --- the guard -------------------------------------------------------------------------------


class FloodGate:
    """Per-user sliding window; in-process (one instance polls Telegram at a time)."""

    def __init__(self, max_updates: int, window: float) -> None:
        self.max_updates = max_updates
        self.window = window
        self.seen: dict[int, deque[float]] = defaultdict(deque)
        self.warned: set[int] = set()

    def allow(self, user_id: int, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        stamps = self.seen[user_id]
        while stamps and stamps[0] <= now - self.window:
            stamps.popleft()
        if len(stamps) >= self.max_updates:
            return False
        stamps.append(now)
        self.warned.discard(user_id)
        return True


async def guard(update: Update, context: Context) -> None:
    """Runs first for every update; raises ApplicationHandlerStop to drop one."""
    desk = desk_of(context)
    chat, user = update.effective_chat, update.effective_user
    staff_chat = chat is not None and chat.id == desk.settings.staff_chat_id
    private = chat is not None and chat.type == ChatType.PRIVATE
    if chat is not None and not private and not staff_chat:
        if update.effective_message is not None and update.message is not None:
            await context.bot.send_message(
                chat.id, th("menu.group_refused", desk.settings.default_locale)
            )
        raise ApplicationHandlerStop
    gate: FloodGate = context.bot_data["flood"]
    if user is not None and not desk.is_staff(user.id) and not gate.allow(user.id):
        if user.id not in gate.warned and chat is not None:
            gate.warned.add(user.id)
            await context.bot.send_message(chat.id, th("menu.flood", locale_of(context)))
        raise ApplicationHandlerStop
    now = desk.clock.now()
    handled: UpdateLog = context.bot_data["update_log"]
    uow = uow_of(context)
    if await handled.seen(uow.session, update.update_id):
        raise ApplicationHandlerStop  # redelivered: handled already
    update_id = update.update_id

    async def record(session: AsyncSession) -> bool:
        # The first write of the update's first commit: with everything the handlers did.
        if not await record_update(session, update_id, now):
            return False
        uow.after_commit(lambda: handled.recorded(update_id))
        return True

    uow.first_in_commit(record)
    cached = context.user_data.get(_CONTACT) if context.user_data is not None else None
    # The contact row is read once per user and process, then kept in memory: only this
    # process (the one polling Telegram) changes it, and it refreshes its copy when it does.
    if private and user is not None and context.user_data is not None and cached is None:
        default = desk.settings.default_locale
        locale = normalise_locale(user.language_code) if user.language_code else default
        contact, created = await contacts.telegram_contact(
            uow,
            user_id=user.id,
            chat_id=chat.id if chat else None,
            name=user.full_name,
            locale=locale,
            now=now,
        )
        context.user_data[_CONTACT] = contact
        context.user_data["_new_contact"] = created


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
    await reply(update, context, "menu.help", markup=main_menu(locale_of(context)))


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
    context.user_data[_CONTACT] = fresh
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
    app.bot_data["flood"] = FloodGate(settings.flood_max_updates, settings.flood_window_seconds)
    app.bot_data["update_log"] = UpdateLog()
    app.add_handler(TypeHandler(Update, guard), group=GUARD_GROUP)
    g = GLOBAL_GROUP
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
    fresh, org = await contacts.organisation_of(uow_of(context), contact_of(context).id)
    context.user_data[_CONTACT] = fresh  # type: ignore[index]
    return org


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
        uow_of(context), contact_of(context).id, text, now
    )
    context.user_data[_CONTACT] = fresh  # type: ignore[index]
    return org
