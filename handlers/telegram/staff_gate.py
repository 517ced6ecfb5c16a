"""The one staff gate: who counts as staff (`is_staff`, on STAFF_USER_IDS through desk.is_staff),
and the three shapes every staff command and button takes it in.

- `StaffOnly(desk)`: a filter for staff commands and typed answers. Anyone else's update is not
  taken, so it reaches the public handlers (someone else's `/case` is the filing flow).
- `StaffButton(callback, pattern)`: a staff button. Anyone else's press — a forged one
  too — is answered "staff only" and does nothing.
- `staff_only(callback)`: the same refusal around a callback registered another way.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any

from telegram import Update
from telegram.ext import ApplicationHandlerStop, CallbackQueryHandler, filters

from bot.desk import Desk
from handlers.telegram.context import Context, F, desk_of, locale_of
from messages.render import th


def is_staff(update: object, desk: Desk) -> bool:
    """Whether the update comes from a configured staff member (an empty list: nobody)."""
    user = update.effective_user if isinstance(update, Update) else None
    return desk.is_staff(user.id if user else None)


class StaffOnly(filters.UpdateFilter):
    """Staff commands and typed answers: taken from staff only (see `is_staff`)."""

    def __init__(self, desk: Desk) -> None:
        super().__init__(name="StaffOnly")
        self.desk = desk

    def filter(self, update: Update) -> bool:
        return is_staff(update, self.desk)


def staff_only(fn: F) -> F:
    """Anyone but staff is refused (an alert on a button, a message otherwise); nothing runs."""

    @functools.wraps(fn)
    async def wrapper(update: Update, context: Context) -> Any:
        if not is_staff(update, desk_of(context)):
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


class StaffButton(CallbackQueryHandler[Any, Any]):
    """A staff button: the press is matched for anyone (so it is always answered) and runs
    `callback` for staff only (`staff_only`)."""

    def __init__(
        self, callback: Callable[[Update, Context], Coroutine[Any, Any, Any]], pattern: str
    ) -> None:
        super().__init__(staff_only(callback), pattern=pattern)


__all__ = ["StaffButton", "StaffOnly", "is_staff", "staff_only"]
