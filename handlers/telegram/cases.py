"""Appeals, complaints and disputes for the public: `/case` (or the menu) to file one,
`/mycases` to follow them, add information, give a name and contact, or withdraw.

Thin: every decision is bot.services.cases'; every text is messages/catalogs/cases.toml. A user
only ever reaches their own cases: each button and typed reference is checked against the
user, and someone else's reference gets the same answer as one that does not exist.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession
from telegram import InlineKeyboardMarkup, Update
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
from bot.services.cases import Attachment, CaseRefused, Complainant
from handlers.telegram import common
from handlers.telegram.common import Context, desk_of, keyboard, locale_of, send, stay
from messages.render import t, th
from storage.models import Case, Channel
from storage.repo import cases as repo

# Conversation states of the filing flow.
KIND = "cases.kind"
DECISION = "cases.decision"
DECISION_DATE = "cases.decision_date"
DECIDED_BY = "cases.decided_by"
CONCERNS = "cases.concerns"
CERTIFIED_ORG = "cases.certified_org"
DESCRIPTION = "cases.description"
FILES = "cases.files"
NAME = "cases.name"
CONTACT = "cases.contact"
CONFIRM = "cases.confirm"
# States of the follow-up flow from /mycases.
INFO = "cases.info"
ID_NAME = "cases.id_name"
ID_CONTACT = "cases.id_contact"

KINDS = ("appeal", "complaint", "dispute")  # in the order shown
WHOM = ("body", "staff", "certified")  # whom a complaint concerns, in the order shown
DRAFT = "case_draft"  # user_data: the answers so far (an input in progress, not business data)
FOLLOW = "case_follow"  # user_data: the case a follow-up is about, and a typed name
TEXT_LIMIT = 4000  # a description is kept whole up to one Telegram message

Step = Callable[[Update, Context], Awaitable[Any]]
# A service call on one of the user's own cases, locked: (session, case, actor) -> anything.
OwnAction = Callable[[AsyncSession, Case, str], Awaitable[object]]


def _draft(context: Context) -> dict[str, Any]:
    assert context.user_data is not None
    draft: dict[str, Any] = context.user_data.setdefault(DRAFT, {"files": []})
    return draft


def needs_draft(step: Step) -> Step:
    """User data is not persisted: after a restart mid-flow the draft is gone, so the step
    starts the flow again instead of failing."""

    @functools.wraps(step)
    async def guarded(update: Update, context: Context) -> Any:
        if "kind" not in (context.user_data or {}).get(DRAFT, {}):
            return await _start(update, context)
        return await step(update, context)

    return guarded


async def _say(
    update: Update,
    context: Context,
    key: str,
    markup: InlineKeyboardMarkup | None = None,
    **a: object,
) -> None:
    """Answer a pressed button, if any, and reply with a catalog text (arguments escaped)."""
    await common.answer_query(update)
    await common.reply(update, context, key, markup=markup, **a)


def _text(update: Update) -> str:
    message = update.effective_message
    return (message.text or message.caption or "").strip() if message else ""


def _skip(loc: str) -> InlineKeyboardMarkup:
    return keyboard([[(t("cases.btn_skip", loc), "case:skip")]])


def _continue(loc: str) -> InlineKeyboardMarkup:
    return keyboard([[(t("cases.btn_continue", loc), "case:files_done")]])


def _pressed(update: Update) -> str:
    """The callback data of the button pressed."""
    query = update.callback_query
    assert query is not None and query.data is not None
    return query.data


def _user_id(update: Update) -> int:
    assert update.effective_user is not None
    return update.effective_user.id


# --- filing ----------------------------------------------------------------------------------


async def _ask_description(update: Update, context: Context) -> str:
    await _say(update, context, "cases.ask_description")
    return DESCRIPTION


async def _start(update: Update, context: Context) -> str:
    assert context.user_data is not None
    context.user_data[DRAFT] = {"files": []}
    loc = locale_of(context)
    markup = keyboard([[(t(f"cases.btn_{kind}", loc), f"case:kind:{kind}")] for kind in KINDS])
    await _say(update, context, "cases.choose_kind", markup)
    return KIND


@stay
async def start(update: Update, context: Context) -> str:
    """/case or the menu's cases button: the three kinds, each in one sentence."""
    return await _start(update, context)


@stay
async def kind_chosen(update: Update, context: Context) -> str:
    kind = _pressed(update).rsplit(":", 1)[1]
    _draft(context)["kind"] = kind
    loc = locale_of(context)
    if kind == "appeal":
        await _say(update, context, "cases.ask_decision")
        return DECISION
    if kind == "complaint":
        markup = keyboard(
            [[(t(f"cases.btn_concerns_{about}", loc), f"case:concerns:{about}")] for about in WHOM]
        )
        await _say(update, context, "cases.ask_concerns", markup)
        return CONCERNS
    await _say(update, context, "cases.ask_event_date")
    return DECISION_DATE


@stay
@needs_draft
async def decision(update: Update, context: Context) -> str:
    _draft(context)["subject"] = _text(update)[:300]
    await _say(update, context, "cases.ask_decision_date")
    return DECISION_DATE


@stay
@needs_draft
async def decision_date(update: Update, context: Context) -> str:
    draft = _draft(context)
    typed = cases.parse_date(_text(update))
    if typed is None:
        await _say(update, context, "cases.bad_date")
        return DECISION_DATE
    if typed > desk_of(context).clock.today():
        await _say(update, context, "cases.future_date")
        return DECISION_DATE
    draft["decided_on"] = typed.isoformat()
    if draft["kind"] == "appeal":
        await _say(update, context, "cases.ask_decided_by", _skip(locale_of(context)))
        return DECIDED_BY
    return await _ask_description(update, context)


@stay
@needs_draft
async def decided_by(update: Update, context: Context) -> str:
    """Who took the decision (and the audit team): they may not handle the appeal."""
    if update.callback_query is None:
        names = [n.strip() for n in _text(update).replace("，", ",").replace("、", ",").split(",")]
        names = [n[:100] for n in names if n]
        if names:
            _draft(context).update(decided_by=names[0], audit_team=names[1:])
    return await _ask_description(update, context)


@stay
@needs_draft
async def concerns(update: Update, context: Context) -> str:
    about = _pressed(update).rsplit(":", 1)[1]
    _draft(context)["concerns"] = about
    if about == "certified":
        await _say(update, context, "cases.ask_certified_org")
        return CERTIFIED_ORG
    return await _ask_description(update, context)


@stay
@needs_draft
async def certified_org(update: Update, context: Context) -> str:
    _draft(context)["concerns_org"] = _text(update)[:300]
    return await _ask_description(update, context)


@stay
@needs_draft
async def description(update: Update, context: Context) -> str:
    _draft(context)["description"] = _text(update)[:TEXT_LIMIT]
    await _say(update, context, "cases.ask_files", _continue(locale_of(context)))
    return FILES


async def _keep_upload(update: Update, context: Context) -> Attachment | None:
    """Download, check and store one uploaded file; say why when it is refused."""
    message = update.effective_message
    assert message is not None
    desk = desk_of(context)
    if message.document is not None:
        tg_file: Any = message.document
        name, size = message.document.file_name, message.document.file_size
    elif message.photo:
        tg_file, name, size = message.photo[-1], "photo.jpg", message.photo[-1].file_size
    else:
        return None
    try:
        # Refused before downloading when the size Telegram reports is enough to tell.
        cases.check_upload_size(desk, size)
        data = bytes(await (await tg_file.get_file()).download_as_bytearray())
        async with desk.sessions() as s:
            attachment = await cases.keep_attachment(desk, s, data, name)
            await s.commit()
    except CaseRefused as refused:
        await send(update, context, refused.html(locale_of(context)))
        return None
    return attachment


@stay
@needs_draft
async def file_sent(update: Update, context: Context) -> str:
    attachment = await _keep_upload(update, context)
    if attachment is not None:
        _draft(context)["files"].append(attachment.to_dict())
        loc = locale_of(context)
        await _say(update, context, "cases.file_received", _continue(loc), name=attachment.name)
    return FILES


@stay
@needs_draft
async def files_done(update: Update, context: Context) -> str:
    desk = desk_of(context)
    loc = locale_of(context)
    text = th("cases.ask_name", loc)
    if cases.identity_required(desk.profile, _draft(context)["kind"]):
        clause = desk.profile.cases.anonymous_clause or ""
        text += "\n" + th("cases.anonymous_warning", loc, clause=clause)
    await common.answer_query(update)
    await send(update, context, text, _skip(loc))
    return NAME


@stay
@needs_draft
async def name_given(update: Update, context: Context) -> str:
    if update.callback_query is None:
        _draft(context)["name"] = _text(update)[:200]
    await _say(update, context, "cases.ask_contact", _skip(locale_of(context)))
    return CONTACT


@stay
@needs_draft
async def contact_given(update: Update, context: Context) -> str:
    draft = _draft(context)
    loc = locale_of(context)
    if update.callback_query is None:
        parsed = cases.parse_contact(_text(update))
        if parsed is None:
            await _say(update, context, "cases.bad_contact", _skip(loc))
            return CONTACT
        draft["email"], draft["phone"] = parsed
    markup = keyboard(
        [
            [
                (t("cases.btn_confirm", loc), "case:confirm"),
                (t("cases.btn_cancel", loc), "case:cancel"),
            ]
        ]
    )
    await common.answer_query(update)
    await send(update, context, _summary(draft, loc), markup)
    return CONFIRM


def _summary(draft: dict[str, Any], loc: str) -> str:
    none = t("cases.not_given", loc)

    def line(label: str, value: object) -> str:
        shown = str(value) if value not in (None, "") else none
        return th("cases.summary_line", loc, label=t(f"cases.label_{label}", loc), value=shown)

    kind = draft["kind"]
    lines = []
    if kind == "appeal":
        lines.append(line("decision", draft.get("subject")))
    if draft.get("decided_on"):
        lines.append(
            line("decision_date", cases.format_date(date.fromisoformat(draft["decided_on"]), loc))
        )
    if kind == "appeal":
        team = [draft.get("decided_by"), *draft.get("audit_team", [])]
        lines.append(line("decided_by", "、".join(n for n in team if n)))
    if kind == "complaint":
        about = t(f"cases.btn_concerns_{draft.get('concerns', 'body')}", loc)
        if draft.get("concerns_org"):
            about += f" — {draft['concerns_org']}"
        lines.append(line("concerns", about))
    lines.append(line("description", draft.get("description")))
    lines.append(line("files", "、".join(f["name"] for f in draft.get("files", []))))
    lines.append(line("name", draft.get("name")))
    lines.append(line("contact", draft.get("email") or draft.get("phone")))
    return cases.th_with_lines(
        "cases.summary", loc, {"lines": lines}, kind=cases.kind_name(kind, loc)
    )


@stay
@needs_draft
async def confirmed(update: Update, context: Context) -> int:
    """Submit: the case is opened; its written acknowledgement goes out through the outbox."""
    desk = desk_of(context)
    draft = _draft(context)
    chat = update.effective_chat
    assert chat is not None and context.user_data is not None
    decided = draft.get("decided_on")
    concerns_org = draft.get("concerns_org")
    async with desk.sessions() as s:
        opened = await cases.open_case(
            desk,
            s,
            kind=draft["kind"],
            channel=Channel.TELEGRAM,
            complainant=Complainant(
                name=draft.get("name"),
                email=draft.get("email"),
                phone=draft.get("phone"),
                telegram_user_id=_user_id(update),
                telegram_chat_id=chat.id,
                locale=locale_of(context),
            ),
            subject=draft.get("subject") or concerns_org,
            description=draft.get("description") or "",
            attachments=[Attachment(**f) for f in draft.get("files", [])],
            decided_on=date.fromisoformat(decided) if decided else None,
            decided_by=draft.get("decided_by"),
            audit_team=draft.get("audit_team", []),
            concerns=draft.get("concerns"),
            concerns_certificate_no=concerns_org,
        )
        await s.commit()
    context.user_data.pop(DRAFT, None)
    await _say(update, context, "cases.submitted", ref=opened.ref)
    return ConversationHandler.END


@stay
async def cancelled(update: Update, context: Context) -> int:
    """The cancel button on the summary: nothing is submitted."""
    if context.user_data is not None:
        context.user_data.pop(DRAFT, None)
    await _say(update, context, "cases.cancelled")
    return ConversationHandler.END


# --- the user's own cases --------------------------------------------------------------------


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
    desk = desk_of(context)
    loc = locale_of(context)
    async with desk.sessions() as s:
        mine = list(await repo.cases_of_telegram_user(s, _user_id(update)))
        dues = await repo.next_due_dates(s, [c.id for c in mine if c.id is not None])
    if not mine:
        await _say(update, context, "cases.mycases_none")
        return
    lines = [th("cases.mycases_head", loc)]
    for case in mine:
        due = dues.get(case.id or 0)
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
    markup = keyboard([[(case.ref, f"mycase:show:{case.ref}")] for case in mine[:20]])
    await common.answer_query(update)
    await send(update, context, "\n".join(lines), markup)


@stay
async def show_pressed(update: Update, context: Context) -> None:
    await _show(update, context, button_ref(_pressed(update)))


async def _own(update: Update, context: Context, ref: str) -> Case | None:
    async with desk_of(context).sessions() as s:
        return await repo.own_case(s, _user_id(update), ref)


async def _show(update: Update, context: Context, ref: str) -> None:
    desk = desk_of(context)
    loc = locale_of(context)
    async with desk.sessions() as s:
        case = await repo.own_case(s, _user_id(update), ref)
        deadlines = list(await repo.deadlines_of(s, case.id)) if case and case.id else []
    if case is None:
        await _say(update, context, "cases.not_found")
        return
    open_ = [d for d in deadlines if d.closed_at is None]
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
    case = await _own(update, context, button_ref(_pressed(update)))
    if case is None:
        await _say(update, context, "cases.not_found")
        return ConversationHandler.END
    assert context.user_data is not None
    context.user_data[FOLLOW] = {"ref": case.ref}
    await _say(update, context, question)
    return state


async def _on_own_case(update: Update, context: Context, ref: str, action: OwnAction) -> bool:
    """Run a service action on the user's own case `ref`, locked, and commit. False, the user
    told why, when the case is not theirs (as if it did not exist) or the rules refuse."""
    desk = desk_of(context)
    async with desk.sessions() as s:
        case = await repo.own_case(s, _user_id(update), ref)
        if case is None or case.id is None:
            await _say(update, context, "cases.not_found")
            return False
        case = await repo.lock_case(s, case.id)
        try:
            await action(s, case, f"complainant:telegram:{_user_id(update)}")
        except CaseRefused as refused:
            await common.answer_query(update)
            await send(update, context, refused.html(locale_of(context)))
            return False
        await s.commit()
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
        kept = await _keep_upload(update, context)
        if kept is None:
            return INFO
        attachments.append(kept)
    text = _text(update)[:TEXT_LIMIT]

    async def add(s: AsyncSession, case: Case, actor: str) -> object:
        return await cases.add_information(desk, s, case, actor, text, attachments)

    if await _on_own_case(update, context, ref, add):
        await _say(update, context, "cases.info_added", ref=ref)
    context.user_data.pop(FOLLOW, None)
    return ConversationHandler.END


@stay
async def ask_identity(update: Update, context: Context) -> str | int:
    return await _follow_up(update, context, "cases.ask_identity_name", ID_NAME)


@stay
async def identity_name(update: Update, context: Context) -> str:
    assert context.user_data is not None
    context.user_data.setdefault(FOLLOW, {})["name"] = _text(update)[:200]
    await _say(update, context, "cases.ask_identity_contact")
    return ID_CONTACT


@stay
async def identity_contact(update: Update, context: Context) -> str | int:
    desk = desk_of(context)
    assert context.user_data is not None
    parsed = cases.parse_contact(_text(update))
    if parsed is None:
        await _say(update, context, "cases.bad_contact")
        return ID_CONTACT
    follow = context.user_data.pop(FOLLOW, {})
    ref, name = follow.get("ref", ""), follow.get("name")
    if not name:  # the flow was restarted half-way: nothing to record
        await _say(update, context, "cases.not_found")
        return ConversationHandler.END

    async def identify(s: AsyncSession, case: Case, actor: str) -> object:
        email, phone = parsed
        return await cases.provide_identity(
            desk, s, case, actor, name=name, email=email, phone=phone
        )

    if await _on_own_case(update, context, ref, identify):
        await _say(update, context, "cases.identity_saved", ref=ref)
    return ConversationHandler.END


@stay
async def ask_withdraw(update: Update, context: Context) -> None:
    case = await _own(update, context, button_ref(_pressed(update)))
    if case is None:
        await _say(update, context, "cases.not_found")
        return
    loc = locale_of(context)
    markup = keyboard([[(t("cases.btn_confirm_withdraw", loc), f"mycase:withdraw_yes:{case.ref}")]])
    await _say(update, context, "cases.confirm_withdraw", markup, ref=case.ref)


@stay
async def withdraw_confirmed(update: Update, context: Context) -> None:
    """Withdraw one's own case; the written confirmation follows through the outbox."""
    desk = desk_of(context)

    async def withdraw(s: AsyncSession, case: Case, actor: str) -> object:
        return await cases.withdraw(desk, s, case, actor)

    if await _on_own_case(update, context, button_ref(_pressed(update)), withdraw):
        await common.answer_query(update)


def register(app: Application, desk: Desk) -> None:
    """The filing flow and the follow-up flow (each in its own group), and /mycases."""
    private = filters.ChatType.PRIVATE
    text = common.text_input()
    upload = filters.Document.ALL | filters.PHOTO
    skip = r"^case:skip$"
    common.conversation(
        app,
        "cases",
        entry_points=[
            CommandHandler("case", start, filters=private),
            CallbackQueryHandler(start, pattern=rf"^{common.MENU_CASES}$"),
        ],
        states={
            KIND: [
                CallbackQueryHandler(kind_chosen, pattern=rf"^case:kind:({'|'.join(KINDS)})$"),
                common.not_a_button(),
            ],
            DECISION: [MessageHandler(text, decision)],
            DECISION_DATE: [MessageHandler(text, decision_date)],
            DECIDED_BY: [
                MessageHandler(text, decided_by),
                CallbackQueryHandler(decided_by, pattern=skip),
            ],
            CONCERNS: [
                CallbackQueryHandler(concerns, pattern=rf"^case:concerns:({'|'.join(WHOM)})$"),
                common.not_a_button(),
            ],
            CERTIFIED_ORG: [MessageHandler(text, certified_org)],
            DESCRIPTION: [MessageHandler(text, description)],
            FILES: [
                MessageHandler(upload, file_sent),
                CallbackQueryHandler(files_done, pattern=r"^case:files_done$"),
                common.not_a_button(),
            ],
            NAME: [
                MessageHandler(text, name_given),
                CallbackQueryHandler(name_given, pattern=skip),
            ],
            CONTACT: [
                MessageHandler(text, contact_given),
                CallbackQueryHandler(contact_given, pattern=skip),
            ],
            CONFIRM: [
                CallbackQueryHandler(confirmed, pattern=r"^case:confirm$"),
                CallbackQueryHandler(cancelled, pattern=r"^case:cancel$"),
                common.not_a_button(),
            ],
        },
    )
    common.conversation(
        app,
        "cases_follow_up",
        entry_points=[
            CallbackQueryHandler(ask_info, pattern=r"^mycase:info:"),
            CallbackQueryHandler(ask_identity, pattern=r"^mycase:id:"),
        ],
        states={
            INFO: [MessageHandler((text | upload), info_sent)],
            ID_NAME: [MessageHandler(text, identity_name)],
            ID_CONTACT: [MessageHandler(text, identity_contact)],
        },
    )
    group = common.conversation_group(app)  # after the flows, before the global catch-all
    app.add_handler(CommandHandler("mycases", my_cases, filters=private), group=group)
    app.add_handler(CallbackQueryHandler(show_pressed, pattern=r"^mycase:show:"), group=group)
    app.add_handler(CallbackQueryHandler(ask_withdraw, pattern=r"^mycase:withdraw:"), group=group)
    app.add_handler(
        CallbackQueryHandler(withdraw_confirmed, pattern=r"^mycase:withdraw_yes:"), group=group
    )


__all__ = ["register"]
