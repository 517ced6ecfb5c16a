"""Conversations: one handler group each (context.Group), the shared fallback that ends a flow
when something else starts, the polite idle timeout (IdleFlows)."""

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
    filters,
)
from telegram.warnings import PTBUserWarning

from bot.desk import Desk
from handlers.telegram.context import (
    _CONTACT,
    MENU_PREFIX,
    Context,
    F,
    Group,
)
from handlers.telegram.replies import reply
from messages.render import th

# --- conversations ---------------------------------------------------------------------------

IDLE_FLOWS = "idle_flows"  # bot_data: the IdleFlows of the application
FLOOD_GATE = "flood"  # bot_data: the guard's FloodGate (guard.py)


def stay(fn: F) -> F:
    """A flow callback: its result is the next state and no later group sees the update."""

    @functools.wraps(fn)
    async def wrapper(update: Update, context: Context) -> Any:
        raise ApplicationHandlerStop(await fn(update, context))

    return wrapper  # type: ignore[return-value]


async def _quiet_end(update: Update, context: Context) -> int:
    """Leave the flow without a word: a later group answers the command or button."""
    return ConversationHandler.END


class IdleFlows:
    """The polite idle timeout of every flow, without a timer per update.

    PTB's `conversation_timeout` re-arms a JobQueue job on every update of a conversation (an
    APScheduler job removed and added: a large share of an answer's cost). Instead the guard
    notes the time of each private update here (`touch`), and a conversation idle for longer
    than the timeout ends — with the same message — either at the next update of that chat,
    before any flow sees it, or at the periodic sweep (one job for all chats), whichever comes
    first. The bookkeeping is one number per chat seen within the timeout: the sweep forgets
    the others, and drops their user and chat data (the guard reads the contact again).
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.flows: list[ConversationHandler[Context]] = []
        self.last: dict[tuple[int, int], float] = {}  # (chat id, user id) → last update, epoch s

    @property
    def interval(self) -> float:
        return max(5.0, min(60.0, self.timeout / 10))

    async def touch(self, app: Application, chat_id: int, user_id: int, now: float) -> None:
        """An update of this chat: end its flows first when they waited too long."""
        key = (chat_id, user_id)
        seen = self.last.get(key)
        if seen is not None and now - seen > self.timeout:
            await self._expire(app, key)
        self.last[key] = now

    async def sweep(self, app: Application, now: float) -> int:
        """End every flow idle for longer than the timeout; forget idle chats. How many ended."""
        for handler in self.flows:
            for key in list(handler._conversations):  # PTB has no public view of them
                if isinstance(key, tuple) and len(key) == 2:  # restored after a restart
                    self.last.setdefault((int(key[0]), int(key[1])), now)
        ended = 0
        for key, seen in list(self.last.items()):
            if now - seen <= self.timeout:
                continue
            del self.last[key]
            ended += await self._expire(app, key)
            if key[1] in app.user_data:
                app.drop_user_data(key[1])
            if key[0] in app.chat_data:
                app.drop_chat_data(key[0])
        flood = app.bot_data.get(FLOOD_GATE)
        if flood is not None:
            flood.prune()  # the flood gate's users with nothing in its window, too
        if ended:
            await app.update_persistence()
        return ended

    async def _expire(self, app: Application, key: tuple[int, int]) -> int:
        waiting = [h for h in self.flows if key in h._conversations]
        for handler in waiting:
            handler._update_state(ConversationHandler.END, key)
        if waiting:
            contact = app.user_data.get(key[1], {}).get(_CONTACT)
            locale = (
                contact.locale if contact is not None else desk_of_app(app).settings.default_locale
            )
            await app.bot.send_message(key[0], th("menu.timeout", locale))
        return 1 if waiting else 0


def idle_flows(app: Application) -> IdleFlows:
    """The application's IdleFlows, with its sweep job, made on first use."""
    idle: IdleFlows | None = app.bot_data.get(IDLE_FLOWS)
    if idle is None:
        idle = app.bot_data[IDLE_FLOWS] = IdleFlows(
            desk_of_app(app).settings.conversation_timeout_seconds
        )
        if app.job_queue is not None:
            app.job_queue.run_repeating(
                _sweep, interval=idle.interval, first=idle.interval, name=IDLE_FLOWS
            )
    return idle


async def _sweep(context: Context) -> None:
    idle: IdleFlows = context.bot_data[IDLE_FLOWS]
    await idle.sweep(context.application, desk_of_app(context.application).clock.now().timestamp())


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
        message = update.message
        if message is not None and not (message.text or "").startswith("/"):
            return False  # typed text or a file: an answer, never a start (no command)
        kind = CallbackQueryHandler if update.callback_query is not None else CommandHandler
        return any(_takes(h, update) for h in self.starts() if isinstance(h, kind))

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
    than the flow it starts, which would otherwise take the next text as their answer.

    Cheap for an answer (most updates): only the flows that wait in this chat are looked at, and
    only when the update starts something (every flow's fallback asks the same question)."""
    app = context.application
    chat, user = update.effective_chat, update.effective_user
    if chat is None or user is None:
        return
    key = (chat.id, user.id)  # the conversations' key: per chat and user (flows.conversation)
    idle: IdleFlows | None = context.bot_data.get(IDLE_FLOWS)
    flows = idle.flows if idle is not None else []  # every flow (`conversation` adds each)
    waiting = [handler for handler in flows if key in handler._conversations]
    if not waiting:
        return
    starts = next((f for f in waiting[0].fallbacks if isinstance(f, StartsSomethingElse)), None)
    if starts is not None and not starts.check_update(update):
        return
    for handler in waiting:
        check = handler.check_update(update)
        if isinstance(check, tuple) and isinstance(check[2], StartsSomethingElse):
            await handler.handle_update(update, app, check, context)  # type: ignore[arg-type]


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
            allow_reentry=True,
        )
    idle_flows(app).flows.append(handler)  # the idle timeout, without a timer per update
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
