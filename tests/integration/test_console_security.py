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
from storage.models import (
    CaseEvent,
    Certificate,
    CertificateEvent,
    Document,
    InboundEmail,
    Organisation,
    OutboxMessage,
)
from storage.unit_of_work import UnitOfWork
from tests.integration.console_kit import (
    PASSWORD,
    Console,
    apply_with_documents,
    console,
    console_settings,
    file_complaint,
    make_desk,
    sign_in,
    store_enquiry,
)

__all__ = ["console"]  # the fixture, imported for pytest


STEPS = ("dates", "extend", "outcome", "inform", "publicity", "serious")
CERT_ACTIONS = ("suspend", "withdraw", "restore", "link-code")


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
        ("POST", f"/cases/{ref}/decide"),
        *(("POST", f"/cases/{ref}/{step}") for step in STEPS),
        ("GET", "/enquiries"),
        ("GET", "/enquiries/1"),
        ("POST", "/enquiries/1/answer"),
        ("GET", "/applications"),
        ("GET", "/applications/AP-2026-0001"),
        ("GET", "/applications/AP-2026-0001/files/1"),
        ("POST", "/applications/AP-2026-0001/documents/1/review"),
        ("POST", "/applications/AP-2026-0001/move"),
        ("POST", "/applications/AP-2026-0001/issue"),
        ("GET", "/documents/1"),
        ("GET", "/certificates"),
        ("GET", "/certificates?status=valid&overdue=1&q=x"),
        ("GET", "/certificates/by-number?n=X"),
        ("GET", "/certificates/import"),
        ("POST", "/certificates/import"),
        ("GET", "/certificates/1"),
        *(("POST", f"/certificates/1/{action}") for action in CERT_ACTIONS),
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
        .replace("AP-2026-0001", "{ref}")
        .replace("documents/1/", "documents/{doc_id:int}/")
        .replace("/documents/1", "/documents/{doc_id:int}")
        .replace("/applications/{ref}/files/1", "/applications/{ref}/files/{doc_id:int}")
        .replace("/enquiries/1/answer", "/enquiries/{inbound_id:int}/{action}")
        .replace("/enquiries/1", "/enquiries/{inbound_id:int}")
        .replace("/certificates/1", "/certificates/{cert_id:int}")
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


async def test_the_new_forms_need_their_csrf_token_and_escape_what_users_wrote(
    console: Console,
) -> None:
    evil = "<script>alert(1)</script>"
    ref = await file_complaint(console.desk)
    applicant = await apply_with_documents(console.desk, uploads=1)
    async with console.desk.sessions() as s, s.begin():
        org = await s.get(Organisation, applicant.organisation_id)
        assert org is not None
        org.name = evil
        s.add(org)
    raw = (
        f"From: x <x@example.test>\r\nSubject: {evil}\r\nMessage-ID: <e1@example.test>\r\n"
        f"\r\n{evil}\r\n"
    ).encode()
    inbound_id = await store_enquiry(console.desk, raw, "<e1@example.test>")
    await console.signed_in()
    doc = applicant.documents["application_form"]
    for path, data in (
        (f"/cases/{ref}/decide", {"decision": "refuse", "grounds": "formalities", "reason": "x"}),
        (f"/enquiries/{inbound_id}/no_answer", {"reason": "x"}),
        (f"/applications/{applicant.ref}/documents/{doc}/review", {"decision": "accept"}),
        (f"/applications/{applicant.ref}/move", {"target": "accepted"}),
        (f"/applications/{applicant.ref}/issue", {"number": "N-1"}),
    ):
        assert (await console.client.post(path, data=data)).status_code == 403, path
    async with console.desk.sessions() as s:
        types = (await s.exec(select(CaseEvent.type))).all()
        letter = await s.get(InboundEmail, inbound_id)
        document = await s.get(Document, doc)
    assert "refused" not in types
    assert letter is not None and letter.sorted_at is None
    assert document is not None and document.status == "received"
    for path in (
        "/applications",
        f"/applications/{applicant.ref}",
        "/enquiries",
        f"/enquiries/{inbound_id}",
        "/",
    ):
        html = (await console.client.get(path)).text
        assert "<script>alert" not in html, path
    assert "&lt;script&gt;" in (await console.client.get(f"/enquiries/{inbound_id}")).text


CSV = (
    "number,holder,standard,decided_on,expires_on,uscc,contact_emails\n"
    "GGBZ-901,<script>alert(1)</script>,GB/T 39604-2020,2025-12-01,2028-11-30,,a@example.test\n"
)


async def _imported(console: Console) -> int:
    await console.signed_in()
    token = await console.csrf("/certificates/import")
    response = await console.client.post(
        "/certificates/import", data={"csrf_token": token}, files={"file": ("c.csv", CSV)}
    )
    assert response.status_code == 200 and "<script>alert" not in response.text
    async with console.desk.sessions() as s:
        cert = (await s.exec(select(Certificate).where(Certificate.number == "GGBZ-901"))).one()
        assert cert.id is not None
        return cert.id


async def test_the_step_and_certificate_forms_need_their_csrf_token(console: Console) -> None:
    ref = await file_complaint(console.desk, concerns="certified")
    cert_id = await _imported(console)
    posts = [
        (f"/cases/{ref}/dates", {"decided_on": "2026-09-01"}),
        (f"/cases/{ref}/extend", {"rule": "complaint.decision", "new_due": "2026-12-31",
                                  "approved_by": "x"}),
        (f"/cases/{ref}/outcome", {"text": "x"}),
        (f"/cases/{ref}/inform", {"how": "x"}),
        (f"/cases/{ref}/publicity", {"public": "no"}),
        (f"/cases/{ref}/serious", {"reason": "x"}),
        (f"/certificates/{cert_id}/suspend", {"months": "2", "reason": "x"}),
        (f"/certificates/{cert_id}/withdraw", {"reason": "x"}),
        (f"/certificates/{cert_id}/restore", {"reason": "x"}),
        (f"/certificates/{cert_id}/link-code", {}),
    ]  # fmt: skip
    for path, data in posts:
        for token in ({}, {"csrf_token": "not-the-token"}):
            response = await console.client.post(path, data=data | token)
            assert response.status_code == 403, path
    upload = await console.client.post("/certificates/import", files={"file": ("c.csv", CSV)})
    assert upload.status_code == 403
    async with console.desk.sessions() as s:
        case_types = set((await s.exec(select(CaseEvent.type))).all())
        cert_types = list((await s.exec(select(CertificateEvent.type))).all())
        cert = await s.get(Certificate, cert_id)
    assert case_types <= {"received", "acknowledged"}
    assert cert_types == ["imported"] and cert is not None and cert.status == "valid"
    page = (await console.client.get(f"/certificates/{cert_id}")).text
    assert "<script>alert" not in page and "&lt;script&gt;" in page
    listing = (await console.client.get("/certificates")).text
    assert "<script>alert" not in listing and "&lt;script&gt;" in listing


async def test_the_staff_role_cannot_take_the_deciders_or_admins_steps(console: Console) -> None:
    ref = await file_complaint(console.desk, concerns="certified")
    cert_id = await _imported(console)
    await console.client.post("/logout", data={"csrf_token": await console.csrf()})
    await console.signed_in("zhang@desk.example.test")
    token = await console.csrf(f"/certificates/{cert_id}")
    for path, data in (
        (f"/cases/{ref}/publicity", {"public": "no"}),
        (f"/certificates/{cert_id}/suspend", {"months": "2", "reason": "x"}),
        (f"/certificates/{cert_id}/withdraw", {"reason": "x"}),
        (f"/certificates/{cert_id}/restore", {"reason": "x"}),
        ("/certificates/import", {}),
    ):
        response = await console.client.post(path, data=data | {"csrf_token": token})
        assert response.status_code == 403, path
    assert (await console.client.get("/certificates/import")).status_code == 403
    # What the staff role may do, it may: the organisation told, a link code.
    told = await console.client.post(
        f"/cases/{ref}/inform", data={"how": "书面通知", "csrf_token": token}
    )
    assert told.status_code == 303
    code = await console.client.post(f"/certificates/{cert_id}/link-code",
                                     data={"csrf_token": token})  # fmt: skip
    assert code.status_code == 200
    async with console.desk.sessions() as s:
        cert_types = list((await s.exec(select(CertificateEvent.type))).all())
    assert cert_types == ["imported", "link_code_issued"]
