"""The home page (what needs doing today) and the outbox page (retry or cancel)."""

from __future__ import annotations

from starlette.responses import Response

from bot.domain.staff import Role
from bot.services import case_words as words
from bot.services import outbox_desk, today
from handlers.console.web import Ctx, view
from messages.render import rule_label, t


@view()
async def home(ctx: Ctx) -> Response:
    found = await today.today(ctx.desk, ctx.uow)
    return ctx.page(
        "today.html",
        d=found,
        rule_label=lambda r: rule_label(r, ctx.loc),
        kind_name=lambda k: t(f"cases.kind_{k}", ctx.loc) if k else "",
        channel_name=lambda ch: words.channel_name(ch, ctx.loc),
    )


@view()
async def outbox(ctx: Ctx) -> Response:
    found = await outbox_desk.attention(ctx.desk, ctx.uow)
    return ctx.page("outbox.html", a=found, channel_name=lambda ch: words.channel_name(ch, ctx.loc))


def _message_id(ctx: Ctx) -> int:
    return int(ctx.request.path_params["message_id"])


@view(Role.ADMIN)
async def retry(ctx: Ctx) -> Response:
    message_id = _message_id(ctx)
    if await outbox_desk.retry(ctx.desk, ctx.uow, message_id, ctx.member):
        return ctx.back("/outbox", "ok", t("console.outbox_retried", ctx.loc, id=message_id))
    return ctx.back("/outbox", "error", t("console.outbox_unchanged", ctx.loc, id=message_id))


@view(Role.ADMIN)
async def cancel(ctx: Ctx) -> Response:
    message_id = _message_id(ctx)
    if await outbox_desk.cancel(ctx.desk, ctx.uow, message_id, ctx.member):
        return ctx.back("/outbox", "ok", t("console.outbox_cancelled", ctx.loc, id=message_id))
    return ctx.back("/outbox", "error", t("console.outbox_unchanged", ctx.loc, id=message_id))
