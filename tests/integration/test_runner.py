"""`certdesk run` / `serve`: with everything configured (Telegram, the IMAP inbox and SMTP in one
process), headless without a token (mainland China: e-mail and staff robots), and the local mode
kept away from a real deployment's database and outbox."""

from __future__ import annotations

import asyncio
import io
import socket
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

import httpx
import pytest
from sqlmodel import select

from bot.clock import Clock
from bot.config import ConfigError, load_settings
from bot.emulator import Emulator
from bot.main.desk import open_desk
from bot.main.runner import local_chat, local_settings, run_mode, serve
from storage.db import upgrade_async
from storage.models import OutboxMessage
from storage.repo.outbox import enqueue
from tests.fixtures.mail import Mailbox, SmtpSink
from tests.fixtures.robots import RobotEmulator
from tests.fixtures.telegram_app import expect


def _letter() -> bytes:
    msg = EmailMessage()
    msg["From"] = "李四 <lisi@example.cn>"
    msg["To"] = "certdesk@example.test"
    msg["Subject"] = "投诉：审核员未出示证件"
    msg["Message-ID"] = "<letter-1@example.cn>"
    msg.set_content("审核员到场后未出示任何证件，也未说明审核计划。请调查处理。")
    return msg.as_bytes(policy=SMTP)


async def test_a_letter_to_the_inbox_is_acknowledged_while_the_bot_runs(
    database_url: str,
    data_dir: Path,
    emulator: Emulator,
    mailbox: Mailbox,
    smtp_server: SmtpSink,
) -> None:
    settings = load_settings(
        database_url=database_url,
        data_dir=data_dir,
        telegram_bot_token="123:ABC",
        telegram_api_base_url=emulator.base_url,
        telegram_file_base_url=emulator.base_file_url,
        staff_chat_id=-77,
        imap_host=mailbox.host,
        imap_port=mailbox.port,
        imap_ssl=False,
        imap_user=mailbox.user,
        imap_password=mailbox.password,
        smtp_host=smtp_server.host,
        smtp_port=smtp_server.port,
        smtp_security="none",
        mail_domain="example.test",
    )
    staff = emulator.user(5, "Mei", chat_type="group", chat_id=-77)
    # `serve` runs on the real clock: the reference carries this year (in Shanghai), not 2026.
    ref_prefix = f"TS-{Clock().today().year}-"
    stop = asyncio.Event()
    task = asyncio.create_task(serve(settings, stop))
    try:
        mailbox.append(_letter())
        await smtp_server.wait_for(1, timeout=30)
        ack = smtp_server.received[0]
        assert ack.rcpt_tos == ["lisi@example.cn"]
        text = ack.content.decode("utf-8", "replace")
        assert f"[{ref_prefix}" in text and "In-Reply-To: <letter-1@example.cn>" in text
        await expect(staff, ref_prefix, timeout=30)  # the new-case alert to the staff chat
    finally:
        stop.set()
        assert await task == 0


async def test_without_a_token_the_service_runs_on_mail_and_staff_robots(
    database_url: str,
    data_dir: Path,
    mailbox: Mailbox,
    smtp_server: SmtpSink,
    robots: RobotEmulator,
) -> None:
    """Telegram blocked (mainland China): no TELEGRAM_BOT_TOKEN, yet the inbox is read, the
    complainant acknowledged by e-mail, and staff alerted on WeCom and by e-mail."""
    settings = load_settings(
        _env_file=None,
        database_url=database_url,
        data_dir=data_dir,
        imap_host=mailbox.host,
        imap_port=mailbox.port,
        imap_ssl=False,
        imap_user=mailbox.user,
        imap_password=mailbox.password,
        smtp_host=smtp_server.host,
        smtp_port=smtp_server.port,
        smtp_security="none",
        mail_domain="example.test",
        wecom_webhook_url=robots.wecom_url,
        staff_alert_emails=["desk@example.test"],
    )
    assert run_mode(settings) == "headless"  # what `certdesk run` picks
    ref_prefix = f"TS-{Clock().today().year}-"
    stop = asyncio.Event()
    task = asyncio.create_task(serve(settings, stop))
    try:
        mailbox.append(_letter())
        mails = await smtp_server.wait_for(2, timeout=30)
        to = {tuple(m.rcpt_tos) for m in mails}
        assert ("lisi@example.cn",) in to and ("desk@example.test",) in to
        alert = (await robots.wait_for("wecom", 1, timeout=30))[0]
        assert ref_prefix in str(alert.body)
    finally:
        stop.set()
        assert await task == 0


async def test_the_service_serves_the_staff_console_when_console_port_is_set(
    database_url: str, data_dir: Path
) -> None:
    with socket.socket() as probe:  # a free port for the console
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = load_settings(
        _env_file=None,
        database_url=database_url,
        data_dir=data_dir,
        console_port=port,
        console_secret_key="k" * 40,
    )
    assert run_mode(settings) == "headless"
    stop = asyncio.Event()
    task = asyncio.create_task(serve(settings, stop))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(200):  # until it listens; each try is a real request
                try:
                    health = await client.get("/healthz")
                    break
                except httpx.ConnectError:
                    await asyncio.sleep(0.05)
            assert health.status_code == 200
            assert (await client.get("/")).status_code in (302, 303, 401)  # sign in first
    finally:
        stop.set()
        assert await task == 0


def test_run_picks_telegram_the_service_or_the_local_chat() -> None:
    empty = load_settings(_env_file=None)
    assert run_mode(empty) == "local"  # `make run` with an empty .env: the terminal chat
    assert run_mode(empty.model_copy(update={"imap_host": "imap.example.cn"})) == "headless"
    assert run_mode(empty.model_copy(update={"smtp_host": "smtp.example.cn"})) == "headless"
    assert run_mode(load_settings(_env_file=None, telegram_bot_token="1:X")) == "telegram"


async def test_serve_with_nothing_configured_says_what_to_set(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="TELEGRAM_BOT_TOKEN, or IMAP_HOST"):
        await serve(load_settings(_env_file=None, data_dir=tmp_path))


async def test_the_local_chat_never_touches_the_real_database_or_outbox(
    tmp_path: Path, mailbox: Mailbox
) -> None:
    """`certdesk chat` with the real .env (the default SQLite under DATA_DIR, an inbox, a staff
    chat): the real deployment's queued staff alert stays queued and its inbox is not read; the
    chat has its own database."""
    data_dir = tmp_path / "data"
    real = load_settings(
        _env_file=None,
        data_dir=data_dir,
        staff_chat_id=-100123,
        imap_host=mailbox.host,
        imap_port=mailbox.port,
        imap_ssl=False,
        imap_user=mailbox.user,
        imap_password=mailbox.password,
        smtp_host="127.0.0.1",
    )
    await upgrade_async(real.effective_database_url)
    desk = await open_desk(real)
    try:
        async with desk.sessions() as session, session.begin():
            await enqueue(
                session,
                channel="telegram",
                recipient="-100123",
                payload={"text": "new case"},
                idempotency_key="real-alert",
                now=desk.clock.now(),
            )
        mailbox.append(_letter())
        out = io.StringIO()
        assert await local_chat(real, stdin=io.StringIO("/start\n/quit\n"), stdout=out) == 0
        async with desk.sessions() as session:
            rows = (await session.exec(select(OutboxMessage))).all()
        assert [(r.status, r.attempts) for r in rows] == [("queued", 0)]
        with mailbox.client() as imap:
            imap.select_folder("INBOX")
            assert len(imap.search("ALL")) == 1  # the letter was left for the real service
    finally:
        await desk.close()
    local = local_settings(real)
    assert local.data_dir == data_dir / "local" and local.imap_host is None
    assert (data_dir / "local" / "certdesk.db").exists()
    with pytest.raises(ConfigError, match="LOCAL_DATA_DIR"):
        local_settings(real.model_copy(update={"local_data_dir": data_dir}))
