"""Corrective actions (issue 12): a contact of a certified organisation sees its open findings —
what to correct, by when, under which clause — and sends evidence for one: several files,
each checked on its bytes as application documents are, then a note (or "submit"). Staff are
alerted through the outbox.

Registered in bot.main.app.HANDLER_MODULES (the main menu's MENU_FINDINGS button and /findings
start it).
"""

from __future__ import annotations

from typing import Any

from telegram import Update
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, MessageHandler, filters

from bot.desk import Desk
from bot.services import findings as service
from handlers.telegram import common
from handlers.telegram.common import Context, reply, stay
from handlers.telegram.context import MENU_FINDINGS
from handlers.telegram.uploads import checked_upload, mb
from messages.render import th

LIST, FILES = "findings.list", "findings.files"
PREFIX = "fa:"
DONE, BACK = "fa:done", "fa:back"
MAX_NOTE = 2000
MAX_FILES = 10  # per submission: enough for a policy, a licence and photos
_FINDING = "findings_id"  # user_data: the finding evidence is being gathered for
_FILES = "findings_files"  # user_data: [[stored_file id, shown name], …] gathered so far


def render_item(f: service.FindingView, locale: str) -> str:
    lines = [
        th(
            "findings.item",
            locale,
            number=f.certificate,
            grade=th(f"findings.grade_{f.grade}", locale),
            status=th(f"findings.status_{f.status}", locale),
            due=f.due.isoformat(),
            clause=f.clause,
            text=f.text,
        )
    ]
    if f.reason:
        lines.append(th("findings.item_reason", locale, reason=f.reason))
    return "\n".join(lines)


async def _show_list(update: Update, context: Context) -> str | int:
    locale = common.locale_of(context)
    await common.organisation(context)  # refreshes the contact (its organisation link)
    found = await service.open_for(
        common.desk_of(context), common.uow_of(context), common.contact_of(context)
    )
    if not found:
        await reply(update, context, "findings.none", markup=common.main_menu(locale))
        return -1  # ConversationHandler.END
    parts = [th("findings.list_title", locale, count=len(found))]
    parts += [f"<b>{n}.</b> {render_item(f, locale)}" for n, f in enumerate(found, 1)]
    parts.append(th("findings.pick", locale))
    buttons = [(f"{n}", f"{PREFIX}{f.id}") for n, f in enumerate(found, 1)]
    rows = [buttons[k : k + 5] for k in range(0, len(buttons), 5)]
    rows.append([(th("menu.btn_menu", locale), common.MENU_MAIN)])
    await common.send(update, context, "\n\n".join(parts), common.keyboard(rows))
    return LIST


@stay
async def entry(update: Update, context: Context) -> str | int:
    await common.answer_query(update)
    return await _show_list(update, context)


def _gathered(context: Context) -> list[list[Any]]:
    data = context.user_data if context.user_data is not None else {}
    return list(data.get(_FILES) or [])


@stay
async def chosen(update: Update, context: Context) -> str | None:
    query = update.callback_query
    assert query is not None and query.data is not None
    locale = common.locale_of(context)
    try:
        finding_id = int(query.data.removeprefix(PREFIX))
        f = await service.finding_for(
            common.desk_of(context), common.uow_of(context), common.contact_of(context), finding_id
        )
    except (ValueError, service.Refusal):
        await query.answer(th("applicant.stale_button", locale))
        return None
    await query.answer()
    context.user_data[_FINDING] = finding_id  # type: ignore[index]
    context.user_data[_FILES] = []  # type: ignore[index]
    limit = common.desk_of(context).settings.max_upload_bytes
    text = "\n\n".join(
        [
            render_item(f, locale),
            th("findings.rule", locale, clause=f.rule_clause),
            th("findings.send_files", locale, limit=mb(limit), max=MAX_FILES),
        ]
    )
    await common.send(update, context, text, _files_keyboard(locale))
    return FILES


def _files_keyboard(locale: str) -> Any:
    return common.keyboard(
        [[(th("findings.btn_submit", locale), DONE), (th("menu.btn_back", locale), BACK)]]
    )


@stay
async def uploaded(update: Update, context: Context) -> str | int | None:
    """A file or photo: size first (before downloading), then its bytes, as documents.py."""
    message = update.effective_message
    assert message is not None
    desk = common.desk_of(context)
    if (context.user_data or {}).get(_FINDING) is None:
        return await _restart(update, context)
    gathered = _gathered(context)
    if len(gathered) >= MAX_FILES:
        await reply(update, context, "findings.too_many", max=MAX_FILES)
        return None
    checked = await checked_upload(update, context)
    if checked is None:
        return None
    data, name, kind = checked
    stored = await service.store_upload(desk, common.uow_of(context), data, kind)
    gathered.append([stored, name])
    context.user_data[_FILES] = gathered  # type: ignore[index]
    locale = common.locale_of(context)
    await reply(
        update, context, "findings.file_received", name=name, count=len(gathered),
        markup=_files_keyboard(locale),
    )  # fmt: skip
    return None


async def _restart(update: Update, context: Context) -> str | int:
    """After a restart the chosen finding is gone from memory: show the list again."""
    return await _show_list(update, context)


async def _submit(update: Update, context: Context, note: str | None) -> str | int | None:
    data = context.user_data if context.user_data is not None else {}
    finding_id = data.get(_FINDING)
    if finding_id is None:
        return await _restart(update, context)
    gathered = _gathered(context)
    if not gathered:
        await reply(update, context, "findings.need_file", markup=_files_keyboard(
            common.locale_of(context)))  # fmt: skip
        return None
    try:
        f = await service.submit_evidence(
            common.desk_of(context), common.uow_of(context), common.contact_of(context),
            finding_id, [(int(i), str(n)) for i, n in gathered], note,
        )  # fmt: skip
    except service.Refusal as refused:
        locale = common.locale_of(context)
        await reply(update, context, refused.key, markup=common.main_menu(locale))
        return -1
    data.pop(_FINDING, None)
    data.pop(_FILES, None)
    locale = common.locale_of(context)
    await reply(
        update, context, "findings.submitted", number=f.certificate, clause=f.clause,
        count=len(gathered), markup=common.main_menu(locale),
    )  # fmt: skip
    return -1


@stay
async def note_typed(update: Update, context: Context) -> str | int | None:
    message = update.effective_message
    text = " ".join((message.text or "").split()) if message else ""
    return await _submit(update, context, text[:MAX_NOTE] or None)


@stay
async def done(update: Update, context: Context) -> str | int | None:
    await common.answer_query(update)
    return await _submit(update, context, None)


@stay
async def back(update: Update, context: Context) -> str | int:
    await common.answer_query(update)
    return await _show_list(update, context)


def register(app: Application, desk: Desk) -> None:
    common.conversation(
        app,
        "findings",
        common.Group.FINDINGS,
        entry_points=[
            CallbackQueryHandler(entry, pattern=rf"^{MENU_FINDINGS}$"),
            CommandHandler("findings", entry),
        ],
        states={
            LIST: [
                CallbackQueryHandler(chosen, pattern=rf"^{PREFIX}\d+$"),
                common.not_a_button(),
            ],
            FILES: [
                MessageHandler(filters.Document.ALL | filters.PHOTO, uploaded),
                MessageHandler(common.text_input(), note_typed),
                CallbackQueryHandler(done, pattern=rf"^{DONE}$"),
                CallbackQueryHandler(back, pattern=rf"^{BACK}$"),
            ],
        },
    )


__all__ = ["register", "render_item"]
