"""The console's doors, against the real app on SQLite and PostgreSQL: sign-in, the cookie,
CSRF, slowed guessing, disabled accounts, roles, escaping, and files of other cases."""

from __future__ import annotations

from pathlib import Path

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from bot.clock import FrozenClock
from bot.services import cases, staff
from handlers.console.app import create_app
from storage.models import CaseEvent, OutboxMessage
from storage.unit_of_work import UnitOfWork
from tests.integration.console_kit import (
    PASSWORD,
    Console,
    console,
    console_settings,
    file_complaint,
    make_desk,
    sign_in,
)

__all__ = ["console"]  # the fixture, imported for pytest


def _pages(ref: str) -> list[tuple[str, str]]:
    """Every route of the app but the open ones, with sample parameters."""
    return [
        ("GET", "/"),
        ("GET", "/cases"),
        ("GET", "/cases?kind=complaint&q=x"),
        ("GET", "/cases.xlsx"),
        ("GET", f"/cases/{ref}"),
        ("GET", f"/cases/{ref}/files/1"),
        ("POST", f"/cases/{ref}/assign"),
        ("POST", f"/cases/{ref}/reply"),
        ("POST", f"/cases/{ref}/milestone"),
        ("GET", "/outbox"),
        ("POST", "/outbox/1/retry"),
        ("POST", "/outbox/1/cancel"),
        ("GET", "/findings"),
        ("GET", "/findings/7"),
        ("GET", "/findings/7/files/8"),
        ("POST", "/findings/7/review"),
        ("POST", "/logout"),
    ]


async def test_every_page_but_login_and_healthz_refuses_anonymous(console: Console) -> None:
    ref = await file_complaint(console.desk)
    client = console.client
    paths = {route.path for route in create_app(console.desk).routes}  # type: ignore[attr-defined]
    tried = {path for _, path in _pages("{ref}")}
    # Every route is tried here (the file route by its pattern): a new page cannot be missed.
    assert paths - {"/healthz", "/login", "/lang", "/static"} <= {
        p.split("?")[0]
        .replace("/1/", "/{message_id:int}/")
        .replace("files/1", "files/{file_id:int}")
        .replace("/findings/7", "/findings/{finding_id:int}")
        .replace("files/8", "files/{file_id:int}")
        for p in tried
    }
    for method, path in _pages(ref):
        response = await client.request(method, path, data={"text": "x"})
        assert response.status_code in (303, 401), (method, path, response.status_code)
        if response.status_code == 303:
            assert response.headers["location"].startswith("/login?next=")
        assert ref not in response.text and "李雷" not in response.text
        assert "default-src 'none'" in response.headers["content-security-policy"]
    health = await client.get("/healthz")
    assert health.status_code == 200 and health.text == "ok"
    login = await client.get("/login")
    assert login.status_code == 200
    for response in (health, login):
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert response.headers["x-content-type-options"] == "nosniff"


async def test_sign_in_sets_a_signed_httponly_lax_cookie(console: Console) -> None:
    response = await sign_in(console.client, "WANG@desk.example.test")
    assert response.status_code == 303 and response.headers["location"] == "/"
    cookie = response.headers["set-cookie"].lower()
    assert "certdesk_console=" in cookie and "httponly" in cookie and "samesite=lax" in cookie
    assert "secure" not in cookie  # plain http here; behind https see the next test
    today = await console.client.get("/")
    assert today.status_code == 200 and "王芳" in today.text
    # A forged cookie is no session.
    forged = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(console.desk)),
        base_url="http://testserver",
        cookies={"certdesk_console": "eyJzdGFmZl9pZCI6IDF9.forged.sig"},
    )
    async with forged:
        assert (await forged.get("/")).status_code == 303


async def test_cookie_is_secure_behind_https(
    engine: AsyncEngine, database_url: str, data_dir: Path
) -> None:
    for base_url, console_url, secure in (
        ("http://testserver", "https://console.example.test", True),  # TLS ends at the proxy
        ("https://testserver", None, True),  # the request itself came over HTTPS
        ("http://testserver", None, False),
    ):
        settings = console_settings(database_url, data_dir, console_base_url=console_url)
        transport = httpx.ASGITransport(app=create_app(make_desk(engine, settings)))
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            cookie = (await client.get("/login")).headers["set-cookie"].lower()
        assert ("; secure" in cookie) is secure, (base_url, console_url)
        assert "httponly" in cookie and "samesite=lax" in cookie


async def test_forms_without_their_csrf_token_are_refused(console: Console) -> None:
    ref = await file_complaint(console.desk)
    no_token = await console.client.post(
        "/login", data={"email": "wang@desk.example.test", "password": PASSWORD}
    )
    assert no_token.status_code == 403
    await console.signed_in()
    for token in (None, "not-the-token"):
        data = {"text": "an answer"} | ({"csrf_token": token} if token else {})
        refused = await console.client.post(f"/cases/{ref}/reply", data=data)
        assert refused.status_code == 403
    async with console.desk.sessions() as s:
        types = (await s.exec(select(CaseEvent.type))).all()
    assert "reply_sent" not in types
    token = await console.csrf(f"/cases/{ref}")
    done = await console.client.post(
        f"/cases/{ref}/reply", data={"text": "an answer", "csrf_token": token}
    )
    assert done.status_code == 303


async def test_repeated_wrong_passwords_are_slowed_down(console: Console) -> None:
    client = console.client
    for _ in range(5):
        assert (await sign_in(client, "zhang@desk.example.test", "wrong")).status_code == 401
    throttled = await sign_in(client, "zhang@desk.example.test")  # even the right one, for now
    assert throttled.status_code == 429
    assert 0 < int(throttled.headers["retry-after"]) <= 15 * 60
    clock = console.desk.clock
    assert isinstance(clock, FrozenClock)
    clock.advance(minutes=15)
    assert (await sign_in(client, "zhang@desk.example.test")).status_code == 303


async def test_a_disabled_account_cannot_sign_in_and_its_session_ends(console: Console) -> None:
    client = await console.signed_in("zhang@desk.example.test")
    assert (await client.get("/")).status_code == 200
    async with UnitOfWork(console.desk.sessions) as uow:
        await staff.set_disabled(uow, "zhang@desk.example.test")
    assert (await client.get("/")).status_code == 303
    assert (await sign_in(client, "zhang@desk.example.test")).status_code == 401


async def test_the_staff_role_cannot_do_what_needs_admin(console: Console) -> None:
    await file_complaint(console.desk)  # no staff channel: its alert waits on the staff channel
    async with console.desk.sessions() as s:
        alert = (await s.exec(select(OutboxMessage).where(OutboxMessage.channel == "staff"))).one()
    await console.signed_in("zhang@desk.example.test")
    token = await console.csrf("/outbox")
    refused = await console.client.post(f"/outbox/{alert.id}/cancel", data={"csrf_token": token})
    assert refused.status_code == 403
    await console.client.post("/logout", data={"csrf_token": token})
    await console.signed_in("wang@desk.example.test")
    token = await console.csrf("/outbox")
    done = await console.client.post(f"/outbox/{alert.id}/cancel", data={"csrf_token": token})
    assert done.status_code == 303
    async with console.desk.sessions() as s:
        row = await s.get(OutboxMessage, alert.id)
        assert row is not None and row.status == "cancelled"
        events = (await s.exec(select(CaseEvent).where(CaseEvent.type == "outbox_cancelled"))).all()
    assert [e.actor for e in events] == ["staff:wang@desk.example.test"]


async def test_html_in_user_fields_is_escaped(console: Console) -> None:
    evil = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    ref = await file_complaint(console.desk, subject=evil, description=evil)
    await console.signed_in()
    for path in ("/cases", f"/cases/{ref}", "/", f"/cases?q={evil}"):
        html = (await console.client.get(path)).text
        assert "<script>alert" not in html and "<img src=x" not in html, path
    assert (
        "&lt;script&gt;alert(1)&lt;/script&gt;" in (await console.client.get(f"/cases/{ref}")).text
    )


async def test_a_file_is_reached_only_through_its_own_case(console: Console) -> None:
    pdf = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
    async with UnitOfWork(console.desk.sessions) as uow:
        kept = await cases.keep_attachment(console.desk, uow, pdf, "证据.pdf")
    mine = await file_complaint(console.desk, attachments=[kept])
    other = await file_complaint(console.desk)
    await console.signed_in()
    shown = await console.client.get(f"/cases/{mine}/files/{kept.stored_file_id}")
    assert shown.status_code == 200 and shown.content == pdf
    assert shown.headers["content-type"] == "application/pdf"
    assert shown.headers["content-disposition"].startswith("inline;")
    assert "filename*=UTF-8''%E8%AF%81%E6%8D%AE.pdf" in shown.headers["content-disposition"]
    down = await console.client.get(f"/cases/{mine}/files/{kept.stored_file_id}?download=1")
    assert down.headers["content-disposition"].startswith("attachment;")
    assert (
        await console.client.get(f"/cases/{other}/files/{kept.stored_file_id}")
    ).status_code == 404
    assert (await console.client.get(f"/cases/{mine}/files/999")).status_code == 404
