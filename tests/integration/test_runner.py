"""`certdesk run` with everything configured: Telegram, the IMAP inbox and SMTP in one process."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

from bot.clock import Clock
from bot.config import load_settings
from bot.emulator import Emulator
from bot.main.runner import serve
from tests.fixtures.mail import Mailbox, SmtpSink
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
