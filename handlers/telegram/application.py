"""My application: stage with dates, checklist progress, and what the applicant must do next."""

from __future__ import annotations

from telegram import Update
from telegram.ext import Application, CallbackQueryHandler, CommandHandler

from bot.clock import SHANGHAI
from bot.desk import Desk
from bot.domain import applications as rules
from bot.services import applications as apps
from handlers.telegram import common
from handlers.telegram.common import Context, stay
from messages.render import th


@stay
async def status(update: Update, context: Context) -> None:
    """/status or the menu button."""
    await common.answer_query(update)
    locale = common.locale_of(context)
    snap = await apps.snapshot(
        common.desk_of(context), common.uow_of(context), common.contact_of(context).id or 0
    )
    if snap is None:
        await common.send(
            update, context, th("application.no_application", locale), common.main_menu(locale)
        )
        return
    app, p = snap.application, snap.progress
    lines = [
        th(
            "application.status_title",
            locale,
            ref=app.ref,
            organisation=snap.organisation.name,
            stage=th(f"application.stage_{app.stage}", locale),
        ),
        th("application.progress", locale, received=p.received, accepted=p.accepted, total=p.total),
        "",
        th("application.history", locale),
    ]
    for stage, at in snap.events:
        day = at.astimezone(SHANGHAI).date().isoformat()  # type: ignore[attr-defined]
        lines.append(f"  {day}  {th(f'application.stage_{stage}', locale)}")
    lines += [
        "",
        th("application.next_line", locale, next=th(rules.next_step_key(app.stage), locale)),
    ]
    missing = [i for i in p.items if i.status in (None, "rejected")]
    for item in missing:
        lines.append("  • " + th(f"documents.{item.item_id}", locale))
    await common.send(update, context, "\n".join(lines), common.main_menu(locale))


def register(app: Application, desk: Desk) -> None:
    group = common.Group.APPLICATION
    app.add_handler(
        CallbackQueryHandler(status, pattern=rf"^{common.MENU_APPLICATION}$"), group=group
    )
    app.add_handler(CommandHandler("status", status), group=group)
