"""Certificate lookup by number: holder, standard, scope, status, expiry, next surveillance."""

from __future__ import annotations

from telegram import Update
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ConversationHandler,
    MessageHandler,
)

from bot.desk import Desk
from bot.services import statuses
from bot.services.certificates import CertificateView, lookup
from handlers.telegram import common
from handlers.telegram.common import Context, reply, stay
from messages.render import th

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
    return th(
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
    view = await lookup(desk, common.uow_of(context), text)
    if view is None:
        await reply(
            update, context, "certificates.not_found", number=text, markup=common.main_menu(locale)
        )
    else:
        await common.send(update, context, render(view, locale), common.main_menu(locale))
    return ConversationHandler.END


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
