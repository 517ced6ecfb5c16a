"""Sign-in and out, the language switch, and the health check (the pages open to anyone)."""

from __future__ import annotations

import math
import secrets

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from bot.domain.staff import normalise_email
from bot.services import staff
from handlers.console.web import (
    Ctx,
    console_of,
    csrf_ok,
    locale_of,
    render,
    safe_next,
    view,
)
from messages.render import t
from storage.unit_of_work import UnitOfWork


async def healthz(request: Request) -> Response:
    """Answers without sign-in, for the load balancer and `certdesk run`'s checks."""
    return PlainTextResponse("ok")


async def login_page(request: Request) -> Response:
    desk = console_of(request).desk
    return render(
        request,
        "login.html",
        loc=locale_of(request, desk),
        next=safe_next(request.query_params.get("next")),
        email="",
        error=None,
    )


async def login(request: Request) -> Response:
    """POST /login: email, password, csrf_token. Wrong passwords repeated → 429."""
    console = console_of(request)
    desk = console.desk
    loc = locale_of(request, desk)
    form = await request.form()
    email = str(form.get("email") or "")
    target = safe_next(str(form.get("next") or ""))

    def again(status: int, error: str, headers: dict[str, str] | None = None) -> Response:
        return render(
            request,
            "login.html",
            loc=loc,
            status=status,
            headers=headers,
            next=target,
            email=email,
            error=error,
        )

    if not csrf_ok(request, form):
        return again(403, t("console.csrf_refused", loc))
    now = desk.clock.now()
    client = request.client.host if request.client else "?"
    keys = [f"email:{normalise_email(email) or email.strip().lower()}", f"client:{client}"]
    wait = console.throttle.wait(keys, now)
    if wait is not None:
        seconds = max(1, math.ceil(wait.total_seconds()))
        minutes = max(1, math.ceil(seconds / 60))
        text = t("console.login_throttled", loc, minutes=minutes)
        return again(429, text, {"Retry-After": str(seconds)})
    async with UnitOfWork(desk.sessions) as uow:
        member = await staff.authenticate(desk, uow, email, str(form.get("password") or ""))
        member_id = member.id if member is not None else None
    if member_id is None:
        console.throttle.failed(keys, now)
        return again(401, t("console.login_failed", loc))
    console.throttle.succeeded(keys[0])
    lang = request.session.get("lang")
    request.session.clear()  # a new session on sign-in: nothing carried from before (fixation)
    request.session.update(
        {
            "staff_id": member_id,
            "csrf": secrets.token_urlsafe(32),
            **({"lang": lang} if lang else {}),
        }
    )
    return RedirectResponse(target, status_code=303)


@view()
async def logout(ctx: Ctx) -> Response:
    lang = ctx.request.session.get("lang")
    ctx.request.session.clear()
    if lang:
        ctx.request.session["lang"] = lang
    return RedirectResponse("/login", status_code=303)


async def switch_language(request: Request) -> Response:
    """GET /lang?to=en|zh_CN&next=/path: the console's language for this browser."""
    wanted = request.query_params.get("to")
    if wanted in ("zh_CN", "en"):
        request.session["lang"] = wanted
    return RedirectResponse(safe_next(request.query_params.get("next")), status_code=303)
