"""Filing an appeal, complaint or dispute: `/case` (or the menu's cases button), one question
at a time, a summary to confirm; the written acknowledgement follows through the outbox.

Thin: every decision is bot.services.cases'; every text is messages/catalogs/cases.toml.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from datetime import date
from typing import Any

from telegram import InlineKeyboardMarkup, Update
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ConversationHandler,
    MessageHandler,
    filters,
)

from bot.desk import Desk
from bot.services import cases
from bot.services.cases import Attachment, Complainant
from handlers.telegram import common
from handlers.telegram.cases_common import (
    TEXT_LIMIT,
    keep_upload,
    kept_text,
    pressed,
    say,
    skip_markup,
    text_of,
    typed,
    uploaded,
    user_id,
)
from handlers.telegram.cases_summary import summary
from handlers.telegram.common import Context, desk_of, keyboard, locale_of, send, stay, uow_of
from messages.render import t, th
from storage.models import Channel

# Conversation states of the filing flow.
KIND = "cases.kind"
DECISION = "cases.decision"
DECISION_DATE = "cases.decision_date"
NOTIFIED_DATE = "cases.notified_date"
DECIDED_BY = "cases.decided_by"
CONCERNS = "cases.concerns"
CERTIFIED_ORG = "cases.certified_org"
DESCRIPTION = "cases.description"
FILES = "cases.files"
NAME = "cases.name"
CONTACT = "cases.contact"
CONFIRM = "cases.confirm"

KINDS = ("appeal", "complaint", "dispute")  # in the order shown
WHOM = ("body", "staff", "certified")  # whom a complaint concerns, in the order shown
SHORT_LIMIT, NAME_LIMIT = 300, 200  # a decision or organisation named; a person's name
DRAFT = "case_draft"  # user_data: the answers so far (an input in progress, not business data)

Step = Callable[[Update, Context], Coroutine[Any, Any, Any]]


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


def _continue(loc: str) -> InlineKeyboardMarkup:
    return keyboard([[(t("cases.btn_continue", loc), "case:files_done")]])


async def _ask_description(update: Update, context: Context) -> str:
    await say(update, context, "cases.ask_description")
    return DESCRIPTION


async def _start(update: Update, context: Context) -> str:
    assert context.user_data is not None
    context.user_data[DRAFT] = {"files": []}
    loc = locale_of(context)
    markup = keyboard([[(t(f"cases.btn_{kind}", loc), f"case:kind:{kind}")] for kind in KINDS])
    await say(update, context, "cases.choose_kind", markup)
    return KIND


@stay
async def start(update: Update, context: Context) -> str:
    """/case or the menu's cases button: the three kinds, each in one sentence."""
    return await _start(update, context)


@stay
async def kind_chosen(update: Update, context: Context) -> str:
    kind = pressed(update).rsplit(":", 1)[1]
    _draft(context)["kind"] = kind
    loc = locale_of(context)
    if kind == "appeal":
        await say(update, context, "cases.ask_decision")
        return DECISION
    if kind == "complaint":
        markup = keyboard(
            [[(t(f"cases.btn_concerns_{about}", loc), f"case:concerns:{about}")] for about in WHOM]
        )
        await say(update, context, "cases.ask_concerns", markup)
        return CONCERNS
    await say(update, context, "cases.ask_event_date")
    return DECISION_DATE


@stay
@needs_draft
async def decision(update: Update, context: Context) -> str:
    _draft(context)["subject"] = await kept_text(update, context, text_of(update), SHORT_LIMIT)
    await say(update, context, "cases.ask_decision_date")
    return DECISION_DATE


async def _typed_date(update: Update, context: Context) -> date | None:
    """The date typed, or None once the user is told why it is not one we can take."""
    typed_date = cases.parse_date(text_of(update))
    if typed_date is None or typed_date > desk_of(context).clock.today():
        await say(update, context, "cases.bad_date" if typed_date is None else "cases.future_date")
        return None
    return typed_date


@stay
@needs_draft
async def decision_date(update: Update, context: Context) -> str:
    draft = _draft(context)
    typed_date = await _typed_date(update, context)
    if typed_date is None:
        return DECISION_DATE
    draft["decided_on"] = typed_date.isoformat()
    if draft["kind"] == "appeal":
        # Two dates: each body's window counts from the one its clause names.
        await say(update, context, "cases.ask_notified_date")
        return NOTIFIED_DATE
    return await _ask_description(update, context)


@stay
@needs_draft
async def notified_date(update: Update, context: Context) -> str:
    """The day the appellant received the decision's notice (BQC §19.1, SGC §八1.3(4))."""
    draft = _draft(context)
    typed_date = await _typed_date(update, context)
    if typed_date is None:
        return NOTIFIED_DATE
    if typed_date < date.fromisoformat(draft["decided_on"]):
        await say(update, context, "cases.notified_before_decision")
        return NOTIFIED_DATE
    draft["notified_on"] = typed_date.isoformat()
    await say(update, context, "cases.ask_decided_by", skip_markup(locale_of(context)))
    return DECIDED_BY


@stay
@needs_draft
async def decided_by(update: Update, context: Context) -> str:
    """Who took the decision (and the audit team): they may not handle the appeal."""
    if update.callback_query is None:
        typed_names = text_of(update).replace("，", ",").replace("、", ",")
        names = [n.strip() for n in typed_names.split(",")]
        names = [await kept_text(update, context, n, NAME_LIMIT) for n in names if n]
        if names:
            _draft(context).update(decided_by=names[0], audit_team=names[1:])
    return await _ask_description(update, context)


@stay
@needs_draft
async def concerns(update: Update, context: Context) -> str:
    about = pressed(update).rsplit(":", 1)[1]
    _draft(context)["concerns"] = about
    if about == "certified":
        await say(update, context, "cases.ask_certified_org")
        return CERTIFIED_ORG
    return await _ask_description(update, context)


@stay
@needs_draft
async def certified_org(update: Update, context: Context) -> str:
    _draft(context)["concerns_org"] = await kept_text(update, context, text_of(update), SHORT_LIMIT)
    return await _ask_description(update, context)


@stay
@needs_draft
async def description(update: Update, context: Context) -> str:
    _draft(context)["description"] = await kept_text(update, context, text_of(update), TEXT_LIMIT)
    await say(update, context, "cases.ask_files", _continue(locale_of(context)))
    return FILES


@stay
@needs_draft
async def description_more(update: Update, context: Context) -> str:
    """Text while files are awaited continues the description (a client sends a text over one
    message's 4,096 characters as several): appended, and the person told."""
    draft = _draft(context)
    whole = "\n".join(p for p in (draft.get("description"), text_of(update)) if p)
    draft["description"] = await kept_text(update, context, whole, TEXT_LIMIT)
    loc = locale_of(context)
    count = len(draft["description"])
    await say(update, context, "cases.description_added", _continue(loc), count=f"{count:,}")
    return FILES


@stay
@needs_draft
async def file_sent(update: Update, context: Context) -> str:
    attachment = await keep_upload(update, context)
    if attachment is not None:
        _draft(context)["files"].append(attachment.to_dict())
        loc = locale_of(context)
        await say(update, context, "cases.file_received", _continue(loc), name=attachment.name)
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
    await send(update, context, text, skip_markup(loc))
    return NAME


@stay
@needs_draft
async def name_given(update: Update, context: Context) -> str:
    if update.callback_query is None:
        _draft(context)["name"] = await kept_text(update, context, text_of(update), NAME_LIMIT)
    await say(update, context, "cases.ask_contact", skip_markup(locale_of(context)))
    return CONTACT


@stay
@needs_draft
async def contact_given(update: Update, context: Context) -> str:
    draft = _draft(context)
    loc = locale_of(context)
    if update.callback_query is None:
        parsed = cases.parse_contact(text_of(update))
        if parsed is None:
            await say(update, context, "cases.bad_contact", skip_markup(loc))
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
    await send(update, context, summary(draft, loc), markup)
    return CONFIRM


@stay
@needs_draft
async def confirmed(update: Update, context: Context) -> int:
    """Submit: the case is opened in the update's unit of work, which commits before the
    answer; its written acknowledgement goes out through the outbox."""
    desk = desk_of(context)
    draft = _draft(context)
    chat = update.effective_chat
    assert chat is not None and context.user_data is not None
    decided, notified = draft.get("decided_on"), draft.get("notified_on")
    concerns_org = draft.get("concerns_org")
    opened = await cases.open_case(
        desk,
        uow_of(context),
        kind=draft["kind"],
        channel=Channel.TELEGRAM,
        complainant=Complainant(
            name=draft.get("name"),
            email=draft.get("email"),
            phone=draft.get("phone"),
            telegram_user_id=user_id(update),
            telegram_chat_id=chat.id,
            locale=locale_of(context),
        ),
        subject=draft.get("subject") or concerns_org,
        description=draft.get("description") or "",
        attachments=[Attachment(**f) for f in draft.get("files", [])],
        decided_on=date.fromisoformat(decided) if decided else None,
        notified_on=date.fromisoformat(notified) if notified else None,
        decided_by=draft.get("decided_by"),
        audit_team=draft.get("audit_team", []),
        concerns=draft.get("concerns"),
        concerns_certificate_no=concerns_org,
    )
    context.user_data.pop(DRAFT, None)
    await say(update, context, "cases.submitted", ref=opened.ref)
    return ConversationHandler.END


@stay
async def cancelled(update: Update, context: Context) -> int:
    """The cancel button on the summary: nothing is submitted."""
    if context.user_data is not None:
        context.user_data.pop(DRAFT, None)
    await say(update, context, "cases.cancelled")
    return ConversationHandler.END


def register(app: Application, desk: Desk) -> None:
    """The filing flow, in a conversation group of its own."""
    private = filters.ChatType.PRIVATE & filters.UpdateType.MESSAGE
    text = typed()
    skip = r"^case:skip$"
    common.conversation(
        app,
        "cases",
        common.Group.CASES,
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
            NOTIFIED_DATE: [MessageHandler(text, notified_date)],
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
                MessageHandler(uploaded(), file_sent),
                MessageHandler(text, description_more),
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


__all__ = ["register"]
