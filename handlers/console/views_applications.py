"""Applications: the register, one application's file, its documents (viewed in the browser or
downloaded), reviewing them, moving the stage and issuing the certificate."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date

from starlette.responses import RedirectResponse, Response

from bot.domain.application_moves import MoveRefused
from bot.domain.applications import STAGES, StageError
from bot.domain.staff import Role, may
from bot.services import application_desk, certificate_issue
from handlers.console.views_cases import file_response
from handlers.console.web import Ctx, view
from messages.render import t
from storage.models import Application, Document


def _ref(ctx: Ctx) -> str:
    return str(ctx.request.path_params["ref"]).strip().upper()


def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


def _not_found(ctx: Ctx) -> Response:
    return ctx.page("error.html", status=404, message=t("console.not_found", ctx.loc))


@view()
async def register(ctx: Ctx) -> Response:
    stage = ctx.request.query_params.get("stage")
    stage = stage if stage in STAGES else None
    return ctx.page(
        "applications.html",
        rows=await application_desk.register(ctx.uow, stage),
        stages=STAGES,
        stage=stage,
        stage_name=lambda s: t(f"application.stage_{s}", ctx.loc),
    )


@view()
async def application_file(ctx: Ctx) -> Response:
    found = await application_desk.application_file(ctx.desk, ctx.uow, _ref(ctx))
    if found is None:
        return _not_found(ctx)
    by_id = {d.id: d for d in found.documents}
    today = ctx.desk.clock.today()
    return ctx.page(
        "application.html",
        a=found,
        app=found.application,
        docs=by_id,
        stage_name=lambda s: t(f"application.stage_{s}", ctx.loc),
        item_name=lambda i: t(f"documents.{i}", ctx.loc),
        actor_name=lambda a: found.names.get(a or "", a or t("console.actor_system", ctx.loc)),
        may_decide=may(ctx.member.role, Role.DECIDER),
        default_expiry=certificate_issue.default_expiry(ctx.desk, today),
    )


@view()
async def document_file(ctx: Ctx) -> Response:
    found = await application_desk.document(
        ctx.uow, _ref(ctx), int(ctx.request.path_params["doc_id"])
    )
    return file_response(ctx, *found) if found else _not_found(ctx)


@view()
async def document_of(ctx: Ctx) -> Response:
    """A document by id (the staff alert links here): to its application's file."""
    doc = await ctx.uow.session.get(Document, int(ctx.request.path_params["doc_id"]))
    if doc is None:
        return _not_found(ctx)
    app = await ctx.uow.session.get(Application, doc.application_id)
    if app is None:
        return _not_found(ctx)
    return RedirectResponse(f"/applications/{app.ref}#document-{doc.id}", status_code=303)


async def _act(ctx: Ctx, action: Callable[[], Awaitable[str]]) -> Response:
    url = f"/applications/{_ref(ctx)}"
    try:
        done = await action()
    except MoveRefused as refused:
        await ctx.uow.rollback()
        return ctx.back(url, "error", t(refused.key, ctx.loc, **refused.args_))
    except StageError:
        await ctx.uow.rollback()
        return ctx.back(url, "error", t("console.app_move_not_allowed", ctx.loc, ref=_ref(ctx)))
    except LookupError:
        await ctx.uow.rollback()
        return _not_found(ctx)
    return ctx.back(url, "ok", done)


@view()
async def review(ctx: Ctx) -> Response:
    ref, doc_id = _ref(ctx), int(ctx.request.path_params["doc_id"])
    accept = ctx.field("decision") == "accept"
    reason = ctx.field("reason").strip()[:1000]

    async def run() -> str:
        status = await application_desk.review(
            ctx.desk, ctx.uow, ref, doc_id, ctx.member, accept=accept, reason=reason
        )
        if status.startswith("already_"):
            raise MoveRefused("console.app_doc_reviewed", ref=ref)
        return t(f"console.done_doc_{status}", ctx.loc, ref=ref)

    return await _act(ctx, run)


@view()
async def move(ctx: Ctx) -> Response:
    ref, target = _ref(ctx), ctx.field("target")
    reason = ctx.field("reason").strip()[:2000]
    team = [w for w in ctx.field("audit_team").replace("，", ",").replace("、", ",").split(",")]

    async def run() -> str:
        await application_desk.move(
            ctx.desk, ctx.uow, ref, ctx.member, target, reason=reason, audit_team=team
        )
        stage = t(f"application.stage_{target}", ctx.loc)
        return t("console.done_app_moved", ctx.loc, ref=ref, stage=stage)

    return await _act(ctx, run)


@view(Role.DECIDER)
async def issue(ctx: Ctx) -> Response:
    ref = _ref(ctx)
    found = await application_desk.application_file(ctx.desk, ctx.uow, ref)
    if found is None or found.application.id is None:
        return _not_found(ctx)
    app_id = found.application.id

    async def run() -> str:
        issued = await certificate_issue.issue_certificate(
            ctx.desk,
            ctx.uow,
            app_id,
            ctx.member,
            number=ctx.field("number"),
            decided_on=_day(ctx.field("decided_on")),
            expires_on=_day(ctx.field("expires_on")),
            scope=ctx.field("scope")[:2000] or None,
        )
        return t("console.done_cert_issued", ctx.loc, ref=ref, number=issued.certificate.number)

    return await _act(ctx, run)
