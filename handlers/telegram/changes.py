"""Change notifications from certified organisations (domain.md §6): name, address, legal
representative, scope, major accident. The contact picks the kind, describes it in one message;
staff are alerted through the outbox, an accident flagged urgent with the reporting period shown.

Registered in bot.main.app.HANDLER_MODULES (the main menu's MENU_CHANGES button and /change
start it).
"""

from __future__ import annotations

from telegram import Update
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, MessageHandler

from bot.desk import Desk
from bot.outbox.to_staff import queue_for_staff
from bot.services import certificates
from handlers.telegram import common
from handlers.telegram.common import Context, reply, stay
from messages.render import t, th
from storage.unit_of_work import current

KIND, DETAILS = "changes.kind", "changes.details"
KINDS = ("name", "address", "legal_rep", "scope", "accident")
PREFIX = "chg:"
MAX_DETAILS = 4096  # one Telegram message: kept whole (cut before escaping, the person told)
ACCIDENT_RULE = "change.major"  # the profile rule of the major-accident report, when it has one
_KIND_KEY = "changes_kind"  # user_data: the kind chosen, until the details arrive


def accident_period(desk: Desk, locale: str) -> tuple[int, str]:
    """Days to report a major accident, and the clause: the profile's rule, else 3 days."""
    rule = desk.profile.rules.get(ACCIDENT_RULE)
    if rule is not None:
        return rule.count, rule.clause
    return 3, t("changes.accident_clause_default", locale)


async def _certificates(context: Context) -> tuple[str, list[str]] | None:
    """(holder, certificate numbers) of the contact's organisation, or None if not certified."""
    org = await common.organisation(context)
    if org is None:
        return None
    numbers = await certificates.numbers_of(common.uow_of(context), org.id)
    return (org.name, numbers) if numbers else None


@stay
async def entry(update: Update, context: Context) -> str | int:
    """Menu button or /change: certified contacts choose what changed."""
    await common.answer_query(update)
    locale = common.locale_of(context)
    if await _certificates(context) is None:
        await reply(update, context, "changes.no_certificate", markup=common.main_menu(locale))
        return -1  # ConversationHandler.END
    rows = [[(th(f"changes.kind_{k}", locale), f"{PREFIX}{k}")] for k in KINDS]
    await reply(update, context, "changes.ask_kind", markup=common.keyboard(rows))
    return KIND


@stay
async def kind_chosen(update: Update, context: Context) -> str | None:
    await common.answer_query(update)
    query = update.callback_query
    kind = (query.data or "").removeprefix(PREFIX) if query else ""
    if kind not in KINDS or context.user_data is None:
        return None
    context.user_data[_KIND_KEY] = kind
    if kind == "accident":
        desk, locale = common.desk_of(context), common.locale_of(context)
        days, clause = accident_period(desk, locale)
        await reply(update, context, "changes.accident_rule", days=days, clause=clause)
    else:
        await reply(update, context, "changes.ask_details")
    return DETAILS


@stay
async def details_typed(update: Update, context: Context) -> int | None:
    message = update.effective_message
    text = " ".join((message.text or "").split()) if message else ""
    kind = context.user_data.get(_KIND_KEY) if context.user_data is not None else None
    if not text or kind is None or message is None:
        await reply(update, context, "changes.ask_details")
        return None
    certified = await _certificates(context)
    locale = common.locale_of(context)
    if certified is None:
        await reply(update, context, "changes.no_certificate", markup=common.main_menu(locale))
        return -1
    holder, numbers = certified
    desk = common.desk_of(context)
    if len(text) > MAX_DETAILS:
        await reply(update, context, "changes.details_cut", max=f"{MAX_DETAILS:,}")
    await alert_staff(desk, holder, numbers, kind, text[:MAX_DETAILS], message.chat_id,
                      message.message_id)  # fmt: skip
    context.user_data.pop(_KIND_KEY, None)  # type: ignore[union-attr]
    kind_text = th(f"changes.kind_{kind}", locale)
    await reply(
        update, context, "changes.received", kind=kind_text, markup=common.main_menu(locale)
    )
    return -1


async def alert_staff(
    desk: Desk, holder: str, numbers: list[str], kind: str, details: str, chat_id: int,
    message_id: int,
) -> None:  # fmt: skip
    """Queue the staff alert; keyed by the report's message, so a redelivery queues nothing."""
    loc = desk.settings.default_locale
    args = {"holder": holder, "numbers": ", ".join(numbers), "details": details}
    if kind == "accident":
        days, _ = accident_period(desk, loc)
        text = th("changes.staff_alert_urgent", loc, days=days, **args)
    else:
        text = th("changes.staff_alert", loc, kind=t(f"changes.kind_{kind}", loc), **args)
    uow = current()
    assert uow is not None  # called within the report's update
    await queue_for_staff(desk, uow.session, key=f"change:{chat_id}:{message_id}", text=text)


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
