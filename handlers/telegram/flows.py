"""Conversations: one handler group each (context.Group), the shared fallback that ends a flow
when something else starts, the polite idle timeout."""

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
from handlers.telegram.context import (
    MENU_PREFIX,
    Context,
    F,
    Group,
    locale_of,
)
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


class StartsSomethingElse(BaseHandler[Update, Context, Any]):
    """Every conversation's fallback: an update that is not an answer to this flow but a start
    of something else — a command some handler takes, another flow's entry button, a main-menu
    button — ends the flow quietly (a later group answers it). Checked only after the flow's
    own entry points and states, so its own restart and its own answers stay its own."""

    def __init__(self, app: Application) -> None:
        super().__init__(_quiet_end)
        self.app = app
        self._starts: list[BaseHandler[Update, Context, Any]] | None = None

    def check_update(self, update: object) -> bool:
        if not isinstance(update, Update):
            return False
        if update.callback_query is not None and (update.callback_query.data or "").startswith(
            MENU_PREFIX
        ):
            return True
        if update.message is None and update.callback_query is None:
            return False
        return any(_takes(h, update) for h in self.starts())

    def starts(self) -> list[BaseHandler[Update, Context, Any]]:
        """Every command handler, and every conversation's entry points (read once: the
        handlers are all registered before the first update)."""
        if self._starts is None:
            found: list[BaseHandler[Update, Context, Any]] = []
            for handlers in self.app.handlers.values():
                for handler in handlers:
                    if isinstance(handler, ConversationHandler):
                        found.extend(handler.entry_points)
                    elif isinstance(handler, CommandHandler):
                        found.append(handler)
            self._starts = found
        return self._starts


def _takes(handler: BaseHandler[Update, Context, Any], update: Update) -> bool:
    """Whether `handler` would take `update` as a start: a button for a button handler, a
    command for a command handler (typed text is an answer, never a start)."""
    kind = CallbackQueryHandler if update.callback_query is not None else CommandHandler
    if not isinstance(handler, kind):
        return False
    check = handler.check_update(update)
    return check is not None and check is not False


async def leave_waiting_flows(update: Update, context: Context) -> None:
    """Group.FLOW_EXIT, after the guard, before staff and flows: when the update starts something
    else, every conversation of this chat that waits ends first — also those in a later group
    than the flow it starts, which would otherwise take the next text as their answer."""
    app = context.application
    for handlers in list(app.handlers.values()):
        for handler in handlers:
            if not isinstance(handler, ConversationHandler):
                continue
            check = handler.check_update(update)
            if isinstance(check, tuple) and isinstance(check[2], StartsSomethingElse):
                await handler.handle_update(update, app, check, context)


def exit_fallbacks(app: Application) -> list[BaseHandler[Update, Context, Any]]:
    """Every conversation's fallbacks: anything that starts something else ends it quietly."""
    return [StartsSomethingElse(app)]


def conversation(
    app: Application,
    name: str,
    group: Group,
    entry_points: list[BaseHandler[Update, Context, Any]],
    states: dict[object, list[BaseHandler[Update, Context, Any]]],
) -> ConversationHandler[Context]:
    """A persistent conversation in its own handler group, with the shared fallbacks and the
    polite idle timeout."""
    taken = [h for h in app.handlers.get(group, []) if isinstance(h, ConversationHandler)]
    if taken:  # two flows in one group: the first would shadow the second's answers
        raise ValueError(f"handler group {group.name} already holds flow {taken[0].name!r}")
    timeout = desk_of_app(app).settings.conversation_timeout_seconds
    states = {**states, ConversationHandler.TIMEOUT: [TypeHandler(Update, _timed_out)]}
    with warnings.catch_warnings():
        # Buttons are tracked per chat and user, not per message, on purpose: answers carry
        # the question id in their callback data instead (PTB warns about the former).
        warnings.filterwarnings("ignore", message=r".*per_message", category=PTBUserWarning)
        handler: ConversationHandler[Context] = ConversationHandler(
            entry_points=entry_points,
            states=states,
            fallbacks=exit_fallbacks(app),
            name=name,
            persistent=True,
            conversation_timeout=timeout,
            allow_reentry=True,
        )
    app.add_handler(handler, group=group)
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
