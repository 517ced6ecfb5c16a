"""Change reports from certified organisations (domain.md §6): the contact picks one of the kinds
the seeds list, sees its reporting period under the body's profile, describes it in one message;
the report is stored with a reference and the reporter, and staff are alerted through the outbox.

Registered in bot.main.app.HANDLER_MODULES (the main menu's MENU_CHANGES button and /change
start it).
"""

from __future__ import annotations

from telegram import Update
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, MessageHandler

from bot.clock import SHANGHAI
from bot.desk import Desk
from bot.services import certificates, change_reports
from handlers.telegram import common
from handlers.telegram.common import Context, reply, stay
from messages.render import t, th
from storage.models import Organisation

KIND, DETAILS = "changes.kind", "changes.details"
PREFIX = "chg:"
MAX_DETAILS = 4096  # one Telegram message: kept whole (cut before escaping, the person told)
_KIND_KEY = "changes_kind"  # user_data: the kind chosen, until the details arrive


async def _certified(context: Context) -> tuple[Organisation, list[str]] | None:
    """(organisation, certificate numbers) of the contact, or None if not a certified one."""
    org = await common.organisation(context)
    if org is None:
        return None
    numbers = await certificates.numbers_of(common.uow_of(context), org.id)
    return (org, numbers) if numbers else None


@stay
async def entry(update: Update, context: Context) -> str | int:
    """Menu button or /change: certified contacts choose what changed."""
    await common.answer_query(update)
    locale = common.locale_of(context)
    if await _certified(context) is None:
        await reply(update, context, "changes.no_certificate", markup=common.main_menu(locale))
        return -1  # ConversationHandler.END
    kinds = change_reports.kinds(common.desk_of(context).profile)
    buttons = [(th(f"changes.kind_{k}", locale), f"{PREFIX}{k}") for k in kinds]
    rows = [buttons[i : i + 2] for i in range(0, len(buttons), 2)]
    await reply(update, context, "changes.ask_kind", markup=common.keyboard(rows))
    return KIND


@stay
async def kind_chosen(update: Update, context: Context) -> str | None:
    await common.answer_query(update)
    query = update.callback_query
    kind = (query.data or "").removeprefix(PREFIX) if query else ""
    desk = common.desk_of(context)
    if kind not in change_reports.kinds(desk.profile) or context.user_data is None:
        return None
    context.user_data[_KIND_KEY] = kind
    period = change_reports.period_text(desk.profile, kind, common.locale_of(context))
    await reply(update, context, "changes.period_rule", period=period)
    return DETAILS


@stay
async def details_typed(update: Update, context: Context) -> int | None:
    message = update.effective_message
    text = " ".join((message.text or "").split()) if message else ""
    kind = context.user_data.get(_KIND_KEY) if context.user_data is not None else None
    if not text or kind is None or message is None:
        await reply(update, context, "changes.ask_details")
        return None
    certified = await _certified(context)
    locale = common.locale_of(context)
    if certified is None:
        await reply(update, context, "changes.no_certificate", markup=common.main_menu(locale))
        return -1
    org, numbers = certified
    desk, uow = common.desk_of(context), common.uow_of(context)
    user = update.effective_user
    if len(text) > MAX_DETAILS:
        await reply(update, context, "changes.details_cut", max=f"{MAX_DETAILS:,}")
    filed = await change_reports.file_report(
        desk, uow, contact=common.contact_of(context), org=org, numbers=numbers,
        kind=kind, details=text[:MAX_DETAILS], chat_id=message.chat_id,
        message_id=message.message_id, reporter_name=user.full_name if user else None,
    )  # fmt: skip
    context.user_data.pop(_KIND_KEY, None)  # type: ignore[union-attr]
    at = filed.report.reported_at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")
    await reply(update, context, "changes.received", kind=t(f"changes.kind_{kind}", locale),
                ref=filed.report.ref, at=at, markup=common.main_menu(locale))  # fmt: skip
    return -1


def register(app: Application, desk: Desk) -> None:
    common.conversation(
        app,
        "changes",
        common.Group.CHANGES,
        entry_points=[
            CallbackQueryHandler(entry, pattern=rf"^{common.MENU_CHANGES}$"),
            CommandHandler("change", entry),
        ],
        states={
            KIND: [
                CallbackQueryHandler(kind_chosen, pattern=rf"^{PREFIX}"),
                common.not_a_button("changes.ask_kind"),
            ],
            DETAILS: [MessageHandler(common.text_input(), details_typed)],
        },
    )
