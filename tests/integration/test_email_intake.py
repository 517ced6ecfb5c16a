"""The e-mail inbox end to end: real Dovecot in, real database, outbox, real SMTP server out."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from bot.clock import SHANGHAI, FrozenClock
from bot.config import load_settings
from bot.delivery.smtp import SmtpSender
from bot.desk import Desk, load_calendar
from bot.main.cli import main
from bot.outbox.worker import Outbox
from bot.profiles import load_profile
from bot.services.inbound_mail import acting, batch
from handlers.email import chunks, intake, parsing
from handlers.email.parse import parse_message
from storage.db import session_factory
from storage.models import Case, CaseEvent, Deadline, InboundEmail, OutboxMessage, StoredFile
from tests.fixtures.mail import Mailbox, ReceivedMail, SmtpSink, free_port
from tests.fixtures.mail_corpus import (
    b64,
    base_headers,
    corpus,
    ew,
    file_part,
    message,
    mixed_headers,
    multipart,
    pdf_bytes,
    text_part,
)

pytestmark = pytest.mark.dovecot

STAFF_CHAT = -100777
DOMAIN = "desk.example.test"
INBOX_ADDRESS = f"certdesk@{DOMAIN}"
T0 = datetime(2026, 9, 28, 2, 0, tzinfo=UTC)  # Monday 10:00 in Shanghai


@pytest.fixture
async def desk(
    engine: AsyncEngine, database_url: str, data_dir: Path, mailbox: Mailbox, smtp_server: SmtpSink
) -> AsyncIterator[Desk]:
    settings = load_settings(
        data_dir=data_dir,
        database_url=database_url,
        staff_chat_id=STAFF_CHAT,
        mail_domain=DOMAIN,
        mail_from=INBOX_ADDRESS,
        imap_host=mailbox.host,
        imap_port=mailbox.port,
        imap_ssl=False,
        imap_user=mailbox.user,
        imap_password=mailbox.password,
        imap_poll_seconds=30,
        smtp_host=smtp_server.host,
        smtp_port=smtp_server.port,
        smtp_security="none",
        auto_replies_per_sender_per_hour=3,
        max_upload_bytes=100_000,
    )
    yield Desk(
        settings=settings,
        profile=load_profile(settings.profile),
        calendar=load_calendar(settings),
        engine=engine,
        sessions=session_factory(engine),
        clock=FrozenClock(T0),
    )


@pytest.fixture
async def deliver(desk: Desk) -> AsyncIterator[Callable[[], asyncio.Future[int]]]:
    """Drain the outbox through the real SMTP sender; returns how many e-mails went out."""
    sender = SmtpSender.from_settings(desk.settings, desk.clock)
    assert sender is not None
    outbox = Outbox(desk.sessions, {"email": sender}, desk.clock, staff_chat_id=STAFF_CHAT)

    async def run() -> int:
        return (await outbox.drain()).sent

    yield run  # type: ignore[misc]
    await sender.close()


def letter(
    subject: str,
    body: str,
    *,
    sender: str = "zhang.wei@qq.com",
    message_id: str,
    charset: str = "gbk",
    extra: list[tuple[str, str]] | None = None,
) -> bytes:
    return message(
        [
            *base_headers(ew(subject, charset), sender=sender, message_id=message_id),
            *(extra or []),
            ("Content-Type", f"text/plain; charset={charset}"),
            ("Content-Transfer-Encoding", "base64"),
        ],
        b64(body.encode(charset)),
    )


def parsed(mail: ReceivedMail) -> EmailMessage:
    msg = email.message_from_bytes(mail.content, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def body_of(msg: EmailMessage) -> str:
    part = msg.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def folder_count(mailbox: Mailbox, folder: str) -> int:
    with mailbox.client() as client:
        if not client.folder_exists(folder):
            return 0
        return int(client.select_folder(folder, readonly=True)[b"EXISTS"])


async def cases_by_source(desk: Desk) -> dict[str, Case]:
    async with desk.sessions() as s:
        rows = (await s.exec(select(Case).order_by(col(Case.id)))).all()
    return {(c.thread_message_ids or [""])[0]: c for c in rows}


async def staff_texts(desk: Desk) -> list[str]:
    async with desk.sessions() as s:
        query = select(OutboxMessage).where(OutboxMessage.recipient == str(STAFF_CHAT))
        return [m.payload["text"] for m in (await s.exec(query.order_by(col(OutboxMessage.id))))]


# ---------------------------------------------------------------------------------------------


async def test_chinese_letters_become_cases_and_senders_get_threaded_acknowledgements(
    desk: Desk, mailbox: Mailbox, smtp_server: SmtpSink, deliver: Callable[[], asyncio.Future[int]]
) -> None:
    mailbox.append(letter("关于审核员的投诉", "审核员态度恶劣。", message_id="<c1@qq.com>"))
    mailbox.append(
        letter(
            "申诉：不予认证决定",
            "我公司对不予认证的决定提出申诉。",
            sender="wang@163.com",
            message_id="<a1@163.com>",
            charset="gb18030",
        )
    )
    mailbox.append(
        letter(
            "對審核結論的申訴",
            "本公司對審核結論提出申訴。",
            sender="chen@hinet.net",
            message_id="<b1@hinet.net>",
            charset="big5",
        )
    )
    mailbox.append(
        letter(
            "Dispute about the audit finding",
            "We dispute the major nonconformity raised on site.",
            sender="jane@company.example",
            message_id="<d1@company.example>",
            charset="utf-8",
        )
    )

    stats = await intake.run_once(desk)
    assert stats.cases == 4 and stats.quarantined == 0
    cases = await cases_by_source(desk)
    assert {mid: c.kind for mid, c in cases.items()} == {
        "<c1@qq.com>": "complaint",
        "<a1@163.com>": "appeal",
        "<b1@hinet.net>": "appeal",
        "<d1@company.example>": "dispute",
    }
    assert cases["<c1@qq.com>"].subject == "关于审核员的投诉"
    assert cases["<c1@qq.com>"].complainant_name == "张伟"
    # Out of the inbox, read, into the processed folder.
    assert folder_count(mailbox, "INBOX") == 0
    assert folder_count(mailbox, "Processed") == 4
    with mailbox.client() as client:
        client.select_folder("Processed", readonly=True)
        flags = client.get_flags(client.search(["ALL"]))
    assert all(b"\\Seen" in f for f in flags.values())

    assert await deliver() == 4
    received = {m.rcpt_tos[0]: parsed(m) for m in await smtp_server.wait_for(4)}
    ack = received["zhang.wei@qq.com"]
    ref = cases["<c1@qq.com>"].ref
    assert f"[{ref}]" in ack["Subject"] and "投诉" in ack["Subject"]
    assert ack["In-Reply-To"] == "<c1@qq.com>"
    assert ack["Auto-Submitted"] == "auto-replied"
    assert ack["X-Certdesk-Loop"] == DOMAIN
    assert ack["Message-ID"].endswith(f"@{DOMAIN}>")
    assert ref in body_of(ack)
    english = received["jane@company.example"]
    assert "We have received" in english["Subject"]
    assert cases["<d1@company.example>"].ref in body_of(english)

    # A second pass finds nothing new: nothing opened twice, nothing answered twice.
    again = await intake.run_once(desk)
    assert again.handled == 0 and again.moved == 0
    assert await deliver() == 0


async def test_a_reply_threads_into_its_case_with_its_attachment(
    desk: Desk, mailbox: Mailbox, smtp_server: SmtpSink, deliver: Callable[[], asyncio.Future[int]]
) -> None:
    mailbox.append(letter("投诉", "我要投诉。", message_id="<first@qq.com>"))
    await intake.run_once(desk)
    await deliver()
    ack = parsed((await smtp_server.wait_for(1))[0])
    case = (await cases_by_source(desk))["<first@qq.com>"]

    # QQ Mail's reply: threading headers, a subject without our tag, a PDF with a Chinese name.
    reply = message(
        [
            *base_headers(ew("回复：我们已收到您的投诉", "utf-8"), message_id="<second@qq.com>"),
            ("In-Reply-To", ack["Message-ID"]),
            ("References", f"<first@qq.com> {ack['Message-ID']}"),
            mixed_headers(),
        ],
        multipart(
            "mixed",
            [
                text_part("补充证据见附件。", "utf-8"),
                file_part(
                    pdf_bytes(),
                    "application/pdf",
                    "filename*=utf-8''%E7%8E%B0%E5%9C%BA%E7%85%A7%E7%89%87.pdf",
                ),
            ],
        ),
    )
    mailbox.append(reply)
    stats = await intake.run_once(desk)
    assert stats.replies == 1 and stats.cases == 0

    async with desk.sessions() as s:
        events = (
            await s.exec(
                select(CaseEvent).where(CaseEvent.case_id == case.id).order_by(col(CaseEvent.seq))
            )
        ).all()
        stored = (await s.exec(select(StoredFile))).all()
    added = [e for e in events if e.type == "information_added"]
    assert len(added) == 1 and added[0].data is not None
    assert "补充证据见附件" in added[0].data["text"]
    assert added[0].data["attachments"][0]["name"] == "现场照片.pdf"
    assert len(stored) == 1 and (desk.data_dir / stored[0].path).read_bytes() == pdf_bytes()
    assert any(case.ref in text and "补充" in text for text in await staff_texts(desk))

    # The sender is told the letter joined the case, in the same thread.
    assert await deliver() == 1
    answer = parsed((await smtp_server.wait_for(2))[1])
    assert f"[{case.ref}]" in answer["Subject"]
    assert answer["In-Reply-To"] == "<second@qq.com>"
    assert "<first@qq.com>" in answer["References"]

    # A reply carrying only the subject tag joins the case too.
    mailbox.append(letter(f"Re: [{case.ref}] 投诉", "还有一点补充。", message_id="<third@qq.com>"))
    assert (await intake.run_once(desk)).replies == 1


async def test_out_of_office_reply_is_recorded_but_never_answered(
    desk: Desk, mailbox: Mailbox, smtp_server: SmtpSink, deliver: Callable[[], asyncio.Future[int]]
) -> None:
    mailbox.append(letter("投诉", "我要投诉。", message_id="<x1@company.cn>"))
    await intake.run_once(desk)
    assert await deliver() == 1
    ack = parsed((await smtp_server.wait_for(1))[0])
    case = (await cases_by_source(desk))["<x1@company.cn>"]
    # Outlook's out-of-office answer to our acknowledgement.
    mailbox.append(
        letter(
            f"自动答复: [{case.ref}] 我们已收到您的投诉",
            "我正在休假，3月20日返回。",
            message_id="<ooo@company.cn>",
            charset="gbk",
            extra=[("X-Auto-Response-Suppress", "All"), ("In-Reply-To", ack["Message-ID"])],
        )
    )
    stats = await intake.run_once(desk)
    assert stats.automatic == 1 and stats.replies == 0
    assert await deliver() == 0
    assert len(smtp_server.received) == 1
    async with desk.sessions() as s:
        row = (
            await s.exec(select(InboundEmail).where(InboundEmail.message_id == "<ooo@company.cn>"))
        ).one()
    assert row.status == "ignored" and row.case_id == case.id
    assert folder_count(mailbox, "Processed") == 2


def dsn(original_id: str, failed: str) -> bytes:
    status = (
        "Reporting-MTA: dns; mx.qq.com\r\n\r\n"
        f"Final-Recipient: rfc822; {failed}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 mailbox not found\r\n"
    ).encode()
    headers = f"From: {INBOX_ADDRESS}\r\nTo: {failed}\r\nMessage-ID: {original_id}\r\n".encode()
    return message(
        [
            ("Return-Path", "<>"),
            ("From", "MAILER-DAEMON@mx.qq.com (Mail Delivery System)"),
            ("To", INBOX_ADDRESS),
            ("Subject", "Undelivered Mail Returned to Sender"),
            ("Message-ID", "<bounce.1@mx.qq.com>"),
            ("Auto-Submitted", "auto-replied"),
            ("MIME-Version", "1.0"),
            ("Content-Type", 'multipart/report; report-type=delivery-status; boundary="B"'),
        ],
        multipart(
            "report",
            [
                text_part("Delivery to the following recipient failed.", "us-ascii", "8bit"),
                b"Content-Type: message/delivery-status\r\n\r\n" + status,
                b"Content-Type: text/rfc822-headers\r\n\r\n" + headers,
            ],
            boundary="B",
        ),
    )


async def test_bounce_is_linked_to_the_message_it_returns_and_staff_are_told(
    desk: Desk, mailbox: Mailbox, smtp_server: SmtpSink, deliver: Callable[[], asyncio.Future[int]]
) -> None:
    mailbox.append(letter("投诉", "我要投诉。", sender="gone@qq.com", message_id="<g1@qq.com>"))
    await intake.run_once(desk)
    await deliver()
    ack = parsed((await smtp_server.wait_for(1))[0])
    case = (await cases_by_source(desk))["<g1@qq.com>"]

    mailbox.append(dsn(ack["Message-ID"], "gone@qq.com"))
    stats = await intake.run_once(desk)
    assert stats.bounces == 1 and stats.cases == 0
    assert await deliver() == 0  # a bounce is never answered
    async with desk.sessions() as s:
        sent = (
            await s.exec(
                select(OutboxMessage).where(OutboxMessage.email_message_id == ack["Message-ID"])
            )
        ).one()
        row = (
            await s.exec(
                select(InboundEmail).where(InboundEmail.message_id == "<bounce.1@mx.qq.com>")
            )
        ).one()
    assert sent.status == "failed" and "bounced: gone@qq.com" in (sent.last_error or "")
    assert row.kind == "bounce" and row.case_id == case.id
    alerts = await staff_texts(desk)
    assert any("gone@qq.com" in text and case.ref in text for text in alerts)


async def test_a_broken_message_is_quarantined_and_the_next_one_processed(
    desk: Desk, mailbox: Mailbox, deliver: Callable[[], asyncio.Future[int]]
) -> None:
    mailbox.append(b"\x00\xff\xfe garbage\r\nno headers here\r\n\xff\xff")
    mailbox.append(letter("投诉", "我要投诉。", message_id="<after@qq.com>"))
    stats = await intake.run_once(desk)
    assert stats.quarantined == 1 and stats.cases == 1
    assert folder_count(mailbox, "Quarantine") == 1
    assert folder_count(mailbox, "Processed") == 1
    assert folder_count(mailbox, "INBOX") == 0
    async with desk.sessions() as s:
        kept = (
            await s.exec(select(InboundEmail).where(InboundEmail.status == "quarantined"))
        ).one()
    assert b"garbage\r\nno headers here" in kept.raw  # stored raw (the server turns NUL to 0x80)
    assert any("Quarantine" in text for text in await staff_texts(desk))
    assert await deliver() == 1


async def test_a_letter_over_the_size_limit_is_not_fetched_whole_but_quarantined(
    desk: Desk, mailbox: Mailbox, deliver: Callable[[], asyncio.Future[int]]
) -> None:
    limit = intake.letter_size_limit(desk)
    scan = pdf_bytes() + bytes(range(256)) * (limit // 256)  # base64: a third over the limit
    huge = message(
        [
            *base_headers(ew("投诉材料", "utf-8"), message_id="<huge@qq.com>"),
            mixed_headers(),
        ],
        multipart(
            "mixed",
            [
                text_part("投诉，证据见附件。", "utf-8"),
                file_part(scan, "application/pdf", 'filename="scan.pdf"'),
            ],
        ),
    )
    assert len(huge) > limit
    mailbox.append(huge)
    mailbox.append(letter("投诉", "我要投诉。", message_id="<small@qq.com>"))

    stats = await intake.run_once(desk)
    assert stats.quarantined == 1 and stats.cases == 1
    assert set(await cases_by_source(desk)) == {"<small@qq.com>"}
    assert folder_count(mailbox, "Quarantine") == 1 and folder_count(mailbox, "Processed") == 1
    with mailbox.client() as client:  # the letter itself waits there for staff, untouched
        client.select_folder("Quarantine", readonly=True)
        (item,) = client.fetch(client.search(["ALL"]), ["RFC822.SIZE", "FLAGS"]).values()
    assert item[b"RFC822.SIZE"] == len(huge) and b"\\Seen" in item[b"FLAGS"]
    async with desk.sessions() as s:
        row = (
            await s.exec(select(InboundEmail).where(InboundEmail.message_id == "<huge@qq.com>"))
        ).one()
    assert row.status == "quarantined"
    assert row.raw.startswith(b"From:") and b"Content-Disposition" not in row.raw  # header only
    assert len(row.raw) < 2_000
    assert any(p.startswith("too_large") and str(len(huge)) in p for p in row.problems or [])
    (alert,) = [text for text in await staff_texts(desk) if "Quarantine" in text]
    assert "too_large" in alert and "zhang.wei@qq.com" in alert and f"#{row.id}" in alert
    assert await deliver() == 1  # the small letter's acknowledgement; the large one none

    again = await intake.run_once(desk)
    assert again.handled == 0 and again.moved == 0


async def test_letters_are_held_in_memory_a_few_bytes_at_a_time(
    desk: Desk, mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chunks, "CHUNK_BYTES", 1)  # every letter a part of its own
    for name in ("one", "two", "three"):
        mailbox.append(letter("投诉", "我要投诉。", message_id=f"<{name}@qq.com>"))
    mailbox.append(letter("投诉", "我要投诉。", message_id="<one@qq.com>"))  # delivered twice
    stats = await intake.run_once(desk)
    assert stats.cases == 3 and stats.duplicates == 1 and stats.moved == 4
    assert folder_count(mailbox, "INBOX") == 0 and folder_count(mailbox, "Processed") == 4


async def test_a_letter_that_breaks_the_intake_is_undone_and_quarantined_alone(
    desk: Desk,
    mailbox: Mailbox,
    deliver: Callable[[], asyncio.Future[int]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Fault injection: the letter's case is opened, then the intake fails (a bug, say) — in
    # the batch the three letters are acted upon in, and again when each is tried alone.
    real, real_batch = acting.act_on, batch._write

    async def failing(desk: Desk, uow: Any, row: InboundEmail, parse: Any) -> acting.Outcome:
        outcome = await real(desk, uow, row, parse)
        if row.message_id == "<boom@qq.com>":
            raise RuntimeError("bug")
        return outcome

    async def failing_batch(desk: Desk, uow: Any, plan: Any) -> dict[int, acting.Outcome]:
        outcomes = await real_batch(desk, uow, plan)
        if any(x.parsed.message_id == "<boom@qq.com>" for _, x in plan.order):
            raise RuntimeError("bug")
        return outcomes

    monkeypatch.setattr(acting, "act_on", failing)
    monkeypatch.setattr(batch, "_write", failing_batch)
    for name in ("before", "boom", "after"):
        mailbox.append(letter("投诉", "我要投诉。", message_id=f"<{name}@qq.com>"))
    stats = await intake.run_once(desk)
    assert stats.cases == 2 and stats.quarantined == 1
    # The failed letter's case and acknowledgement are gone with it; its neighbours stay.
    assert set(await cases_by_source(desk)) == {"<before@qq.com>", "<after@qq.com>"}
    assert await deliver() == 2
    assert folder_count(mailbox, "Quarantine") == 1 and folder_count(mailbox, "Processed") == 2
    async with desk.sessions() as s:
        row = (await s.exec(select(InboundEmail).where(InboundEmail.status == "quarantined"))).one()
    assert row.message_id == "<boom@qq.com>"
    assert "intake_error: RuntimeError" in (row.problems or [])


async def test_a_letter_the_parser_cannot_take_is_quarantined_and_the_others_go_through(
    desk: Desk,
    mailbox: Mailbox,
    deliver: Callable[[], asyncio.Future[int]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A parser bug on one letter: while reading ahead, in the batch and again alone.
    real = parsing.parse_message

    def fragile(raw: bytes, **kwargs: Any) -> Any:
        if b"<boom@qq.com>" in raw:
            raise ValueError("bug")
        return real(raw, **kwargs)

    monkeypatch.setattr(parsing, "parse_message", fragile)
    for name in ("before", "boom", "after"):
        mailbox.append(letter("投诉", "我要投诉。", message_id=f"<{name}@qq.com>"))
    stats = await intake.run_once(desk)
    assert stats.cases == 2 and stats.quarantined == 1
    assert set(await cases_by_source(desk)) == {"<before@qq.com>", "<after@qq.com>"}
    assert await deliver() == 2
    assert folder_count(mailbox, "Quarantine") == 1 and folder_count(mailbox, "Processed") == 2
    async with desk.sessions() as s:
        row = (await s.exec(select(InboundEmail).where(InboundEmail.status == "quarantined"))).one()
    assert row.message_id == "<boom@qq.com>"
    assert "intake_error: ValueError" in (row.problems or [])


async def test_the_whole_corpus_goes_through_without_stopping_and_robots_get_no_answer(
    desk: Desk, mailbox: Mailbox, deliver: Callable[[], asyncio.Future[int]]
) -> None:
    desk.settings.auto_replies_per_sender_per_hour = 100  # most of the corpus has one sender
    samples = corpus()
    for n, sample in enumerate(samples):
        # The corpus shares one Message-ID among most letters; here each is a letter of its own.
        raw = sample.raw.replace(b"<20260315093000.1A2B@qq.com>", f"<s{n}@qq.com>".encode())
        mailbox.append(raw)
    stats = await intake.run_once(desk)
    assert stats.handled + stats.duplicates == len(samples)
    assert folder_count(mailbox, "INBOX") == 0
    assert stats.quarantined == 1  # the garbage bytes, with no sender
    robots = sum(1 for sample in samples if parse_message(sample.raw).automatic)
    assert stats.automatic + stats.bounces == robots
    # Every case is acknowledged once; nothing else is answered.
    assert await deliver() == stats.cases
    assert stats.cases >= 15


async def test_the_same_letter_delivered_twice_opens_one_case(
    desk: Desk, mailbox: Mailbox, deliver: Callable[[], asyncio.Future[int]]
) -> None:
    raw = letter("投诉", "我要投诉。", message_id="<twice@qq.com>")
    no_id = message(
        [*base_headers("appeal", message_id=None), ("Content-Type", "text/plain")],
        b"I appeal against the decision.",
    )
    for item in (raw, no_id, raw, no_id):
        mailbox.append(item)
    stats = await intake.run_once(desk)
    assert stats.cases == 2 and stats.duplicates == 2
    assert folder_count(mailbox, "INBOX") == 0
    assert await deliver() == 2


async def test_enquiry_goes_to_staff_triage_without_a_case_or_an_answer(
    desk: Desk, mailbox: Mailbox, deliver: Callable[[], asyncio.Future[int]]
) -> None:
    mailbox.append(letter("请问证书查询", "请问如何查询证书状态？", message_id="<q@qq.com>"))
    stats = await intake.run_once(desk)
    assert stats.enquiries == 1 and stats.cases == 0
    assert await cases_by_source(desk) == {}
    assert any("请问如何查询证书状态" in text for text in await staff_texts(desk))
    assert await deliver() == 0


async def test_automatic_answers_to_one_sender_are_limited_per_hour(
    desk: Desk, mailbox: Mailbox, smtp_server: SmtpSink, deliver: Callable[[], asyncio.Future[int]]
) -> None:
    for n in range(5):
        mailbox.append(letter(f"投诉 {n}", "我要投诉。", message_id=f"<many{n}@qq.com>"))
    stats = await intake.run_once(desk)
    assert stats.cases == 5  # every letter is a case ...
    assert await deliver() == 3  # ... but only AUTO_REPLIES_PER_SENDER_PER_HOUR are answered
    # Staff hear of the first letter at once; the 4 more cases and the 2 letters over the limit
    # are counted into one summary about the sender (a flood is one alert with a count).
    texts = await staff_texts(desk)
    assert len(texts) == 2 and "另有 6 条关于 zhang.wei@qq.com" in texts[1]
    # An hour later the sender is answered again.
    assert isinstance(desk.clock, FrozenClock)
    desk.clock.advance(hours=1, minutes=1)
    mailbox.append(letter("投诉 6", "我要投诉。", message_id="<many6@qq.com>"))
    await intake.run_once(desk)
    assert await deliver() == 1
    assert len(await smtp_server.wait_for(4)) == 4


async def wait_until(check: Callable[[], asyncio.Future[bool]], timeout: float = 10.0) -> None:
    """Poll a condition (IDLE and the worker run on their own); fail after `timeout`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_running_worker_picks_up_new_mail_by_idle(desk: Desk, mailbox: Mailbox) -> None:
    stop = asyncio.Event()
    worker = asyncio.create_task(intake.run(desk, stop))
    try:
        mailbox.append(letter("投诉", "我要投诉。", message_id="<idle@qq.com>"))

        async def opened() -> bool:
            return "<idle@qq.com>" in await cases_by_source(desk)

        await wait_until(opened)  # well before the 30-second poll: IDLE told the worker
    finally:
        stop.set()
        await asyncio.wait_for(worker, timeout=10)


async def test_staff_are_told_once_when_the_mailbox_fails_and_when_it_is_back(
    desk: Desk, mailbox: Mailbox
) -> None:
    right = desk.settings.imap_port
    desk.settings.imap_port = free_port()  # nothing listens there: the connection is refused
    stop = asyncio.Event()
    worker = asyncio.create_task(intake.run(desk, stop, backoff_first=0.01))
    try:

        async def down() -> bool:
            return any("连续 5 次" in text for text in await staff_texts(desk))

        await wait_until(down)
        desk.settings.imap_port = right

        async def up() -> bool:
            return any("已恢复" in text for text in await staff_texts(desk))

        await wait_until(up)
    finally:
        stop.set()
        await asyncio.wait_for(worker, timeout=10)
    texts = await staff_texts(desk)
    assert sum("连续" in text for text in texts) == 1
    assert sum("已恢复" in text for text in texts) == 1


# --- the command line -------------------------------------------------------------------------


def test_email_parse_prints_what_the_intake_would_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAIL_DOMAIN", DOMAIN)
    path = tmp_path / "reply.eml"
    # A reply to our acknowledgement: the reference is in our own Message-ID.
    path.write_bytes(
        letter(
            "回复：我们已收到您的投诉",
            "谢谢。",
            message_id="<r@qq.com>",
            extra=[("In-Reply-To", f"<ts-2026-7k3f9q.0011223344556677@{DOMAIN}>")],
        )
    )
    assert main(["email", "parse", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["kind"] == "reply" and out["case_ref"] == "TS-2026-7K3F9Q"
    assert out["from"] == "zhang.wei@qq.com" and out["message_id"] == "<r@qq.com>"
    assert set(out) >= {"subject", "automatic", "bounce", "text", "attachments", "problems"}


def test_email_parse_of_a_broken_message_lists_its_problems_and_succeeds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "broken.eml"
    path.write_bytes(b"\x00\xff\xfe garbage\r\nno headers here\r\n\xff\xff")
    assert main(["email", "parse", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["from"] is None and "no_message_id" in out["problems"]


def test_email_parse_of_a_missing_file_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["email", "parse", str(tmp_path / "nope.eml"), "--json"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nope.eml" in err


def test_email_fetch_once_runs_one_intake_pass(
    database_url: str,
    data_dir: Path,
    mailbox: Mailbox,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = {
        "DATABASE_URL": database_url,
        "DATA_DIR": str(data_dir),
        "IMAP_HOST": mailbox.host,
        "IMAP_PORT": str(mailbox.port),
        "IMAP_SSL": "false",
        "IMAP_USER": mailbox.user,
        "IMAP_PASSWORD": mailbox.password,
    }
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    mailbox.append(letter("申诉", "我公司提出申诉。", message_id="<cli@qq.com>"))
    assert main(["email", "fetch", "--once"]) == 0
    assert json.loads(capsys.readouterr().out)["cases"] == 1
    assert folder_count(mailbox, "Processed") == 1

    monkeypatch.setenv("IMAP_PORT", str(free_port()))  # nothing listens: one line, exit 2
    assert main(["email", "fetch", "--once"]) == 2
    assert capsys.readouterr().err.startswith("certdesk: cannot open")


async def test_a_letter_is_received_the_day_it_reached_the_inbox_not_the_day_it_is_read(
    desk: Desk, mailbox: Mailbox
) -> None:
    """It reached the inbox on Friday evening (INTERNALDATE, Shanghai); the intake reads it on
    Monday: the case and its deadlines count from Friday."""
    friday = datetime(2026, 9, 25, 18, 30, tzinfo=SHANGHAI)
    monday = desk.clock.now().astimezone(SHANGHAI).date()
    assert (monday - friday.date()).days == 3
    raw = letter("投诉：审核员迟到", "审核员迟到两小时。", message_id="<friday@qq.com>")
    with mailbox.client() as client:
        client.append("INBOX", raw, msg_time=friday)
    assert (await intake.run_once(desk)).cases == 1
    async with desk.sessions() as s:
        assert len((await s.exec(select(Case))).all()) == 1
        (received,) = (await s.exec(select(CaseEvent).where(CaseEvent.type == "received"))).all()
        starts = {d.start_on for d in (await s.exec(select(Deadline))).all()}
    assert received.data["received_on"] == "2026-09-25"
    assert starts == {friday.date()}
