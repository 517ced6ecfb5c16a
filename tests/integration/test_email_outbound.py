"""Written answers by SMTP through the outbox: TLS as configured, 4xx retried, 5xx failed."""

from __future__ import annotations

import email
import email.policy
import ssl
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from bot.clock import FrozenClock
from bot.delivery.smtp import SmtpSender
from bot.outbox.worker import Outbox
from storage.db import session_factory
from storage.models import OutboxMessage
from storage.repo.outbox import enqueue
from tests.fixtures.mail import HOST, SmtpSink, free_port

T0 = datetime(2026, 9, 28, 2, 0, tzinfo=UTC)
STAFF_CHAT = -100888
DOMAIN = "desk.example.test"
REF = "TS-2026-7K3F9Q"


def sender_for(server: SmtpSink, clock: FrozenClock, **kw: Any) -> SmtpSender:
    options: dict[str, Any] = {
        "host": server.host,
        "port": server.port,
        "security": "none",
        "mail_from": f"certdesk@{DOMAIN}",
        "mail_domain": DOMAIN,
        "clock": clock,
        "timeout": 5.0,
    }
    return SmtpSender(**(options | kw))


async def queue_answer(engine: AsyncEngine, key: str = "ack", to: str = "li.lei@163.com") -> None:
    async with session_factory(engine)() as session, session.begin():
        row = await enqueue(
            session,
            channel="email",
            recipient=to,
            payload={
                "subject": f"[{REF}] 我们已收到您的投诉",
                "text": "您好：\n您的投诉已受理。",
                "html": None,
                "locale": "zh_CN",
                "in_reply_to": "<letter@163.com>",
                "references": ["<letter@163.com>"],
                "auto_reply": True,
                "case_ref": REF,
                "message_id": f"<{key}.{REF.lower()}@{DOMAIN}>",
            },
            idempotency_key=key,
            now=T0,
        )
        row.email_message_id = f"<{key}.{REF.lower()}@{DOMAIN}>"


async def outbox_row(engine: AsyncEngine, key: str = "ack") -> OutboxMessage:
    async with session_factory(engine)() as session:
        query = select(OutboxMessage).where(OutboxMessage.idempotency_key == key)
        return (await session.exec(query)).one()


def received(server: SmtpSink, n: int = 1) -> list[EmailMessage]:
    out = []
    for mail in server.wait_for_sync(n):
        msg = email.message_from_bytes(mail.content, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        out.append(msg)
    return out


async def test_answer_reaches_the_complainant_with_its_preassigned_message_id(
    engine: AsyncEngine, smtp_server: SmtpSink
) -> None:
    clock = FrozenClock(T0)
    sender = sender_for(smtp_server, clock)
    outbox = Outbox(session_factory(engine), {"email": sender}, clock)
    for n in range(3):
        await queue_answer(engine, key=f"ack{n}", to=f"p{n}@163.com")
    try:
        assert (await outbox.drain()).sent == 3
    finally:
        await sender.close()
    msgs = received(smtp_server, 3)
    assert [m["To"] for m in msgs] == ["p0@163.com", "p1@163.com", "p2@163.com"]
    assert msgs[0]["Subject"] == f"[{REF}] 我们已收到您的投诉"
    assert smtp_server.received[0].mail_from == f"certdesk@{DOMAIN}"
    row = await outbox_row(engine, "ack0")
    assert row.status == "sent" and row.email_message_id == msgs[0]["Message-ID"]


async def test_4xx_is_retried_with_backoff_and_then_delivered(
    engine: AsyncEngine, smtp_server: SmtpSink
) -> None:
    clock = FrozenClock(T0)
    sender = sender_for(smtp_server, clock)
    outbox = Outbox(session_factory(engine), {"email": sender}, clock)
    await queue_answer(engine)
    smtp_server.fail_with(451, 1)
    smtp_server.fail_with(450, 1, at="rcpt")
    try:
        first = await outbox.drain()
        assert first.retried == 1 and first.sent == 0
        row = await outbox_row(engine)
        assert row.status == "queued" and "450" in (row.last_error or "")  # RCPT comes first
        clock.advance(hours=1)
        second = await outbox.drain()
        assert second.retried == 1 and "451" in second.errors[0]
        clock.advance(hours=1)
        assert (await outbox.drain()).sent == 1
    finally:
        await sender.close()
    assert len(received(smtp_server, 1)) == 1
    assert (await outbox_row(engine)).attempts == 2


async def test_5xx_fails_the_message_and_alerts_staff(
    engine: AsyncEngine, smtp_server: SmtpSink
) -> None:
    clock = FrozenClock(T0)
    sender = sender_for(smtp_server, clock)
    outbox = Outbox(session_factory(engine), {"email": sender}, clock, staff_chat_id=STAFF_CHAT)
    await queue_answer(engine, key="bad", to="nobody@163.com")
    await queue_answer(engine, key="good", to="ok@163.com")
    smtp_server.fail_with(550, 1, at="rcpt", text="5.1.1 user unknown")
    try:
        stats = await outbox.drain()
    finally:
        await sender.close()
    # The refusal of one recipient does not spoil the connection for the next message.
    assert stats.failed == 1 and stats.sent == 1
    assert received(smtp_server, 1)[0]["To"] == "ok@163.com"
    bad = await outbox_row(engine, "bad")
    assert bad.status == "failed" and "550" in (bad.last_error or "")
    alert = await outbox_row(engine, f"outbox-failed:{bad.id}")
    assert "nobody@163.com" in alert.payload["text"]


async def test_unreachable_server_is_a_transient_failure(engine: AsyncEngine) -> None:
    clock = FrozenClock(T0)
    sender = SmtpSender(
        host=HOST,
        port=free_port(),
        security="none",
        mail_from=f"certdesk@{DOMAIN}",
        mail_domain=DOMAIN,
        clock=clock,
        timeout=2.0,
    )
    outbox = Outbox(session_factory(engine), {"email": sender}, clock)
    await queue_answer(engine)
    stats = await outbox.drain()
    assert stats.retried == 1
    row = await outbox_row(engine)
    assert row.status == "queued" and row.next_attempt_at > T0 + timedelta(seconds=10)


# --- TLS --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (openssl, one second)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def _server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(certificate[0]), str(certificate[1]))
    return context


def _authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"desk", b"s3cret")
    return AuthResult(success=ok, handled=False)  # handled=False: the server answers 535


@pytest.fixture(params=["starttls", "tls"])
def tls_server(request: pytest.FixtureRequest, certificate: tuple[Path, Path]) -> Iterator[Any]:
    """aiosmtpd requiring STARTTLS and a login, or speaking TLS from the first byte."""
    sink = SmtpSink(HOST, free_port())
    context = _server_context(certificate)
    options: dict[str, Any] = {"authenticator": _authenticate, "auth_required": True}
    if request.param == "starttls":
        options |= {"tls_context": context, "require_starttls": True}
    else:
        # Implicit TLS is invisible to aiosmtpd's session: offer AUTH on what is TLS anyway
        # (it refuses to *require* AUTH without STARTTLS; the login is still checked).
        options |= {"ssl_context": context, "auth_require_tls": False, "auth_required": False}
    controller = Controller(sink, hostname=HOST, port=sink.port, ready_timeout=5.0, **options)
    controller.start()
    try:
        yield request.param, sink
    finally:
        controller.stop()


async def test_smtp_security_as_configured_with_login(
    engine: AsyncEngine, tls_server: tuple[str, SmtpSink], certificate: tuple[Path, Path]
) -> None:
    security, server = tls_server
    clock = FrozenClock(T0)
    trusted = ssl.create_default_context(cafile=str(certificate[0]))
    sender = sender_for(
        server,
        clock,
        security=security,
        username="desk",
        password="s3cret",
        tls_context=trusted,
    )
    outbox = Outbox(session_factory(engine), {"email": sender}, clock)
    await queue_answer(engine)
    try:
        assert (await outbox.drain()).sent == 1
    finally:
        await sender.close()
    assert received(server)[0]["Subject"] == f"[{REF}] 我们已收到您的投诉"


async def test_wrong_password_keeps_the_letter_queued(
    engine: AsyncEngine, tls_server: tuple[str, SmtpSink], certificate: tuple[Path, Path]
) -> None:
    security, server = tls_server
    clock = FrozenClock(T0)
    trusted = ssl.create_default_context(cafile=str(certificate[0]))
    sender = sender_for(
        server, clock, security=security, username="desk", password="nope", tls_context=trusted
    )
    outbox = Outbox(session_factory(engine), {"email": sender}, clock)
    await queue_answer(engine)
    try:
        stats = await outbox.drain()
    finally:
        await sender.close()
    assert stats.retried == 1
    row = await outbox_row(engine)
    assert row.status == "queued" and "login refused" in (row.last_error or "")
