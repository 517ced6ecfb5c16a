"""Audit days and cost: headcount, similar sites, then the profile's estimate as a table."""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

from telegram import Update
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ConversationHandler,
    MessageHandler,
)

from bot.desk import Desk
from bot.domain.quote import Quote, QuoteUnavailable, other_fees, quote
from handlers.telegram import common
from handlers.telegram.common import Context, reply, stay
from messages.render import th

HEADCOUNT, SITES = "quote.headcount", "quote.sites"
MAX_HEADCOUNT = 1_000_000
MAX_SITES = 10_000
_NUMBER = re.compile(r"^\s*(\d[\d,，\s]*)\s*(人|个|個)?\s*$")

# Where the typed headcount waits for the sites answer. Not business data: an input in progress.
_HEADCOUNT_KEY = "quote_headcount"


def parse_count(text: str, maximum: int) -> int | None:
    """A whole number from 1 to `maximum` ("1,200", "120人"), else None."""
    m = _NUMBER.match(text)
    if not m:
        return None
    value = int(re.sub(r"[,，\s]", "", m[1]))
    return value if 1 <= value <= maximum else None


def days(value: Fraction) -> str:
    return f"{float(value):g}"


def render(q: Quote, locale: str) -> str:
    """The estimate as a readable table (monospace block), marked as an estimate."""
    lines = [
        th("applicant.quote_title", locale, headcount=q.headcount, sites=q.sites),
        "<pre>",
        th(
            "applicant.quote_days",
            locale,
            initial=days(q.initial_days),
            surveillance=days(q.surveillance_days),
            recertification=days(q.recertification_days),
        ),
    ]
    if q.sites > 1:
        s = q.sites_sampled
        lines.append(
            th(
                "applicant.quote_sites",
                locale,
                initial=s.initial,
                surveillance=s.surveillance,
                recertification=s.recertification,
            )
        )
    if q.fees:
        f = q.fees
        lines.append(
            th(
                "applicant.quote_fees",
                locale,
                application=f"{f['initial']['application']:,}",
                registration=f"{f['initial']['registration']:,}",
                audit=f"{f['initial']['audit']:,}",
                total=f"{f['initial']['total']:,}",
                per_day=f"{f['audit_per_day']:,}",
                surveillance=f"{f['surveillance_per_year']['total']:,}",
                recertification=f"{f['recertification']['total']:,}",
            )
        )
    lines.append("</pre>")
    lines.append(th("applicant.quote_estimate", locale, clause=q.clause))
    if q.borrowed_from:
        lines.append(th("application.quote_borrowed", locale, table=q.borrowed_from))
    if q.rounding_clause:
        # 1/3 and 2/3 rounded to the nearest half day, as the clauses prescribe (5.2 → 5).
        lines.append(th("application.quote_rounding", locale, clause=q.rounding_clause))
    if q.sites > 1:
        lines.append(th("applicant.clause_line", locale, clause=q.sampling_clause))
        if q.site_share_clause:
            share = f"{float(q.site_share):.0%}"
            lines.append(
                th("application.quote_site_share", locale, share=share, clause=q.site_share_clause)
            )
    if q.fees:
        lines.append(th("applicant.clause_line", locale, clause=q.fees["clause"]))
    else:
        lines.append(th("application.quote_no_fees", locale))
    lines.extend(other_fee_lines(list(q.other_fees), locale))
    return "\n".join(lines)


def other_fee_lines(fees: list[dict[str, Any]], locale: str) -> list[str]:
    """Fees besides the schedule (reissued certificates, a pre-audit …), each with its clause."""
    if not fees:
        return []
    lines = [th("application.quote_other_fees", locale)]
    for fee in fees:
        if fee.get("cny") is not None:
            amount = th("application.fee_amount", locale, cny=f"{fee['cny']:,}")
        else:
            share = f"{float(Fraction(fee['fraction_of_initial_audit'])):.0%}"
            amount = th("application.fee_share", locale, share=share)
        name = th(f"application.fee_{fee['id']}", locale)
        lines.append(
            th("application.fee_line", locale, name=name, amount=amount, clause=fee["clause"])
        )
    return lines


@stay
async def entry(update: Update, context: Context) -> str | int:
    await common.answer_query(update)
    desk = common.desk_of(context)
    if desk.profile.audit_time is None:
        locale = common.locale_of(context)
        body = desk.profile.body
        # No table and no fee schedule: said plainly, with the fees the body does publish.
        key = "applicant.quote_unavailable" if desk.profile.fees else "application.quote_none"
        text = "\n".join(
            [
                th(key, locale, body=body.name_zh if locale == "zh_CN" else body.name_en),
                *other_fee_lines(other_fees(desk.profile), locale),
            ]
        )
        await common.send(update, context, text, common.main_menu(locale))
        return ConversationHandler.END
    await reply(update, context, "applicant.quote_ask_headcount")
    return HEADCOUNT


@stay
async def headcount(update: Update, context: Context) -> str | None:
    n = parse_count(update.effective_message.text or "", MAX_HEADCOUNT)  # type: ignore[union-attr]
    if n is None:
        await reply(update, context, "applicant.quote_number_invalid", max=f"{MAX_HEADCOUNT:,}")
        return None
    context.user_data[_HEADCOUNT_KEY] = n  # type: ignore[index]
    await reply(
        update, context, "applicant.quote_ask_sites", markup=common.keyboard([[("1", "qt:1")]])
    )
    return SITES


async def _answer(update: Update, context: Context, sites: int) -> int:
    desk = common.desk_of(context)
    locale = common.locale_of(context)
    n = (context.user_data or {}).pop(_HEADCOUNT_KEY, None)
    if n is None:  # after a restart the typed headcount is gone: ask again
        await reply(update, context, "applicant.quote_ask_headcount")
        return HEADCOUNT  # type: ignore[return-value]
    try:
        result = quote(desk.profile, n, sites)
    except QuoteUnavailable:
        return ConversationHandler.END
    await common.send(update, context, render(result, locale), common.main_menu(locale))
    return ConversationHandler.END


@stay
async def sites_typed(update: Update, context: Context) -> str | int | None:
    n = parse_count(update.effective_message.text or "", MAX_SITES)  # type: ignore[union-attr]
    if n is None:
        await reply(update, context, "applicant.quote_number_invalid", max=f"{MAX_SITES:,}")
        return None
    return await _answer(update, context, n)


@stay
async def one_site(update: Update, context: Context) -> str | int:
    await common.answer_query(update)
    return await _answer(update, context, 1)


def register(app: Application, desk: Desk) -> None:
    common.conversation(
        app,
        "quote",
        common.Group.QUOTE,
        entry_points=[
            CallbackQueryHandler(entry, pattern=rf"^{common.MENU_QUOTE}$"),
            CommandHandler("quote", entry),
        ],
        states={
            HEADCOUNT: [MessageHandler(common.text_input(), headcount), common.not_a_button()],
            SITES: [
                CallbackQueryHandler(one_site, pattern=r"^qt:1$"),
                MessageHandler(common.text_input(), sites_typed),
                common.not_a_button(),
            ],
        },
    )


__all__ = ["parse_count", "register", "render"]
