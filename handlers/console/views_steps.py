"""The steps on a case file after it is opened (bot.services.case_steps): the appealed
decision's dates, an extension with its approver, the outcome (the final milestone, its letter),
the certified organisation told, the publicity decision, a serious complaint."""

from __future__ import annotations

from datetime import date

from starlette.responses import Response

from bot.domain.cases import FINAL_MILESTONE
from bot.domain.staff import Role
from bot.services import case_desk, case_steps
from bot.services.cases import format_date, rule_label
from handlers.console.views_cases import _act, _ref
from handlers.console.web import Ctx, view
from messages.render import t


def _day(ctx: Ctx, name: str) -> date | None:
    try:
        text = ctx.field(name).strip()
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


def _bad_date(ctx: Ctx, ref: str) -> Response:
    return ctx.back(f"/cases/{ref}", "error", t("console.bad_date", ctx.loc))


@view()
async def dates(ctx: Ctx) -> Response:
    ref = _ref(ctx) or ""
    decided, notified = _day(ctx, "decided_on"), _day(ctx, "notified_on")
    if (ctx.field("decided_on") and decided is None) or (ctx.field("notified_on") and not notified):
        return _bad_date(ctx, ref)

    async def run() -> str:
        event = await case_steps.give_dates(
            ctx.desk, ctx.uow, ref, ctx.member, decided_on=decided, notified_on=notified
        )
        late = (event.data or {}).get("out_of_time")
        return t("console.done_dates_late" if late else "console.done_dates", ctx.loc, ref=ref)

    return await _act(ctx, ref, run)


@view()
async def extend(ctx: Ctx) -> Response:
    ref = _ref(ctx) or ""
    new_due = _day(ctx, "new_due")
    if new_due is None:
        return _bad_date(ctx, ref)
    rule_id = ctx.field("rule")

    async def run() -> str:
        row = await case_steps.extend(
            ctx.desk, ctx.uow, ref, ctx.member, rule_id=rule_id, new_due=new_due,
            approved_by=ctx.field("approved_by")[:200], reason=ctx.field("reason")[:2000],
        )  # fmt: skip
        return t(
            "console.done_extended", ctx.loc, rule=rule_label(row.rule_id, ctx.loc),
            due=format_date(row.due_on, ctx.loc),
        )  # fmt: skip

    return await _act(ctx, ref, run)


@view()
async def outcome(ctx: Ctx) -> Response:
    """The kind's final milestone with the outcome's text: the letter sent by the case service
    adds where to go next, per body, and the window that opens for it."""
    ref = _ref(ctx) or ""
    text = ctx.field("text").strip()[:3500]
    if not text:
        return ctx.back(f"/cases/{ref}", "error", t("console.outcome_empty", ctx.loc))

    async def run() -> str:
        case = await case_desk.locked_case(ctx.uow, ref)
        final = FINAL_MILESTONE.get(case.kind, "")
        await case_desk.milestone(ctx.desk, ctx.uow, ref, ctx.member, final, text)
        return t("console.done_outcome", ctx.loc, ref=ref)

    return await _act(ctx, ref, run)


@view()
async def inform(ctx: Ctx) -> Response:
    ref = _ref(ctx) or ""
    on = _day(ctx, "on")
    if ctx.field("on") and on is None:
        return _bad_date(ctx, ref)

    async def run() -> str:
        await case_steps.inform_organisation(
            ctx.desk, ctx.uow, ref, ctx.member, how=ctx.field("how")[:2000], on=on
        )
        return t("console.done_informed", ctx.loc, ref=ref)

    return await _act(ctx, ref, run)


@view(Role.DECIDER)
async def publicity(ctx: Ctx) -> Response:
    ref = _ref(ctx) or ""
    public = ctx.field("public") == "yes"

    async def run() -> str:
        await case_steps.decide_publicity(
            ctx.desk, ctx.uow, ref, ctx.member, public=public, extent=ctx.field("extent")[:2000],
            agreed_with_organisation=ctx.field("agreed_org") == "1",
            agreed_with_complainant=ctx.field("agreed_complainant") == "1",
        )  # fmt: skip
        return t("console.done_public" if public else "console.done_not_public", ctx.loc, ref=ref)

    return await _act(ctx, ref, run)


@view()
async def serious(ctx: Ctx) -> Response:
    ref = _ref(ctx) or ""

    async def run() -> str:
        rows = await case_steps.mark_serious(
            ctx.desk, ctx.uow, ref, ctx.member, reason=ctx.field("reason")[:2000]
        )
        due = ", ".join(format_date(r.due_on, ctx.loc) for r in rows)
        return t("console.done_serious", ctx.loc, ref=ref, due=due or "—")

    return await _act(ctx, ref, run)
