"""The mail servers the intake and delivery tests run against (tests/fixtures/mail.py)."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from typing import TYPE_CHECKING

import aiosmtplib
import pytest
from aiosmtplib.errors import SMTPDataError

from tests.fixtures.mail_corpus import corpus

if TYPE_CHECKING:  # imported for real by pytest as a plugin, before assertion rewriting
    from tests.fixtures.mail import Mailbox, SmtpSink

# Until tests/conftest.py registers the plugin for the whole suite.


@pytest.mark.dovecot
def test_append_then_peek_returns_same_bytes_and_keeps_unseen(mailbox: Mailbox) -> None:
    raw = next(s.raw for s in corpus() if s.name == "raw_8bit_headers_gbk")
    uid = mailbox.append(raw)
    with mailbox.client() as client:
        client.select_folder("INBOX")
        assert client.search() == [uid]
        fetched = client.fetch([uid], ["BODY.PEEK[]", "FLAGS"])[uid]
        assert fetched[b"BODY[]"] == raw
        assert b"\\Seen" not in fetched[b"FLAGS"]
        assert b"\\Seen" not in client.get_flags([uid])[uid]


@pytest.mark.dovecot
def test_each_mailbox_is_a_fresh_account(mailbox: Mailbox) -> None:
    mailbox.append(b"Subject: x\r\nMessage-ID: <a@b>\r\n\r\nx\r\n", folder="Processed")
    with mailbox.client() as client:
        assert client.select_folder("INBOX")[b"EXISTS"] == 0
        assert client.select_folder("Processed")[b"EXISTS"] == 1


def _utf8_message() -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "certdesk@example.com"
    msg["To"] = "zhang.wei@qq.com"
    msg["Subject"] = "[TS-2026-7K3F9Q] 您的投诉已受理"
    msg.set_content("张先生：您好，您的投诉已受理。")
    return msg


async def test_aiosmtplib_sends_utf8_subject(smtp_server: SmtpSink) -> None:
    await aiosmtplib.send(_utf8_message(), hostname=smtp_server.host, port=smtp_server.port)
    (received,) = await smtp_server.wait_for(1)
    assert received.mail_from == "certdesk@example.com"
    assert received.rcpt_tos == ["zhang.wei@qq.com"]
    parsed = email.message_from_bytes(received.content, policy=email.policy.default)
    assert parsed["Subject"] == "[TS-2026-7K3F9Q] 您的投诉已受理"
    assert parsed.get_content().strip() == "张先生：您好，您的投诉已受理。"


async def test_fail_with_answers_temporary_errors_then_accepts(smtp_server: SmtpSink) -> None:
    smtp_server.fail_with(451, 1)
    with pytest.raises(SMTPDataError) as failure:
        await aiosmtplib.send(_utf8_message(), hostname=smtp_server.host, port=smtp_server.port)
    assert failure.value.code == 451
    await aiosmtplib.send(_utf8_message(), hostname=smtp_server.host, port=smtp_server.port)
    assert len(await smtp_server.wait_for(1, timeout=2)) == 1


async def test_wait_for_times_out(smtp_server: SmtpSink) -> None:
    with pytest.raises(AssertionError, match="expected 1 messages, got 0"):
        await smtp_server.wait_for(1, timeout=0.05)
