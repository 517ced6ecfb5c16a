"""The case register, its XLSX export, one case file, its files, and the actions on it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta
from urllib.parse import quote

from starlette.responses import FileResponse, Response

from bot.clock import SHANGHAI
from bot.domain.case_decisions import GROUNDS, role_to_decide
from bot.domain.cases import MILESTONE_ORDER, CaseRefused, Status
from bot.domain.files import JPEG, PDF, PNG
from bot.domain.refs import normalise_ref
from bot.domain.staff import may
from bot.services import case_decisions, case_desk, case_steps, staff
from bot.services import case_words as words
from bot.services.case_desk import RegisterFilter
from bot.services.cases import refused_text
from bot.services.cases.steps import next_step_preview
from handlers.console.export import register_xlsx
from handlers.console.web import Ctx, view
from messages.render import rule_label, t
from storage.models import StoredFile

KINDS = ("appeal", "complaint", "dispute")
STATUSES = (Status.RECEIVED, Status.IN_PROGRESS, Status.CLOSED, Status.WITHDRAWN)
INLINE_TYPES = {PDF, JPEG, PNG}  # what the browser shows itself; anything else is a download


def local_midnight(day: date) -> datetime:
    """The start of a Shanghai calendar day, as an instant (cases are stored in UTC)."""
    return datetime(day.year, day.month, day.day, tzinfo=SHANGHAI)


def _day(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


async def _filter(ctx: Ctx) -> RegisterFilter:
    q = ctx.request.query_params
    kind = q.get("kind") if q.get("kind") in KINDS else None
    status = q.get("status") if q.get("status") in STATUSES else None
    overdue = ctx.desk.clock.today() if q.get("overdue") == "1" else None
    assignees: tuple[str, ...] | None = None
    if q.get("assignee") == "none":
        assignees = ()
    elif q.get("assignee"):
        chosen = [m for m in await staff.members(ctx.uow) if str(m.id) == q.get("assignee")]
        assignees = tuple(staff.assignee_ids(chosen[0])) if chosen else None
    start, end = _day(q.get("from")), _day(q.get("to"))
    return RegisterFilter(
        kind,
        status,
        overdue,
        (q.get("q") or "").strip()[:200] or None,
        assignees,
        local_midnight(start) if start else None,
        local_midnight(end + timedelta(days=1)) if end else None,
    )


@view()
async def register(ctx: Ctx) -> Response:
    where = await _filter(ctx)
    rows = await case_desk.register(ctx.uow, where)
    assignees = await staff.names_of_actors(
        ctx.uow, [f"staff:{r.case.assignee}" for r in rows if r.case.assignee]
    )
    return ctx.page(
        "cases.html",
        rows=rows,
        where=where,
        kinds=KINDS,
        statuses=STATUSES,
        names=assignees,
        members=await staff.members(ctx.uow),
        params=ctx.request.query_params,
        kind_name=lambda k: t(f"cases.kind_{k}", ctx.loc),
    )


@view()
async def export(ctx: Ctx) -> Response:
    rows = await case_desk.register(ctx.uow, await _filter(ctx))
    data = register_xlsx(rows, ctx.loc, ctx.desk.clock.today())
    name = f"register-{ctx.desk.clock.today().isoformat()}.xlsx"
    return Response(
        data,
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _ref(ctx: Ctx) -> str | None:
    return normalise_ref(str(ctx.request.path_params["ref"]))


@view()
async def case_file(ctx: Ctx) -> Response:
    ref = _ref(ctx)
    found = await case_desk.case_file(ctx.desk, ctx.uow, ref) if ref else None
    if found is None:
        return ctx.page("error.html", status=404, message=t("console.not_found", ctx.loc))
    today = ctx.desk.clock.today()
    return ctx.page(
        "case.html",
        f=found,
        c=found.case,
        kind_name=t(f"cases.kind_{found.case.kind}", ctx.loc),
        event_text=lambda e: words.event_text(e, found.case.kind, found.names, ctx.loc),
        actor_name=lambda a: words.actor_name(a, found.names, ctx.loc),
        met_text=lambda d: words.met_text(d.closed_by, ctx.loc),
        channel_name=lambda ch: words.channel_name(ch, ctx.loc),
        milestone_name=lambda m: words.milestone_name(m, ctx.loc),
        rule_label=lambda r: rule_label(r, ctx.loc),
        overdue=lambda d: d.closed_at is None and d.due_on < today,
        due_today=lambda d: d.closed_at is None and d.due_on == today,
        assignee_name=found.names.get(found.case.assignee or "", found.case.assignee),
        decided=case_decisions.decided(found.events),
        steps=case_steps.steps_of(ctx.desk, found.case, found.deadlines, found.events),
        may_publicity=may(ctx.member.role, case_steps.PUBLICITY_ROLE),
        next_step=next_step_preview(ctx.desk, found.case, ctx.loc),
        may_decide=may(ctx.member.role, role_to_decide(found.case.kind)),
        grounds=GROUNDS,
    )


@view()
async def case_attachment(ctx: Ctx) -> Response:
    ref = _ref(ctx)
    file_id = ctx.request.path_params["file_id"]
    found = await case_desk.attachment(ctx.uow, ref, int(file_id)) if ref else None
    if found is None:
        return ctx.page("error.html", status=404, message=t("console.not_found", ctx.loc))
    return file_response(ctx, *found)


def file_response(ctx: Ctx, row: StoredFile, name: str) -> Response:
    """A stored file: PDFs and images shown in the browser, anything else downloaded."""
    path = (ctx.desk.data_dir / row.path).resolve()
    if not path.is_relative_to(ctx.desk.data_dir.resolve()) or not path.is_file():
        return ctx.page("error.html", status=404, message=t("console.not_found", ctx.loc))
    inline = row.content_type in INLINE_TYPES and ctx.request.query_params.get("download") != "1"
    disposition = "inline" if inline else "attachment"
    # RFC 6266 / 5987: a Chinese name travels percent-encoded, with an ASCII fallback.
    header = f"{disposition}; filename=\"file\"; filename*=UTF-8''{quote(name)}"
    return FileResponse(path, media_type=row.content_type, headers={"Content-Disposition": header})


async def _act(ctx: Ctx, ref: str, action: Callable[[], Awaitable[str]]) -> Response:
    """Run an action on case `ref`; back to the case file with what was done, or why not."""
    url = f"/cases/{ref}"
    try:
        done = await action()
    except CaseRefused as refused:
        await ctx.uow.rollback()
        return ctx.back(url, "error", refused_text(refused, ctx.loc))
    except LookupError:
        return ctx.page("error.html", status=404, message=t("console.not_found", ctx.loc))
    return ctx.back(url, "ok", done)


@view()
async def assign(ctx: Ctx) -> Response:
    ref = _ref(ctx) or ""
    chosen = ctx.field("staff_id")
    others = {str(m.id): m for m in await staff.members(ctx.uow) if not m.disabled}
    to = others.get(chosen, ctx.member)

    async def run() -> str:
        await case_desk.assign(ctx.desk, ctx.uow, ref, ctx.member, to)
        return t("console.done_assigned", ctx.loc, ref=ref, who=to.name)

    return await _act(ctx, ref, run)


@view()
async def reply(ctx: Ctx) -> Response:
    ref = _ref(ctx) or ""
    text = ctx.field("text").strip()
    if not text:
        return ctx.back(f"/cases/{ref}", "error", t("console.reply_empty", ctx.loc))

    async def run() -> str:
        row = await case_desk.reply(ctx.desk, ctx.uow, ref, ctx.member, text)
        channel = words.channel_name(row.channel, ctx.loc)
        return t("console.done_reply", ctx.loc, channel=channel)

    return await _act(ctx, ref, run)


@view()
async def milestone(ctx: Ctx) -> Response:
    ref = _ref(ctx) or ""
    name = ctx.field("milestone")
    if name not in MILESTONE_ORDER:
        return ctx.back(f"/cases/{ref}")
    note = ctx.field("note").strip()[:2000] or None

    async def run() -> str:
        await case_desk.milestone(ctx.desk, ctx.uow, ref, ctx.member, name, note)
        label = words.milestone_name(name, ctx.loc)
        return t("console.done_milestone", ctx.loc, milestone=label)

    return await _act(ctx, ref, run)


@view()
async def decide(ctx: Ctx) -> Response:
    """Accept or refuse the case (受理 / 不予受理); the role each kind needs is the service's."""
    ref = _ref(ctx) or ""
    decision = ctx.field("decision")
    if decision not in ("accept", "refuse"):
        return ctx.back(f"/cases/{ref}")
    accept = decision == "accept"
    grounds = ctx.field("grounds") or None
    reason = ctx.field("reason").strip()[:2000]

    async def run() -> str:
        done = await case_decisions.decide(
            ctx.desk, ctx.uow, ref, ctx.member, accept=accept, grounds=grounds, reason=reason
        )
        key = "done_accepted" if accept else "done_refused"
        if done.notice is None:
            told = t("console.done_no_notice", ctx.loc)
        else:
            channel = words.channel_name(done.notice.channel, ctx.loc)
            told = t("console.done_notice", ctx.loc, channel=channel)
        return t(f"console.{key}", ctx.loc, ref=ref) + told

    return await _act(ctx, ref, run)
