"""Certificate lookup by number or holder: holder, standard, scope, status, expiry, next
surveillance; and /link CODE, by which an organisation's contact links to its certificates."""

from __future__ import annotations

from telegram import Update
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ConversationHandler,
    MessageHandler,
    filters,
)

from bot.desk import Desk
from bot.domain.certificates import LINK_MAX_FAILURES
from bot.outbox.to_staff import queue_for_staff
from bot.services import contacts, statuses
from bot.services.certificates import CertificateView, find
from handlers.telegram import common
from handlers.telegram.common import Context, reply, stay
from messages.render import t, th

NUMBER = "certificates.number"
MAX_NUMBER = 64


def render(view: CertificateView, locale: str) -> str:
    if view.status == "suspended" and view.suspended_until is not None:
        status = th("certificates.status_suspended_until", locale, until=view.suspended_until)
    else:
        status = th(f"certificates.status_{view.status}", locale)
    surveillance = (
        view.next_surveillance.isoformat()
        if view.next_surveillance
        else th("certificates.none", locale)
    )
    if view.surveillance_overdue:
        surveillance = t("certificates.result_overdue", locale, due=surveillance)
    text = th(
        "certificates.result",
        locale,
        number=view.number,
        holder=view.holder,
        standard=view.standard,
        scope=view.scope or th("certificates.none", locale),
        status=status,
        expires=view.expires_on,
        surveillance=surveillance,
    )
    if view.suspended_until is not None and view.suspended_on is not None:
        text += "\n" + th("certificates.result_suspension", locale, start=view.suspended_on,
                          months=view.suspension_months, until=view.suspended_until)  # fmt: skip
    return text


@stay
async def entry(update: Update, context: Context) -> str | int:
    await common.answer_query(update)
    not_a_certificate = common.desk_of(context).profile.not_a_certificate
    if not_a_certificate:  # ICS: an audit programme, no certificate to look up (seed 002)
        locale = common.locale_of(context)
        await reply(update, context, "findings.not_a_certificate", clause=not_a_certificate,
                    markup=common.main_menu(locale))  # fmt: skip
        return ConversationHandler.END
    await reply(update, context, "certificates.ask_number")
    return NUMBER


@stay
async def number_typed(update: Update, context: Context) -> int | None:
    text = (update.effective_message.text or "").strip() if update.effective_message else ""
    if not text or len(text) > MAX_NUMBER:
        await reply(update, context, "certificates.number_invalid", max=MAX_NUMBER)
        return None
    locale = common.locale_of(context)
    desk = common.desk_of(context)
    if desk.profile.statuses is not None:  # IETP: a status, said plainly when not certification
        return await _status_lookup(update, context, text, locale)
    found = await find(desk, common.uow_of(context), text)
    if not found:
        await reply(
            update, context, "certificates.not_found", number=text, markup=common.main_menu(locale)
        )
    elif len(found) > 1:
        numbers = ", ".join(v.number for v in found)
        await reply(update, context, "certificates.ambiguous", text=text, numbers=numbers)
        return None
    else:
        await common.send(update, context, render(found[0], locale), common.main_menu(locale))
    return ConversationHandler.END


async def link(update: Update, context: Context) -> None:
    """/link CODE: the contact joins the organisation the code was issued for."""
    text = " ".join(context.args or [])
    if not text:
        await reply(update, context, "certificates.link_usage")
        return
    desk, uow = common.desk_of(context), common.uow_of(context)
    contact = common.contact_of(context)
    outcome = await contacts.link_with_code(desk, uow, contact.id, text)
    if outcome.status == "locked":
        await reply(update, context, "certificates.link_locked")
    elif outcome.status == "wrong":
        await reply(update, context, "certificates.link_wrong", left=outcome.attempts_left)
    else:
        numbers = ", ".join(outcome.numbers)
        user = update.effective_user
        loc = desk.settings.default_locale
        who = {"name": user.full_name if user else "", "user_id": user.id if user else ""}
        notice = th("certificates.link_staff_notice", loc, holder=outcome.holder,
                    numbers=numbers, **who)  # fmt: skip
        await queue_for_staff(desk, uow.session, key=f"link:{update.update_id}", text=notice)
        menu = common.main_menu(common.locale_of(context))
        await reply(update, context, "certificates.link_done", holder=outcome.holder,
                    numbers=numbers, markup=menu)  # fmt: skip


async def _status_lookup(update: Update, context: Context, text: str, locale: str) -> int:
    desk = common.desk_of(context)
    try:
        shown = await statuses.show(desk, common.uow_of(context), text, desk.profile)
    except LookupError:
        await reply(
            update, context, "certificates.not_found", number=text, markup=common.main_menu(locale)
        )
        return ConversationHandler.END
    if shown["valid"]:
        key = "statuses.result_valid"
    else:
        key = (
            "statuses.result_lapsed" if shown["certification"] else "statuses.result_not_certified"
        )
    body = th(
        key, locale, number=shown["number"], holder=shown["holder"],
        status=th(f"statuses.status_{shown['status']}", locale), expires=shown["expires_on"],
        clause=shown["clause"],
    )  # fmt: skip
    if "reapply_from" in shown:
        body += "\n" + th("statuses.reapply_from", locale, date=shown["reapply_from"])
    await common.send(update, context, body, common.main_menu(locale))
    return ConversationHandler.END


def register(app: Application, desk: Desk) -> None:
    common.conversation(
        app,
        "certificates",
        common.Group.CERTIFICATE,
        entry_points=[
            CallbackQueryHandler(entry, pattern=rf"^{common.MENU_CERTIFICATE}$"),
            CommandHandler("certificate", entry),
        ],
        states={
            NUMBER: [
                MessageHandler(common.text_input(), number_typed),
                common.not_a_button("certificates.ask_number"),
            ]
        },
    )
    # Its own group, after the flows: /link works whatever conversation the contact was in.
    private = filters.ChatType.PRIVATE
    app.add_handler(CommandHandler("link", stay(link), filters=private), group=common.Group.LINK)


_ = LINK_MAX_FAILURES  # the limit the texts speak of ("attempts left")
