"""Application documents: the checklist with progress, uploads checked on the bytes, replace.

Opening the checklist creates nothing: without an application the applicant sees what will be
needed and chooses to start one (`dc:go:<scheme>`); only then is it created and staff told.
"""

from __future__ import annotations

from typing import Any

from telegram import Update
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, MessageHandler, filters

from bot.desk import Desk
from bot.domain import applications as rules
from bot.services import applications as apps
from handlers.telegram import common
from handlers.telegram.common import Context, reply, stay
from handlers.telegram.uploads import checked_upload, mb
from messages.render import th
from storage.models import Application as ApplicationRow

ORG, SCHEME, LIST, FILE = "documents.org", "documents.scheme", "documents.list", "documents.file"
START = "documents.start"  # the checklist to expect, and the choice to start an application
_ITEM = "documents_item"  # user_data: the item an upload is for (an input in progress)

_MARKS = {None: "⬜", "received": "📄", "accepted": "✅", "rejected": "❌"}


def render_checklist(p: rules.Progress, ref: str, locale: str) -> str:
    lines = [
        th("application.checklist_title", locale, ref=ref),
        th("application.progress", locale, received=p.received, accepted=p.accepted, total=p.total),
        "",
    ]
    for n, item in enumerate(p.items, 1):
        title = th(f"documents.{item.item_id}", locale)
        lines.append(f"{_MARKS[item.status]} {n}. {title}")
        if item.status == "rejected":
            reason = th(f"application.reason_{item.reason}", locale) if item.reason else "—"
            lines.append("    " + th("application.status_rejected", locale, reason=reason))
        elif item.status is not None:
            lines.append(
                "    "
                + th(f"application.status_{item.status}", locale, name=item.original_name or "")
            )
    lines += ["", th("application.pick_item", locale)]
    return "\n".join(lines)


def _checklist_keyboard(p: rules.Progress, locale: str) -> Any:
    rows = [[(f"{_MARKS[i.status]} {n}", f"dc:{i.item_id}") for n, i in enumerate(p.items, 1)]]
    rows = [rows[0][k : k + 5] for k in range(0, len(rows[0]), 5)]
    rows.append([(th("menu.btn_menu", locale), common.MENU_MAIN)])
    return common.keyboard(rows)


async def _application(context: Context) -> tuple[ApplicationRow, Any] | None:
    snap = await apps.snapshot(
        common.desk_of(context), common.uow_of(context), common.contact_of(context).id or 0
    )
    return (snap.application, snap) if snap else None


async def _show(update: Update, context: Context) -> str:
    snap = await apps.snapshot(
        common.desk_of(context), common.uow_of(context), common.contact_of(context).id or 0
    )
    assert snap is not None
    locale = common.locale_of(context)
    text = render_checklist(snap.progress, snap.application.ref, locale)
    await common.send(update, context, text, _checklist_keyboard(snap.progress, locale))
    return LIST


async def _open(update: Update, context: Context, org: Any, scheme: str | None) -> str:
    desk = common.desk_of(context)
    schemes = desk.profile.body.schemes
    if scheme is None:
        answers = org.eligibility_answers or {}
        scheme = answers.get("_scheme") if len(schemes) > 1 else schemes[0]
    snap = await apps.snapshot(desk, common.uow_of(context), common.contact_of(context).id or 0)
    if (snap is None or snap.application.stage == rules.NOT_ACCEPTED) and scheme is None:
        locale = common.locale_of(context)
        rows = [[(s, f"dc:s:{s}")] for s in schemes]
        await common.send(
            update, context, th("applicant.choose_scheme", locale), common.keyboard(rows)
        )
        return SCHEME
    if snap is not None and snap.application.stage != rules.NOT_ACCEPTED:
        return await _show(update, context)
    return await _offer_start(update, context, org, scheme or "")


async def _offer_start(update: Update, context: Context, org: Any, scheme: str) -> str:
    """What an application will need, and a button to start one (nothing is created yet)."""
    desk = common.desk_of(context)
    locale = common.locale_of(context)
    items = rules.progress(desk.profile, scheme, []).items
    lines = [th("documents.start_title", locale, scheme=apps.scheme_name(scheme, locale))]
    lines += [f"{n}. {th(f'documents.{i.item_id}', locale)}" for n, i in enumerate(items, 1)]
    lines += ["", th("documents.start_hint", locale, organisation=org.name)]
    rows = [
        [(th("documents.btn_start", locale), f"dc:go:{scheme}")],
        [(th("menu.btn_menu", locale), common.MENU_MAIN)],
    ]
    await common.send(update, context, "\n".join(lines), common.keyboard(rows))
    return START


@stay
async def start_chosen(update: Update, context: Context) -> str | None:
    """The applicant chooses to start: the application is created now (and staff told)."""
    query = update.callback_query
    assert query is not None and query.data is not None
    await query.answer()
    desk = common.desk_of(context)
    scheme = query.data.removeprefix("dc:go:")
    org = await common.organisation(context)
    if scheme not in desk.profile.body.schemes or org is None:
        return None
    app, created = await apps.open_application(
        desk, common.uow_of(context), common.contact_of(context), org, scheme
    )
    if created:
        await reply(update, context, "application.created", ref=app.ref)
    return await _show(update, context)


@stay
async def entry(update: Update, context: Context) -> str:
    await common.answer_query(update)
    org = await common.organisation(context)
    if org is None:
        await reply(update, context, "applicant.ask_org_name")
        return ORG
    return await _open(update, context, org, None)


@stay
async def org_named(update: Update, context: Context) -> str | None:
    org = await common.name_organisation(update, context)
    return None if org is None else await _open(update, context, org, None)


@stay
async def scheme_chosen(update: Update, context: Context) -> str | None:
    query = update.callback_query
    assert query is not None and query.data is not None
    await query.answer()
    scheme = query.data.removeprefix("dc:s:")
    if scheme not in common.desk_of(context).profile.body.schemes:
        return None
    return await _open(update, context, await common.organisation(context), scheme)


@stay
async def item_chosen(update: Update, context: Context) -> str | None:
    query = update.callback_query
    assert query is not None and query.data is not None
    item_id = query.data.removeprefix("dc:")
    found = await _application(context)
    if found is None:
        await query.answer()
        return None
    _, snap = found
    if item_id not in {i.item_id for i in snap.progress.items}:
        await query.answer(th("applicant.stale_button", common.locale_of(context)))
        return None
    await query.answer()
    context.user_data[_ITEM] = item_id  # type: ignore[index]
    locale = common.locale_of(context)
    limit = common.desk_of(context).settings.max_upload_bytes
    await common.send(
        update,
        context,
        th(
            "application.send_file",
            locale,
            item=th(f"documents.{item_id}", locale),
            limit=mb(limit),
        ),
        common.keyboard([[(th("menu.btn_back", locale), "dc:back")]]),
    )
    return FILE


@stay
async def back_to_list(update: Update, context: Context) -> str:
    await common.answer_query(update)
    return await _show(update, context)


@stay
async def uploaded(update: Update, context: Context) -> str | None:
    """A document or photo for the chosen item: size first (before downloading), then bytes."""
    message = update.effective_message
    assert message is not None
    desk = common.desk_of(context)
    item_id = (context.user_data or {}).get(_ITEM)
    found = await _application(context)
    if item_id is None or found is None:  # after a restart the chosen item is gone
        return await _show(update, context)
    app, snap = found
    checked = await checked_upload(update, context)
    if checked is None:
        return None
    data, name, kind = checked
    await apps.receive_document(
        desk, common.uow_of(context), app, snap.organisation, item_id, data, name, kind
    )
    context.user_data.pop(_ITEM, None)  # type: ignore[union-attr]
    locale = common.locale_of(context)
    await reply(
        update, context, "application.received", item=th(f"documents.{item_id}", locale), name=name
    )
    return await _show(update, context)


def register(app: Application, desk: Desk) -> None:
    common.conversation(
        app,
        "documents",
        common.Group.DOCUMENTS,
        entry_points=[
            CallbackQueryHandler(entry, pattern=rf"^{common.MENU_DOCUMENTS}$"),
            CommandHandler("documents", entry),
        ],
        states={
            ORG: [
                MessageHandler(common.text_input(), org_named),
                common.not_a_button("applicant.ask_org_name"),
            ],
            SCHEME: [CallbackQueryHandler(scheme_chosen, pattern=r"^dc:s:"), common.not_a_button()],
            START: [CallbackQueryHandler(start_chosen, pattern=r"^dc:go:"), common.not_a_button()],
            LIST: [
                CallbackQueryHandler(item_chosen, pattern=r"^dc:(?!s:|go:|back$)"),
                common.not_a_button(),
            ],
            FILE: [
                MessageHandler(filters.Document.ALL | filters.PHOTO, uploaded),
                CallbackQueryHandler(back_to_list, pattern=r"^dc:back$"),
                common.not_a_button("application.expect_file"),
            ],
        },
    )


__all__ = ["register", "render_checklist"]
