"""Conversations (one handler group each, the shared fallbacks, the polite idle timeout) and the
one staff gate."""

from __future__ import annotations

import functools
import warnings
from typing import Any

from telegram import Update
from telegram.ext import (
    Application,
    ApplicationHandlerStop,
    BaseHandler,
    CallbackQueryHandler,
    CommandHandler,
    ConversationHandler,
    MessageHandler,
    TypeHandler,
    filters,
)
from telegram.warnings import PTBUserWarning

from bot.desk import Desk
from handlers.telegram.context import FIRST_CONVERSATION_GROUP, Context, F, desk_of, locale_of
from handlers.telegram.replies import reply
from messages.render import th

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
