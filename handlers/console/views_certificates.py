"""The certificate register, one certificate, and what staff do to it
(bot.services.certificate_desk): suspend, withdraw, restore, a link code, the CSV import."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date

from starlette.datastructures import UploadFile
from starlette.responses import Response

from bot.domain.staff import may
from bot.services import certificate_desk as desk_of
from bot.services.certificate_desk import CertFilter, CertificateRefused
from bot.services.certificates_import import RowError
from handlers.console.web import Ctx, view
from messages.render import rule_label, t

MAX_UPLOAD = 20 * 1024 * 1024  # a register of 100,000 rows (about 10 MB) fits


def _filter(ctx: Ctx) -> CertFilter:
    q = ctx.request.query_params
    status = q.get("status") if q.get("status") in desk_of.STATUSES else None
    return CertFilter(
        status=status,
        standard=(q.get("standard") or "").strip() or None,
        expiring=q.get("expiring") == "1",
        overdue=q.get("overdue") == "1",
        q=(q.get("q") or "").strip()[:200] or None,
    )


@view()
async def register(ctx: Ctx) -> Response:
    where = _filter(ctx)
    return ctx.page(
        "certificates.html",
        rows=await desk_of.register(ctx.desk, ctx.uow, where),
        where=where,
        statuses=desk_of.STATUSES,
        standards=await desk_of.standards(ctx.uow),
        expiring_days=desk_of.EXPIRING_DAYS,
        may_import=may(ctx.member.role, desk_of.IMPORT_ROLE),
    )


async def _page(ctx: Ctx, cert_id: int, status: int = 200, **extra: object) -> Response:
    number = await desk_of.number_of(ctx.uow, cert_id)
    found = await desk_of.certificate_page(ctx.desk, ctx.uow, number) if number else None
    if found is None:
        return ctx.page("error.html", status=404, message=t("console.not_found", ctx.loc))
    return ctx.page(
        "certificate.html",
        status=status,
        p=found,
        v=found.view,
        cert_id=cert_id,
        may_decide=may(ctx.member.role, desk_of.DECISION_ROLE),
        rule_label=lambda r: rule_label(r.split(":")[0], ctx.loc),
        actor_name=lambda a: found.names.get(a, a),
        event_text=lambda e: _event_text(e.type, e.data or {}, ctx.loc),
        issued=extra.get("issued"),
    )


def _event_text(type_: str, data: dict[str, object], loc: str) -> str:
    return t(f"console.cert_event_{type_}", loc, **{k: v or "" for k, v in data.items()
                                                     if isinstance(k, str)})  # fmt: skip


@view()
async def by_number(ctx: Ctx) -> Response:
    found = await desk_of.id_of(ctx.uow, ctx.request.query_params.get("n") or "")
    if found is None:
        return ctx.page("error.html", status=404, message=t("console.not_found", ctx.loc))
    return ctx.back(f"/certificates/{found}")


@view()
async def certificate(ctx: Ctx) -> Response:
    return await _page(ctx, int(ctx.request.path_params["cert_id"]))


async def _act(ctx: Ctx, action: Callable[[str], Awaitable[str]]) -> Response:
    cert_id = int(ctx.request.path_params["cert_id"])
    number = await desk_of.number_of(ctx.uow, cert_id)
    if number is None:
        return ctx.page("error.html", status=404, message=t("console.not_found", ctx.loc))
    url = f"/certificates/{cert_id}"
    try:
        done = await action(number)
    except CertificateRefused as refused:
        await ctx.uow.rollback()
        return ctx.back(url, "error", refused.text(ctx.loc))
    except LookupError as missing:
        await ctx.uow.rollback()
        return ctx.back(url, "error", t("console.cert_lookup", ctx.loc, why=str(missing)))
    return ctx.back(url, "ok", done)


@view(desk_of.DECISION_ROLE)
async def suspend(ctx: Ctx) -> Response:
    try:
        start = date.fromisoformat(ctx.field("start").strip() or ctx.desk.clock.today().isoformat())
        months = int(ctx.field("months"))
    except ValueError:
        return await _refuse(ctx, t("console.bad_date", ctx.loc))

    async def run(number: str) -> str:
        cert = await desk_of.suspend(ctx.desk, ctx.uow, number, ctx.member, start=start,
                                     months=months, reason=ctx.field("reason")[:2000])  # fmt: skip
        return t("console.done_cert_suspended", ctx.loc, number=cert.number,
                 until=cert.suspended_until)  # fmt: skip

    return await _act(ctx, run)


async def _refuse(ctx: Ctx, text: str) -> Response:
    return ctx.back(f"/certificates/{ctx.request.path_params['cert_id']}", "error", text)


@view(desk_of.DECISION_ROLE)
async def withdraw(ctx: Ctx) -> Response:
    async def run(number: str) -> str:
        cert = await desk_of.withdraw(ctx.desk, ctx.uow, number, ctx.member,
                                      reason=ctx.field("reason")[:2000])  # fmt: skip
        return t("console.done_cert_withdrawn", ctx.loc, number=cert.number)

    return await _act(ctx, run)


@view(desk_of.DECISION_ROLE)
async def restore(ctx: Ctx) -> Response:
    async def run(number: str) -> str:
        cert = await desk_of.restore(ctx.desk, ctx.uow, number, ctx.member,
                                     reason=ctx.field("reason")[:2000])  # fmt: skip
        return t("console.done_cert_restored", ctx.loc, number=cert.number)

    return await _act(ctx, run)


@view()
async def link_code(ctx: Ctx) -> Response:
    """The code is shown once, on this page (never in a redirect's flash or the history)."""
    cert_id = int(ctx.request.path_params["cert_id"])
    number = await desk_of.number_of(ctx.uow, cert_id)
    if number is None:
        return ctx.page("error.html", status=404, message=t("console.not_found", ctx.loc))
    try:
        issued = await desk_of.link_code(ctx.desk, ctx.uow, number, ctx.member)
    except LookupError as missing:
        await ctx.uow.rollback()
        return ctx.back(f"/certificates/{cert_id}", "error",
                        t("console.cert_lookup", ctx.loc, why=str(missing)))  # fmt: skip
    return await _page(ctx, cert_id, issued=issued)


@view(desk_of.IMPORT_ROLE)
async def import_page(ctx: Ctx) -> Response:
    return ctx.page("certificates_import.html", result=None, error=None)


@view(desk_of.IMPORT_ROLE)
async def import_file(ctx: Ctx) -> Response:
    """The CLI's import on an uploaded file; the page shows its report as `--json` prints it."""
    upload = ctx.form.get("file") if ctx.form is not None else None
    if not isinstance(upload, UploadFile):
        return ctx.page("certificates_import.html", status=400, result=None,
                        error=t("console.import_no_file", ctx.loc))  # fmt: skip
    data = await upload.read(MAX_UPLOAD + 1)
    if len(data) > MAX_UPLOAD:
        return ctx.page("certificates_import.html", status=413, result=None,
                        error=t("console.import_too_big", ctx.loc))  # fmt: skip
    result = await desk_of.import_upload(ctx.desk, ctx.uow, data, ctx.member)

    # Each refused row in the reader's language first, then as the CLI's report says it (the
    # JSON below): staff match a row of the page with a line of a script's output.
    def shown(error: RowError) -> tuple[int, str, str]:
        said = error.reason_in(ctx.loc)
        return error.line, said, "" if said == error.reason else error.reason

    refused = [shown(e) for e in result.refused]
    notes = [shown(e) for e in result.notes]
    return ctx.page("certificates_import.html", result=result, report=result.to_json(),
                    refused=refused, notes=notes, name=upload.filename or "",
                    error=None)  # fmt: skip


ACTIONS = {"suspend": suspend, "withdraw": withdraw, "restore": restore, "link-code": link_code}
