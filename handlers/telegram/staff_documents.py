"""Document review from the staff chat: open the file, accept, or reject with a reason; staff only.

The review prompt itself is queued by bot.services.applications when a document arrives (through the
outbox), with buttons `sd:a:<id>` (accept), `sd:r:<id>` (reject → choose a reason) and `sd:v:<id>`
(the document itself, sent here with sendDocument from the stored file, its caption naming the
checklist item, with the same review buttons under it).
"""

from __future__ import annotations

import asyncio

from telegram import InlineKeyboardMarkup, InputFile, Update
from telegram.constants import ParseMode
from telegram.ext import Application, ApplicationHandlerStop

from bot.desk import Desk
from bot.domain import applications as rules
from bot.services import applications as apps
from bot.services import staff
from handlers.telegram import common
from handlers.telegram.common import Context, Group
from handlers.telegram.staff_gate import StaffButton
from messages.render import th


def _reasons_keyboard(doc_id: int, locale: str) -> InlineKeyboardMarkup:
    rows = [
        [(th(f"application.reason_{r}", locale), f"sd:x:{doc_id}:{r}")]
        for r in rules.REJECT_REASONS
    ]
    rows.append([(th("menu.btn_back", locale), f"sd:b:{doc_id}")])
    return common.keyboard(rows)


def _review_keyboard(doc_id: int, locale: str, view: bool = True) -> InlineKeyboardMarkup:
    rows = [
        [
            (th("application.btn_accept", locale), f"sd:a:{doc_id}"),
            (th("application.btn_reject", locale), f"sd:r:{doc_id}"),
        ]
    ]
    if view:
        rows.append([(th("staff.btn_view_file", locale), f"sd:v:{doc_id}")])
    return common.keyboard(rows)


async def _send_file(update: Update, context: Context, doc_id: int, locale: str) -> None:
    """The uploaded document itself, into the chat the button was pressed in."""
    query = update.callback_query
    assert query is not None and query.message is not None
    found = await apps.review_file(common.desk_of(context), common.uow_of(context), doc_id)
    if found is None:
        await query.answer(th("staff.file_missing", locale), show_alert=True)
        return
    await query.answer()
    data = await asyncio.to_thread(found.path.read_bytes)
    await context.bot.send_document(
        chat_id=query.message.chat.id,
        document=InputFile(data, filename=found.name),
        caption=found.caption,
        parse_mode=ParseMode.HTML,
        reply_markup=_review_keyboard(doc_id, locale, view=False) if found.pending else None,
    )


async def review(update: Update, context: Context) -> None:
    """A staff button on a review prompt."""
    query = update.callback_query
    assert query is not None and query.data is not None and query.message is not None
    parts = query.data.split(":")
    verb, doc_id = parts[1], int(parts[2])
    locale = common.desk_of(context).settings.default_locale
    if verb == "r":
        await query.answer()
        await query.edit_message_reply_markup(_reasons_keyboard(doc_id, locale))
        raise ApplicationHandlerStop
    if verb == "b":
        await query.answer()
        view = getattr(query.message, "document", None) is None  # the file message has no "open"
        await query.edit_message_reply_markup(_review_keyboard(doc_id, locale, view))
        raise ApplicationHandlerStop
    if verb == "v":
        await _send_file(update, context, doc_id, locale)
        raise ApplicationHandlerStop
    user = update.effective_user
    assert user is not None
    # Recorded by directory identity (as the console records it), shown by name.
    actor, by = await staff.telegram_actor(common.uow_of(context), user.id, user.full_name)
    reason = parts[3] if verb == "x" and len(parts) > 3 else None
    if verb == "x" and reason not in rules.REJECT_REASONS:
        await query.answer()
        raise ApplicationHandlerStop
    result = await apps.review_document(
        common.desk_of(context),
        common.uow_of(context),
        doc_id,
        accept=verb == "a",
        reason=reason,
        by=actor,
    )
    await query.answer()
    original = getattr(query.message, "text_html", None) or ""
    if result.status == "accepted":
        note = th("application.staff_accepted", locale, by=by)
    elif result.status == "rejected":
        note = th(
            "application.staff_rejected",
            locale,
            by=by,
            reason=th(f"application.reason_{reason}", locale),
        )
    else:
        note = th("application.staff_already", locale, status=result.status)
    if result.stage == rules.UNDER_REVIEW and result.status == "accepted":
        note += "\n" + th("application.staff_complete", locale, ref=result.ref)
    if getattr(query.message, "document", None) is not None:
        original = getattr(query.message, "caption_html", None) or ""
        await query.edit_message_caption(f"{original}\n\n{note}", reply_markup=None)
    else:
        await query.edit_message_text(f"{original}\n\n{note}", reply_markup=None)
    raise ApplicationHandlerStop


def register(app: Application, desk: Desk) -> None:
    app.add_handler(StaffButton(review, r"^sd:[arxbv]:\d+"), group=Group.STAFF)
