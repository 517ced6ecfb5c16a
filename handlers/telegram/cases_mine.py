"""A complainant's own cases: `/mycases` to follow them, add information, give a name and
contact, or withdraw.

A user only ever reaches their own cases: each button and typed reference is checked against
the user, and someone else's reference gets the same answer as one that does not exist.
Thin: every decision is bot.services.cases'; every text is messages/catalogs/cases.toml.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from telegram import Update
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ConversationHandler,
    MessageHandler,
    filters,
)

from bot.clock import SHANGHAI
from bot.desk import Desk
from bot.domain.refs import button_ref, normalise_ref
from bot.services import cases
from bot.services.cases import CaseRefused
from handlers.telegram import common
from handlers.telegram.cases_common import (
    TEXT_LIMIT,
    keep_upload,
    kept_text,
    pressed,
    say,
    say_refused,
    text_of,
    typed,
    uploaded,
    user_id,
)
from handlers.telegram.common import Context, desk_of, keyboard, locale_of, send, stay, uow_of
from messages.render import t, th
from storage.models import Case
from storage.unit_of_work import UnitOfWork

# States of the follow-up flow from /mycases.
INFO = "cases.info"
ID_NAME = "cases.id_name"
ID_CONTACT = "cases.id_contact"
FOLLOW = "case_follow"  # user_data: the case a follow-up is about, and a typed name

# A service call on one of the user's own cases, locked: (uow, case, actor) -> anything.
OwnAction = Callable[[UnitOfWork, Case, str], Awaitable[object]]


def _status(case: Case, loc: str) -> str:
    status = t(f"cases.status_{case.status}", loc)
    if case.incomplete and case.closed_at is None:
        status += t("cases.status_incomplete", loc)
    return status


@stay
async def my_cases(update: Update, context: Context) -> None:
    """/mycases [REF]: the user's own cases with status and next date, or one of them."""
    if context.args:
        await _show(update, context, normalise_ref(context.args[0]) or "")
        return
    loc = locale_of(context)
    mine = await cases.cases_of_user(uow_of(context), user_id(update))
    if not mine:
        await say(update, context, "cases.mycases_none")
        return
    lines = [th("cases.mycases_head", loc)]
    for case, due in mine:
        nxt = "" if due is None else t("cases.mycases_next", loc, due=cases.format_date(due, loc))
        lines.append(
            th(
                "cases.mycases_line",
                loc,
                ref=case.ref,
                kind=cases.kind_name(case.kind, loc),
                status=_status(case, loc),
                next=nxt,
            )
        )
    lines.append(th("cases.mycases_pick", loc))
    markup = keyboard([[(case.ref, f"mycase:show:{case.ref}")] for case, _ in mine[:20]])
    await common.answer_query(update)
    await send(update, context, "\n".join(lines), markup)


@stay
async def show_pressed(update: Update, context: Context) -> None:
    await _show(update, context, button_ref(pressed(update)))


async def _show(update: Update, context: Context, ref: str) -> None:
    loc = locale_of(context)
    record = await cases.own_case_record(uow_of(context), user_id(update), ref)
    if record is None:
        await say(update, context, "cases.not_found")
        return
    case = record.case
    open_ = [d for d in record.deadlines if d.closed_at is None]
    text = cases.th_with_lines(
        "cases.case_detail",
        loc,
        {"deadlines": cases.deadline_lines(open_, loc, as_html=True)},
        kind=cases.kind_name(case.kind, loc),
        ref=case.ref,
        status=_status(case, loc),
        received=cases.format_date(case.created_at.astimezone(SHANGHAI).date(), loc),
    )
    rows: list[list[tuple[str, str]]] = []
    if case.closed_at is None:
        rows.append([(t("cases.btn_add_info", loc), f"mycase:info:{case.ref}")])
        if case.incomplete:
            rows.append([(t("cases.btn_identity", loc), f"mycase:id:{case.ref}")])
        rows.append([(t("cases.btn_withdraw", loc), f"mycase:withdraw:{case.ref}")])
    await common.answer_query(update)
    await send(update, context, text, keyboard(rows) if rows else None)


async def _follow_up(update: Update, context: Context, question: str, state: str) -> str | int:
    """Start a follow-up on one of the user's own cases (the button's); ask `question`."""
    case = await cases.own_case(uow_of(context), user_id(update), button_ref(pressed(update)))
    if case is None:
        await say(update, context, "cases.not_found")
        return ConversationHandler.END
    assert context.user_data is not None
    context.user_data[FOLLOW] = {"ref": case.ref}
    await say(update, context, question)
    return state


async def _on_own_case(update: Update, context: Context, ref: str, action: OwnAction) -> bool:
    """Run a service action on the user's own case `ref`, locked in the update's unit of work
    (which commits before any answer). False, the user told why, when the case is not theirs
    (as if it did not exist) or the rules refuse."""
    uow = uow_of(context)
    case = await cases.lock_own_case(uow, user_id(update), ref)
    if case is None:
        await say(update, context, "cases.not_found")
        return False
    try:
        await action(uow, case, f"complainant:telegram:{user_id(update)}")
    except CaseRefused as refused:
        await say_refused(update, context, refused)
        return False
    return True


@stay
async def ask_info(update: Update, context: Context) -> str | int:
    return await _follow_up(update, context, "cases.ask_add_info", INFO)


@stay
async def info_sent(update: Update, context: Context) -> str | int:
    """Further information (text or a file) for one of the user's own cases."""
    desk = desk_of(context)
    assert context.user_data is not None
    ref = context.user_data.get(FOLLOW, {}).get("ref", "")
    message = update.effective_message
    assert message is not None
    attachments = []
    if message.document is not None or message.photo:
        kept = await keep_upload(update, context)
        if kept is None:
            return INFO
        attachments.append(kept)
    text = await kept_text(update, context, text_of(update), TEXT_LIMIT)

    async def add(uow: UnitOfWork, case: Case, actor: str) -> object:
        return await cases.add_information(desk, uow, case, actor, text, attachments)

    if await _on_own_case(update, context, ref, add):
        await say(update, context, "cases.info_added", ref=ref)
    context.user_data.pop(FOLLOW, None)
    return ConversationHandler.END


@stay
async def ask_identity(update: Update, context: Context) -> str | int:
    return await _follow_up(update, context, "cases.ask_identity_name", ID_NAME)


@stay
async def identity_name(update: Update, context: Context) -> str:
    assert context.user_data is not None
    context.user_data.setdefault(FOLLOW, {})["name"] = await kept_text(
        update, context, text_of(update), 200
    )
    await say(update, context, "cases.ask_identity_contact")
    return ID_CONTACT


@stay
async def identity_contact(update: Update, context: Context) -> str | int:
    desk = desk_of(context)
    assert context.user_data is not None
    parsed = cases.parse_contact(text_of(update))
    if parsed is None:
        await say(update, context, "cases.bad_contact")
        return ID_CONTACT
    follow = context.user_data.pop(FOLLOW, {})
    ref, name = follow.get("ref", ""), follow.get("name")
    if not name:  # the flow was restarted half-way: nothing to record
        await say(update, context, "cases.not_found")
        return ConversationHandler.END

    async def identify(uow: UnitOfWork, case: Case, actor: str) -> object:
        email, phone = parsed
        return await cases.provide_identity(
            desk, uow, case, actor, name=name, email=email, phone=phone
        )

    if await _on_own_case(update, context, ref, identify):
        await say(update, context, "cases.identity_saved", ref=ref)
    return ConversationHandler.END


@stay
async def ask_withdraw(update: Update, context: Context) -> None:
    case = await cases.own_case(uow_of(context), user_id(update), button_ref(pressed(update)))
    if case is None:
        await say(update, context, "cases.not_found")
        return
    loc = locale_of(context)
    markup = keyboard([[(t("cases.btn_confirm_withdraw", loc), f"mycase:withdraw_yes:{case.ref}")]])
    await say(update, context, "cases.confirm_withdraw", markup, ref=case.ref)


@stay
async def withdraw_confirmed(update: Update, context: Context) -> None:
    """Withdraw one's own case; the written confirmation follows through the outbox."""
    desk = desk_of(context)

    async def withdraw(uow: UnitOfWork, case: Case, actor: str) -> object:
        return await cases.withdraw(desk, uow, case, actor)

    if await _on_own_case(update, context, button_ref(pressed(update)), withdraw):
        # Answering the button is the first request out: the unit commits before it.
        await common.answer_query(update)


def register(app: Application, desk: Desk) -> None:
    """The follow-up flow (in its own conversation group), then /mycases and its buttons."""
    private = filters.ChatType.PRIVATE & filters.UpdateType.MESSAGE
    text = typed()
    common.conversation(
        app,
        "cases_follow_up",
        common.Group.CASES_FOLLOW_UP,
        entry_points=[
            CallbackQueryHandler(ask_info, pattern=r"^mycase:info:"),
            CallbackQueryHandler(ask_identity, pattern=r"^mycase:id:"),
        ],
        states={
            INFO: [MessageHandler(text | uploaded(), info_sent)],
            ID_NAME: [MessageHandler(text, identity_name)],
            ID_CONTACT: [MessageHandler(text, identity_contact)],
        },
    )
    group = common.Group.MY_CASES
    app.add_handler(CommandHandler("mycases", my_cases, filters=private), group=group)
    app.add_handler(CallbackQueryHandler(show_pressed, pattern=r"^mycase:show:"), group=group)
    app.add_handler(CallbackQueryHandler(ask_withdraw, pattern=r"^mycase:withdraw:"), group=group)
    app.add_handler(
        CallbackQueryHandler(withdraw_confirmed, pattern=r"^mycase:withdraw_yes:"), group=group
    )


__all__ = ["register"]
