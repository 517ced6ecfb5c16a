"""Eligibility check: the profile's conditions one at a time, Back to change an answer, and a
verdict saved on the applicant's organisation."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from datetime import date
from typing import Any

from telegram import CallbackQuery, Update
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ConversationHandler,
    MessageHandler,
)

from bot.desk import Desk
from bot.domain.eligibility import add_months, questions, verdict
from bot.domain.policy import Condition
from bot.services import applications as apps
from bot.services import eligibility, statuses
from handlers.telegram import common
from handlers.telegram.common import Context, reply, stay
from messages.render import th

ORG, SCHEME, ASK = "eligibility.org", "eligibility.scheme", "eligibility.ask"
SCHEME_KEY = "_scheme"  # in organisation.eligibility_answers, beside the condition ids

_DATE = re.compile(r"^\s*(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?\s*$")
_MONTHS = re.compile(r"^\s*(\d{1,3})\s*(个月|個月|月|months?|mo)?\s*$", re.IGNORECASE)


class BadDate(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def parse_since(text: str, today: date) -> date:
    """ "2026-08-01", "2026/8/1", "2026年8月1日", or months running ("5", "5个月", "5 months")."""
    if m := _DATE.match(text):
        try:
            when = date(int(m[1]), int(m[2]), int(m[3]))
        except ValueError:
            raise BadDate("applicant.date_invalid") from None
    elif m := _MONTHS.match(text):
        when = add_months(today, -int(m[1]))
    else:
        raise BadDate("applicant.date_invalid")
    if when > today:
        raise BadDate("applicant.date_future")
    return when


# --- state kept on the organisation -------------------------------------------------------------


def _scheme(answers: dict[str, Any]) -> str | None:
    return answers.get(SCHEME_KEY)


def _pending(desk: Desk, answers: dict[str, Any]) -> tuple[list[Condition], int]:
    """(the questions of the scheme, index of the first one not answered yet)."""
    qs = questions(desk.profile, _scheme(answers))
    index = next((i for i, c in enumerate(qs) if c.id not in answers), len(qs))
    return qs, index


_CACHE = "eligibility_answers"  # bot_data: org id → its answers as last committed
_CACHE_MAX = 4096


def _cache(context: Context) -> dict[int, dict[str, Any]]:
    """Answers as this process last committed them, so an answer does not re-read what the
    previous one wrote. Only this flow writes them, and only one process polls Telegram (the
    guard's assumption too); filled after commit, so a rolled-back write never shows."""
    cache: dict[int, dict[str, Any]] = context.bot_data.setdefault(_CACHE, {})
    if len(cache) > _CACHE_MAX:
        cache.clear()
    return cache


async def _save(context: Context, answers: dict[str, Any], result: dict[str, Any] | None) -> None:
    """Write the answers (and the verdict) in the update's unit of work; it is committed before
    the reply goes out, so the applicant never sees the next question for an unsaved answer."""
    desk = common.desk_of(context)
    org_id = common.cached_contact(context).organisation_id
    assert org_id is not None  # the flow names the organisation before it asks anything
    now = desk.clock.now() if result else None
    saved, cache = dict(answers), _cache(context)
    uow = common.uow_of(context)
    await eligibility.save_answers(uow, org_id, saved, result, now)
    uow.after_commit(lambda: cache.__setitem__(org_id, saved))


# --- asking ----------------------------------------------------------------------------------


async def _ask(
    update: Update,
    context: Context,
    answers: dict[str, Any],
    *,
    intro: bool = False,
    press: CallbackQuery | None = None,
) -> str | int:
    """Ask the next unanswered question, or give the verdict when all are answered; `press`,
    the button that brought the answer, is acknowledged beside the question (both calls at
    once, after the commit: neither reads or writes the database)."""
    desk = common.desk_of(context)
    locale = common.locale_of(context)
    qs, index = _pending(desk, answers)
    if index == len(qs):
        if press is not None:
            await press.answer()  # the verdict reads and writes first: one call after the other
        return await _verdict(update, context, answers)
    cond = qs[index]
    head = th("applicant.elig_progress", locale, n=index + 1, total=len(qs))
    if intro:  # one message: the explanation travels with the first question
        head = f"{th('applicant.elig_intro', locale, count=len(qs))}\n\n{head}"
    text = f"{head}\n\n{th(f'eligibility.q_{cond.id}', locale)}"
    back = [(th("menu.btn_back", locale), "el:back")]
    if cond.kind == "yes_no":
        rows = [
            [
                (th("menu.btn_yes", locale), f"el:y:{cond.id}"),
                (th("menu.btn_no", locale), f"el:n:{cond.id}"),
            ],
            back,
        ]
    else:
        text += "\n" + th("applicant.date_hint", locale)
        rows = [back]
    await common.commit_before_reply()
    question = common.send(update, context, text, common.keyboard(rows))
    if press is None:
        await question
    else:
        await asyncio.gather(press.answer(), question)
    return ASK


async def _verdict(update: Update, context: Context, answers: dict[str, Any]) -> int:
    desk = common.desk_of(context)
    locale = common.locale_of(context)
    parsed: dict[str, bool | date] = {
        k: date.fromisoformat(v) if isinstance(v, str) else bool(v)
        for k, v in answers.items()
        if k != SCHEME_KEY
    }
    result = verdict(desk.profile, parsed, desk.clock.today(), _scheme(answers))
    await _save(context, answers, result.to_json())
    # A factory in a termination period (IETP) is refused whatever it answered, with the day
    # it may reapply from its own status history.
    org_id = common.cached_contact(context).organisation_id
    again = await statuses.organisation_may_reapply(desk, common.uow_of(context), org_id)
    lines: list[str] = []
    if again is not None:
        lines.append(th("eligibility.verdict_not_eligible", locale))
    elif result.status == "eligible":
        lines.append(th("eligibility.verdict_eligible", locale))
    elif result.status == "eligible_from":
        lines.append(th("eligibility.verdict_eligible_from", locale, date=result.eligible_on))
    else:
        lines.append(th("eligibility.verdict_not_eligible", locale))
    for f in result.failures:
        lines.append("")
        lines.append("• " + th(f"eligibility.fail_{f.id}", locale))
        if f.until is not None and result.status == "not_eligible":
            lines.append("  " + th("applicant.met_from", locale, date=f.until))
        lines.append("  " + th("applicant.clause_line", locale, clause=f.clause))
        if f.absolute:
            lines.append("  " + th("eligibility.absolute_refusal", locale))
    if again is not None:
        lines += ["", "• " + th("statuses.reapply_from", locale, date=again.isoformat())]
    lines += ["", th("applicant.elig_saved", locale)]
    await common.commit_before_reply()
    await common.send(update, context, "\n".join(lines), common.main_menu(locale))
    return ConversationHandler.END


async def _begin(update: Update, context: Context) -> str | int:
    """Fresh answers for the (chosen or only) scheme, then the first question."""
    desk = common.desk_of(context)
    schemes = desk.profile.body.schemes
    if len(schemes) > 1:
        locale = common.locale_of(context)
        rows = [[(apps.scheme_name(s, locale), f"el:s:{s}")] for s in schemes]
        await common.send(
            update, context, th("applicant.choose_scheme", locale), common.keyboard(rows)
        )
        return SCHEME
    answers = {SCHEME_KEY: schemes[0]}
    await _save(context, answers, None)
    return await _ask(update, context, answers, intro=True)


# --- callbacks ---------------------------------------------------------------------------------


@stay
async def entry(update: Update, context: Context) -> str | int:
    """The menu button or /eligibility."""
    await common.answer_query(update)
    if not await common.has_organisation(context):
        await reply(update, context, "applicant.ask_org_name")
        return ORG
    return await _begin(update, context)


@stay
async def org_named(update: Update, context: Context) -> str | int | None:
    org = await common.name_organisation(update, context)
    if org is None:
        return None
    return await _begin(update, context)


@stay
async def scheme_chosen(update: Update, context: Context) -> str | int | None:
    query = update.callback_query
    assert query is not None and query.data is not None
    await query.answer()
    scheme = query.data.removeprefix("el:s:")
    desk = common.desk_of(context)
    if scheme not in desk.profile.body.schemes:
        return None
    answers = {SCHEME_KEY: scheme}
    await _save(context, answers, None)
    return await _ask(update, context, answers, intro=True)


async def _change(
    context: Context, change: Callable[[dict[str, Any], list[Condition], int], bool]
) -> dict[str, Any] | None:
    """Read the answers, let `change` edit them (False: nothing to change), stage the write
    (committed with the update, before the reply). Returns the answers, or None when `change`
    declined."""
    desk = common.desk_of(context)
    org_id = common.cached_contact(context).organisation_id
    if org_id is None:
        return None
    cache = _cache(context)
    uow = common.uow_of(context)
    known = cache.get(org_id)
    answers = dict(known) if known is not None else await eligibility.answers_of(uow, org_id)
    if answers is None:
        return None
    qs, index = _pending(desk, answers)
    if not change(answers, qs, index):
        return None
    saved = dict(answers)
    await eligibility.save_answers(uow, org_id, saved)
    uow.after_commit(lambda: cache.__setitem__(org_id, saved))
    return answers


@stay
async def answered(update: Update, context: Context) -> str | int | None:
    """A yes/no button of the current question (an old question's button is ignored)."""
    query = update.callback_query
    assert query is not None and query.data is not None
    _, verb, cond_id = query.data.split(":", 2)

    def record(answers: dict[str, Any], qs: list[Condition], index: int) -> bool:
        if index >= len(qs) or qs[index].id != cond_id or qs[index].kind != "yes_no":
            return False
        answers[cond_id] = verb == "y"
        return True

    answers = await _change(context, record)
    if answers is None:
        await query.answer(th("applicant.stale_button", common.locale_of(context)))
        return None
    return await _ask(update, context, answers, press=query)


@stay
async def typed(update: Update, context: Context) -> str | int | None:
    """Typed text: the date the system started, when that is the question."""
    desk = common.desk_of(context)
    text = update.effective_message.text if update.effective_message else ""
    problem: list[str] = []

    def record(answers: dict[str, Any], qs: list[Condition], index: int) -> bool:
        if index >= len(qs) or qs[index].kind != "running_since":
            problem.append("menu.use_buttons")
            return False
        try:
            answers[qs[index].id] = parse_since(text or "", desk.clock.today()).isoformat()
        except BadDate as err:
            problem.append(err.key)
            return False
        return True

    answers = await _change(context, record)
    if answers is None:
        await reply(update, context, problem[0] if problem else "menu.use_buttons")
        return None
    return await _ask(update, context, answers)


@stay
async def back(update: Update, context: Context) -> str | int | None:
    """Back: forget the answer before the current question and ask it again."""
    await common.answer_query(update)

    def forget(answers: dict[str, Any], qs: list[Condition], index: int) -> bool:
        if index > 0:
            answers.pop(qs[index - 1].id, None)
        return True

    answers = await _change(context, forget)
    return None if answers is None else await _ask(update, context, answers)


def register(app: Application, desk: Desk) -> None:
    common.conversation(
        app,
        "eligibility",
        common.Group.ELIGIBILITY,
        entry_points=[
            CallbackQueryHandler(entry, pattern=rf"^{common.MENU_ELIGIBILITY}$"),
            CommandHandler("eligibility", entry),
        ],
        states={
            ORG: [
                MessageHandler(common.text_input(), org_named),
                common.not_a_button("applicant.ask_org_name"),
            ],
            SCHEME: [CallbackQueryHandler(scheme_chosen, pattern=r"^el:s:"), common.not_a_button()],
            ASK: [
                CallbackQueryHandler(answered, pattern=r"^el:[yn]:"),
                CallbackQueryHandler(back, pattern=r"^el:back$"),
                MessageHandler(common.text_input(), typed),
                common.not_a_button(),
            ],
        },
    )


__all__ = ["BadDate", "parse_since", "register"]
