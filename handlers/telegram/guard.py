"""The guard that runs before any handler: redelivered updates, group chats, floods, the contact,
edited messages."""

from __future__ import annotations

import time
from array import array

from telegram import Update
from telegram.constants import ChatType
from telegram.ext import (
    ApplicationHandlerStop,
)

from bot.services import contacts
from handlers.telegram.context import (
    _CONTACT,
    Context,
    commit_before_reply,
    desk_of,
    locale_of,
    remember_contact,
    uow_of,
)
from handlers.telegram.flows import FLOOD_GATE, IDLE_FLOWS, IdleFlows
from handlers.telegram.staff_gate import is_staff
from messages.render import normalise_locale, th
from storage.persistence import UpdateLog, update_record

# --- the guard -------------------------------------------------------------------------------


class FloodGate:
    """Per-user sliding window; in-process (one instance polls Telegram at a time).

    A user's stamps are one `array('d')` (8 bytes a stamp, ~100 B for a few): a deque per user
    was ~0.8 KB, most of what an idle user cost."""

    PRUNE_FROM = 1024  # users kept before the first pruning pass

    def __init__(self, max_updates: int, window: float) -> None:
        self.max_updates = max_updates
        self.window = window
        self.seen: dict[int, array[float]] = {}
        self.warned: set[int] = set()
        self._prune_at = self.PRUNE_FROM

    def allow(self, user_id: int, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        stamps = self.seen.get(user_id)
        if stamps is None:
            if len(self.seen) >= self._prune_at:
                self.prune(now)
            stamps = self.seen[user_id] = array("d")
        start = now - self.window
        old = 0
        while old < len(stamps) and stamps[old] <= start:
            old += 1
        if old:
            del stamps[:old]
        if len(stamps) >= self.max_updates:
            return False
        stamps.append(now)
        self.warned.discard(user_id)
        return True

    def prune(self, now: float | None = None) -> None:
        """Forget users with nothing in the window. Run when a new user finds the table grown
        (amortised: the next pass when it has doubled, so the bookkeeping follows the users of
        the last window, not all ever seen) and by the idle sweep (flows.IdleFlows)."""
        now = time.monotonic() if now is None else now
        idle = [
            u for u, stamps in self.seen.items() if not stamps or stamps[-1] <= now - self.window
        ]
        for user_id in idle:
            del self.seen[user_id]
            self.warned.discard(user_id)
        self._prune_at = max(self.PRUNE_FROM, 2 * len(self.seen))


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
    gate: FloodGate = context.bot_data[FLOOD_GATE]
    if user is not None and not is_staff(update, desk) and not gate.allow(user.id):
        if user.id not in gate.warned and chat is not None:
            gate.warned.add(user.id)
            await context.bot.send_message(chat.id, th("menu.flood", locale_of(context)))
        raise ApplicationHandlerStop
    now = desk.clock.now()
    handled: UpdateLog = context.bot_data["update_log"]
    uow = uow_of(context)
    update_id = update.update_id
    # No session is opened for an id above the highest handled (the usual case).
    if not handled.is_new(update_id) and await handled.seen(uow.session, update_id):
        raise ApplicationHandlerStop  # redelivered: handled already
    # The first write of the update's first commit: with everything the handlers did.
    statement, params = update_record(desk.sessions, update_id, now)
    uow.first_in_commit(statement, params, lambda: handled.recorded(update_id))
    idle: IdleFlows | None = context.bot_data.get(IDLE_FLOWS)
    if private and idle is not None and chat is not None and user is not None:
        await idle.touch(context.application, chat.id, user.id, now.timestamp())
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
        remember_contact(context, contact)
        context.user_data["_new_contact"] = created
    if update.edited_message is not None or update.edited_channel_post is not None:
        await _edit_ignored(update, context, private=private)
        raise ApplicationHandlerStop


async def _edit_ignored(update: Update, context: Context, *, private: bool) -> None:
    """Only new messages are read: an edit of an earlier one answers no prompt, runs no command
    and records nothing (a staff member's edit must not reach a complainant, a complainant's
    must not become new information). The person is told, so a correction is sent again: in a
    private chat always; in the staff chat only for an edited command (chatter stays quiet)."""
    message = update.effective_message
    chat = update.effective_chat
    if message is None or chat is None:
        return
    if private:
        key = "menu.edit_ignored"
    elif (message.text or "").startswith("/"):
        key = "menu.edit_ignored_staff"
    else:
        return
    await commit_before_reply()  # the update id is recorded first: a redelivery says nothing
    await context.bot.send_message(
        chat.id, th(key, locale_of(context)), reply_to_message_id=message.message_id
    )
