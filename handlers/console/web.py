"""What every console view shares: one unit of work per request, the signed-in member, the
CSRF check on every form, the role check, the page's language, and rendering a template.

A view is `async def view(ctx: Ctx) -> Response` under `@view(role)`: it runs only for a
signed-in, enabled member whose role covers `role`, and for a POST only with the session's
CSRF token in the form. The unit of work commits when the view returns, rolls back if it raises.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from bot.clock import SHANGHAI
from bot.desk import Desk
from bot.domain.staff import LoginThrottle, Role, may
from bot.services import staff
from bot.services.cases import format_date
from bot.services.inbound_mail import Parse
from messages.render import normalise_locale, t
from storage.models import StaffMember
from storage.unit_of_work import UnitOfWork

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"


@dataclass
class Console:
    """What the app keeps between requests (app.state.console)."""

    desk: Desk
    env: Environment
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    parse: Parse | None = None  # the e-mail adapter's parser, given by the composition root


def make_env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),  # every value is escaped: texts and user input
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # Reports shown as JSON read as the CLI prints them: Chinese as it is, keys in order.
    env.policies["json.dumps_kwargs"] = {"ensure_ascii": False, "sort_keys": False}
    return env


def console_of(request: Request) -> Console:
    found: Console = request.app.state.console
    return found


def locale_of(request: Request, desk: Desk) -> str:
    return normalise_locale(request.session.get("lang") or desk.settings.default_locale)


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(32)
    return str(token)


def csrf_ok(request: Request, form: FormData) -> bool:
    sent = form.get("csrf_token")
    known = request.session.get("csrf")
    return isinstance(sent, str) and bool(known) and hmac.compare_digest(sent, str(known))


def flash(request: Request, kind: str, text: str) -> None:
    request.session["flash"] = [*request.session.get("flash", []), [kind, text]]


def fmt_at(at: datetime | None, loc: str) -> str:
    if at is None:
        return ""
    local = at.astimezone(SHANGHAI)
    return f"{format_date(local.date(), loc)} {local:%H:%M}"


def render(
    request: Request,
    template: str,
    *,
    loc: str,
    member: StaffMember | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
    **values: Any,
) -> HTMLResponse:
    console = console_of(request)

    def text(key: str, **args: object) -> str:
        return t(f"console.{key}", loc, **args)

    def fmt_date(d: date | None) -> str:
        return format_date(d, loc) if d else ""

    html = console.env.get_template(template).render(
        _=text,
        t=lambda key, **args: t(key, loc, **args),
        loc=loc,
        lang="zh-CN" if loc == "zh_CN" else "en",
        member=member,
        csrf_token=csrf_token(request),
        flashes=request.session.pop("flash", []),
        path=request.url.path,
        query=str(request.url.query),
        today=console.desk.clock.today(),
        fmt_date=fmt_date,
        fmt_at=lambda at: fmt_at(at, loc),
        fmt_day=lambda at: fmt_date(at.astimezone(SHANGHAI).date()) if at else "",
        role_name=lambda role: text(f"role_{role}"),
        **values,
    )
    return HTMLResponse(html, status_code=status, headers=headers)


@dataclass
class Ctx:
    request: Request
    desk: Desk
    uow: UnitOfWork
    member: StaffMember
    loc: str
    form: FormData | None

    def page(self, template: str, status: int = 200, **values: Any) -> HTMLResponse:
        return render(
            self.request, template, loc=self.loc, member=self.member, status=status, **values
        )

    def back(self, url: str, kind: str | None = None, text: str | None = None) -> Response:
        """Redirect after a form (303: the browser GETs the page); an optional message on it."""
        if kind and text:
            flash(self.request, kind, text)
        return RedirectResponse(url, status_code=303)

    def field(self, name: str) -> str:
        value = self.form.get(name) if self.form is not None else None
        return value if isinstance(value, str) else ""


View = Callable[[Ctx], Awaitable[Response]]


def refuse_anonymous(request: Request) -> Response:
    if request.method == "GET" and "hx-request" not in request.headers:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target)}", status_code=303)
    return Response("sign in first", status_code=401, headers={"HX-Redirect": "/login"})


def error_page(request: Request, desk: Desk, status: int, text: str) -> HTMLResponse:
    loc = locale_of(request, desk)
    return render(request, "error.html", loc=loc, status=status, message=text)


def view(role: Role = Role.STAFF) -> Callable[[View], Callable[[Request], Awaitable[Response]]]:
    def wrap(fn: View) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            desk = console_of(request).desk
            loc = locale_of(request, desk)
            async with UnitOfWork(desk.sessions) as uow:
                staff_id = request.session.get("staff_id")
                member = await staff.member(uow, int(staff_id)) if staff_id else None
                if member is None:
                    request.session.pop("staff_id", None)
                    return refuse_anonymous(request)
                form = None
                if request.method == "POST":
                    form = await request.form()
                    if not csrf_ok(request, form):
                        await form.close()
                        return error_page(request, desk, 403, t("console.csrf_refused", loc))
                if not may(member.role, role):
                    if form is not None:
                        await form.close()
                    needed = t(f"console.role_{role.value}", loc)
                    return error_page(
                        request, desk, 403, t("console.forbidden_role", loc, role=needed)
                    )
                try:
                    return await fn(Ctx(request, desk, uow, member, loc, form))
                finally:
                    if form is not None:
                        await form.close()  # an uploaded file's spooled copy

        endpoint.__name__ = fn.__name__
        endpoint.__doc__ = fn.__doc__
        return endpoint

    return wrap


def safe_next(target: str | None) -> str:
    """Only a path on this site (never `//host` or a scheme): no open redirect after sign-in."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/"
