"""Findings in the console (issue 12): the list with progress per certificate, one finding with
its evidence (files viewable), and the verdict — accept, or reject with a reason. Staff see every
finding; a member account (ICS) only its own factories' (bot.services.findings_access), and a
guessed id of another's is a 404 like a missing one."""

from __future__ import annotations

from urllib.parse import quote

from starlette.responses import FileResponse, Response

from bot.domain.files import JPEG, PDF, PNG
from bot.domain.staff import Role
from bot.services import findings as service
from bot.services import findings_access as access
from handlers.console.web import Ctx, view
from messages.render import t

INLINE_TYPES = {PDF, JPEG, PNG}


def _missing(ctx: Ctx) -> Response:
    return ctx.page("error.html", status=404, message=t("console.not_found", ctx.loc))


@view(Role.MEMBER)
async def register(ctx: Ctx) -> Response:
    rows = await access.visible(ctx.desk, ctx.uow, ctx.member)
    return ctx.page("findings.html", rows=rows)


@view(Role.MEMBER)
async def finding(ctx: Ctx) -> Response:
    finding_id = int(ctx.request.path_params["finding_id"])
    try:
        shown, subs = await access.detail(ctx.desk, ctx.uow, ctx.member, finding_id)
    except service.Refusal:
        return _missing(ctx)
    verifier = access.may_verify(ctx.desk, ctx.member)
    return ctx.page("finding.html", f=shown, subs=subs, verifier=verifier)


@view(Role.MEMBER)
async def evidence_file(ctx: Ctx) -> Response:
    params = ctx.request.path_params
    try:
        row, stored = await access.evidence_file(
            ctx.desk, ctx.uow, ctx.member, int(params["finding_id"]), int(params["file_id"])
        )
    except service.Refusal:
        return _missing(ctx)
    path = (ctx.desk.data_dir / stored.path).resolve()
    if not path.is_relative_to(ctx.desk.data_dir.resolve()) or not path.is_file():
        return _missing(ctx)
    inline = stored.content_type in INLINE_TYPES
    header = f"{'inline' if inline else 'attachment'}; filename=\"file\"; filename*=UTF-8''"
    header += quote(row.original_name)
    return FileResponse(
        path, media_type=stored.content_type, headers={"Content-Disposition": header}
    )


@view(Role.MEMBER)
async def review(ctx: Ctx) -> Response:
    finding_id = int(ctx.request.path_params["finding_id"])
    accept = ctx.field("verdict") == "accept"
    url = f"/findings/{finding_id}"
    try:
        done = await access.review(
            ctx.desk, ctx.uow, ctx.member, finding_id, accept=accept,
            reason=ctx.field("reason").strip() or None,
        )  # fmt: skip
    except service.Refusal as refused:
        if refused.key == access.NOT_FOUND:  # nothing was written; the page needs the member
            return _missing(ctx)
        await ctx.uow.rollback()
        return ctx.back(url, "error", t(refused.key, ctx.loc))
    return ctx.back(url, "ok", t(f"findings.status_{done.status}", ctx.loc))


__all__ = ["evidence_file", "finding", "register", "review"]
