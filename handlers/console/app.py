"""The staff console: a Starlette app on the desk's services (`create_app(desk)`).

Routes are listed here in one place; every one but /login, /lang, /healthz and /static needs a
signed-in member (handlers.console.web.view). The session is a signed cookie (itsdangerous via
Starlette's SessionMiddleware): HttpOnly, SameSite=Lax, Secure over HTTPS (security.Sessions).
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from bot.desk import Desk
from bot.services.inbound_mail import Parse
from handlers.console import (
    findings,
    views_applications,
    views_auth,
    views_cases,
    views_certificates,
    views_enquiries,
    views_steps,
    views_today,
)
from handlers.console.security import SecurityHeaders, Sessions
from handlers.console.web import STATIC, Console, make_env

SESSION_HOURS = 12  # a working day; then sign in again


def create_app(desk: Desk, *, parse: Parse | None = None) -> Starlette:
    """`parse`: how a stored letter is read (handlers.email.intake.parser(desk), passed by
    bot.main); without it the enquiry pages say that e-mail is not set up."""
    settings = desk.settings
    if settings.console_secret_key is None:
        raise ValueError("CONSOLE_SECRET_KEY is not set")
    secure = (settings.console_base_url or "").startswith("https://")
    routes = [
        Route("/healthz", views_auth.healthz),
        Route("/login", views_auth.login_page, methods=["GET"]),
        Route("/login", views_auth.login, methods=["POST"]),
        Route("/logout", views_auth.logout, methods=["POST"]),
        Route("/lang", views_auth.switch_language),
        Route("/", views_today.home),
        Route("/cases", views_cases.register),
        Route("/cases.xlsx", views_cases.export),
        Route("/cases/{ref}", views_cases.case_file),
        Route("/cases/{ref}/files/{file_id:int}", views_cases.case_attachment),
        Route("/cases/{ref}/assign", views_cases.assign, methods=["POST"]),
        Route("/cases/{ref}/reply", views_cases.reply, methods=["POST"]),
        Route("/cases/{ref}/milestone", views_cases.milestone, methods=["POST"]),
        Route("/cases/{ref}/decide", views_cases.decide, methods=["POST"]),
        Route("/cases/{ref}/dates", views_steps.dates, methods=["POST"]),
        Route("/cases/{ref}/extend", views_steps.extend, methods=["POST"]),
        Route("/cases/{ref}/outcome", views_steps.outcome, methods=["POST"]),
        Route("/cases/{ref}/inform", views_steps.inform, methods=["POST"]),
        Route("/cases/{ref}/publicity", views_steps.publicity, methods=["POST"]),
        Route("/cases/{ref}/serious", views_steps.serious, methods=["POST"]),
        Route("/enquiries", views_enquiries.listing),
        Route("/enquiries/{inbound_id:int}", views_enquiries.detail),
        Route("/enquiries/{inbound_id:int}/{action}", views_enquiries.sort, methods=["POST"]),
        Route("/applications", views_applications.register),
        Route("/applications/{ref}", views_applications.application_file),
        Route("/applications/{ref}/files/{doc_id:int}", views_applications.document_file),
        Route(
            "/applications/{ref}/documents/{doc_id:int}/review",
            views_applications.review,
            methods=["POST"],
        ),
        Route("/applications/{ref}/move", views_applications.move, methods=["POST"]),
        Route("/applications/{ref}/issue", views_applications.issue, methods=["POST"]),
        Route("/documents/{doc_id:int}", views_applications.document_of),
        Route("/certificates", views_certificates.register),
        Route("/certificates/by-number", views_certificates.by_number),
        Route("/certificates/import", views_certificates.import_page, methods=["GET"]),
        Route("/certificates/import", views_certificates.import_file, methods=["POST"]),
        Route("/certificates/{cert_id:int}", views_certificates.certificate),
        *(
            Route(f"/certificates/{{cert_id:int}}/{name}", endpoint, methods=["POST"])
            for name, endpoint in views_certificates.ACTIONS.items()
        ),
        Route("/outbox", views_today.outbox),
        Route("/outbox/{message_id:int}/retry", views_today.retry, methods=["POST"]),
        Route("/outbox/{message_id:int}/cancel", views_today.cancel, methods=["POST"]),
        Route("/findings", findings.register),
        Route("/findings/{finding_id:int}", findings.finding),
        Route("/findings/{finding_id:int}/files/{file_id:int}", findings.evidence_file),
        Route("/findings/{finding_id:int}/review", findings.review, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    middleware = [
        Middleware(SecurityHeaders),
        Middleware(
            Sessions,
            always_secure=secure,
            secret_key=settings.console_secret_key.get_secret_value(),
            session_cookie="certdesk_console",
            max_age=SESSION_HOURS * 3600,
            same_site="lax",
        ),
    ]
    app = Starlette(routes=routes, middleware=middleware)
    app.state.console = Console(desk=desk, env=make_env(), parse=parse)
    return app
