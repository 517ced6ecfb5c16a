"""Staff verdict on corrective-action evidence from the staff chat (issue 12): the evidence alert
(queued by bot.services.findings) carries an accept button `sf:a:<finding id>`; a rejection needs
a reason in words, so it is a command: `/finding_reject <id> <reason>`. Staff only; the
organisation is told through the outbox either way.
"""

from __future__ import annotations

from telegram import Update
from telegram.ext import Application, ApplicationHandlerStop, CommandHandler, filters

from bot.desk import Desk
from bot.services import findings as service
from handlers.telegram import common
from handlers.telegram.common import Context, Group, stay
from handlers.telegram.staff_gate import StaffButton, StaffOnly
from messages.render import th


def _by(update: Update) -> str:
    user = update.effective_user
    return user.full_name if user else "staff"


async def accept(update: Update, context: Context) -> None:
    query = update.callback_query
    assert query is not None and query.data is not None
    desk = common.desk_of(context)
    locale = desk.settings.default_locale
    finding_id = int(query.data.split(":")[2])
    await query.answer()
    try:
        done = await service.review(
            desk, common.uow_of(context), finding_id, accept=True, reason=None, by=_by(update)
        )
        note = th("findings.staff_accepted", locale, by=_by(update), id=done.id)
    except service.Refusal as refused:
        note = th(refused.key, locale)
    if getattr(query.message, "document", None) is not None:  # an evidence file, captioned
        original = getattr(query.message, "caption_html", None) or ""
        await query.edit_message_caption(f"{original}\n\n{note}", reply_markup=None)
    else:
        original = getattr(query.message, "text_html", None) or ""
        await query.edit_message_text(f"{original}\n\n{note}", reply_markup=None)
    raise ApplicationHandlerStop


async def reject(update: Update, context: Context) -> None:
    """`/finding_reject <id> <reason>`."""
    desk = common.desk_of(context)
    locale = desk.settings.default_locale
    args = context.args or []
    if len(args) < 2 or not args[0].isdigit():
        await common.send(update, context, th("findings.staff_reject_usage", locale))
        return
    reason = " ".join(args[1:])
    try:
        done = await service.review(
            desk, common.uow_of(context), int(args[0]), accept=False, reason=reason, by=_by(update)
        )
        text = th("findings.staff_rejected", locale, by=_by(update), id=done.id, reason=reason)
    except service.Refusal as refused:
        text = th(refused.key, locale)
    await common.send(update, context, text)


def register(app: Application, desk: Desk) -> None:
    app.add_handler(StaffButton(accept, r"^sf:a:\d+$"), group=Group.STAFF)
    staff = StaffOnly(desk) & filters.UpdateType.MESSAGE
    app.add_handler(
        CommandHandler("finding_reject", stay(reject), filters=staff), group=Group.STAFF
    )


__all__ = ["register"]
