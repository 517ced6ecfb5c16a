"""Enquiries: the letters to sort, one letter, and sorting it (bot.services.enquiries)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.responses import Response

from bot.domain.cases import CaseRefused, parse_date
from bot.domain.refs import normalise_ref
from bot.services import enquiries
from bot.services.cases import refused_text
from bot.services.inbound_mail import Parse
from handlers.console.web import Ctx, console_of, view
from messages.render import t


def _parse(ctx: Ctx) -> Parse | None:
    return console_of(ctx.request).parse


def _kind_name(ctx: Ctx) -> Callable[[str], str]:
    return lambda k: t(f"cases.kind_{k}", ctx.loc)


@view()
async def listing(ctx: Ctx) -> Response:
    return ctx.page(
        "enquiries.html",
        letters=await enquiries.to_sort(ctx.desk, ctx.uow),
        done=await enquiries.sorted_recently(ctx.desk, ctx.uow),
    )


def _id(ctx: Ctx) -> int:
    return int(ctx.request.path_params["inbound_id"])


@view()
async def detail(ctx: Ctx) -> Response:
    parse = _parse(ctx)
    if parse is None:
        return ctx.page("error.html", status=503, message=t("console.enquiry_no_parser", ctx.loc))
    found = await enquiries.enquiry(ctx.desk, ctx.uow, _id(ctx), parse)
    if found is None:
        return ctx.page("error.html", status=404, message=t("console.not_found", ctx.loc))
    return ctx.page("enquiry.html", e=found, kinds=enquiries.KINDS, kind_name=_kind_name(ctx))


@view()
async def sort(ctx: Ctx) -> Response:
    """Open as a case, attach to a case, answer, or mark as needing no answer."""
    inbound_id = _id(ctx)
    parse = _parse(ctx)
    if parse is None:
        return ctx.page("error.html", status=503, message=t("console.enquiry_no_parser", ctx.loc))
    reason = ctx.field("reason").strip()[:2000]
    action = str(ctx.request.path_params["action"])
    run: Callable[[], Awaitable[tuple[str, str]]]
    if action == "open":
        kind = ctx.field("kind")
        decided = parse_date(ctx.field("decided_on")) if ctx.field("decided_on") else None

        async def run() -> tuple[str, str]:
            ref = await enquiries.open_as_case(
                ctx.desk,
                ctx.uow,
                inbound_id,
                ctx.member,
                parse,
                kind=kind,
                reason=reason,
                decided_on=decided,
            )
            return f"/cases/{ref}", t("console.done_enquiry_case", ctx.loc, ref=ref)
    elif action == "attach":
        target = normalise_ref(ctx.field("ref")) or ""

        async def run() -> tuple[str, str]:
            ref = await enquiries.attach_to_case(
                ctx.desk, ctx.uow, inbound_id, ctx.member, parse, ref=target, reason=reason
            )
            return f"/cases/{ref}", t("console.done_enquiry_attached", ctx.loc, ref=ref)
    elif action == "answer":
        text = ctx.field("text").strip()[:10_000]

        async def run() -> tuple[str, str]:
            await enquiries.answer(ctx.desk, ctx.uow, inbound_id, ctx.member, parse, text=text)
            return "/enquiries", t("console.done_enquiry_answered", ctx.loc, id=inbound_id)
    elif action == "no_answer":

        async def run() -> tuple[str, str]:
            await enquiries.no_answer(
                ctx.desk, ctx.uow, inbound_id, ctx.member, parse, reason=reason
            )
            return "/enquiries", t("console.done_enquiry_no_answer", ctx.loc, id=inbound_id)
    else:
        return ctx.page("error.html", status=404, message=t("console.not_found", ctx.loc))
    here = f"/enquiries/{inbound_id}"
    try:
        url, done = await run()
    except CaseRefused as refused:
        await ctx.uow.rollback()
        return ctx.back(here, "error", refused_text(refused, ctx.loc))
    except LookupError:
        await ctx.uow.rollback()
        known = t("console.enquiry_no_case", ctx.loc) if action == "attach" else None
        if known:
            return ctx.back(here, "error", known)
        return ctx.page("error.html", status=404, message=t("console.not_found", ctx.loc))
    return ctx.back(url, "ok", done)
