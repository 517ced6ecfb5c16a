"""Issue 10, item 3: a letter carrying someone else's case tag or thread, from an address the
case does not know, is kept for staff and acknowledged neutrally; it never joins the case."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from sqlmodel import col, select

from bot.desk import Desk
from handlers.email import intake
from storage.models import Case, CaseEvent, InboundEmail, OutboxMessage
from tests.fixtures.mail import Mailbox, SmtpSink
from tests.fixtures.mail_corpus import base_headers, ew, message
from tests.integration import test_email_intake as base
from tests.integration.test_email_intake import body_of, letter, parsed, staff_texts

desk = base.desk  # the fixtures: real Dovecot, SMTP sink, the database under test
deliver = base.deliver

pytestmark = pytest.mark.dovecot


async def open_victims_case(
    desk: Desk, mailbox: Mailbox, smtp_server: SmtpSink, deliver: Callable[[], asyncio.Future[int]]
) -> tuple[Case, str]:
    mailbox.append(letter("投诉", "审核员收受礼品。", message_id="<victim@qq.com>"))
    await intake.run_once(desk)
    assert await deliver() == 1
    ack = parsed((await smtp_server.wait_for(1))[0])
    async with desk.sessions() as s:
        case = (await s.exec(select(Case))).one()
    return case, str(ack["Message-ID"])


async def information_events(desk: Desk, case: Case) -> list[CaseEvent]:
    async with desk.sessions() as s:
        query = select(CaseEvent).where(
            CaseEvent.case_id == case.id, CaseEvent.type == "information_added"
        )
        return list((await s.exec(query.order_by(col(CaseEvent.seq)))).all())


def stranger_letter(subject: str, extra: list[tuple[str, str | bytes]]) -> bytes:
    headers = [
        *base_headers(ew(subject, "utf-8"), sender="evil@163.com", message_id="<evil@163.com>"),
        *extra,
        ("Content-Type", "text/plain; charset=utf-8"),
    ]
    return message(headers, "我是投诉人，请把处理结果发给我。".encode())


@pytest.mark.parametrize("how", ["subject_tag", "in_reply_to", "references", "reply_to_victim"])
async def test_a_stranger_never_joins_someone_elses_case(
    how: str,
    desk: Desk,
    mailbox: Mailbox,
    smtp_server: SmtpSink,
    deliver: Callable[[], asyncio.Future[int]],
) -> None:
    case, ack_id = await open_victims_case(desk, mailbox, smtp_server, deliver)
    extra: list[tuple[str, str | bytes]] = {
        "subject_tag": [],
        "in_reply_to": [("In-Reply-To", ack_id)],
        "references": [("References", f"<victim@qq.com> {ack_id}")],
        "reply_to_victim": [("Reply-To", "zhang.wei@qq.com")],
    }[how]
    subject = f"Re: [{case.ref}] 补充材料" if how in ("subject_tag", "reply_to_victim") else "补充"
    mailbox.append(stranger_letter(subject, extra))
    stats = await intake.run_once(desk)
    assert stats.replies == 0 and stats.enquiries == 1 and stats.cases == 0
    assert await information_events(desk, case) == []
    async with desk.sessions() as s:
        row = (
            await s.exec(select(InboundEmail).where(InboundEmail.message_id == "<evil@163.com>"))
        ).one()
        fresh = await s.get(Case, case.id)
    assert row.kind == "enquiry" and row.case_id is None
    assert fresh is not None and "<evil@163.com>" not in (fresh.thread_message_ids or [])
    alert = [t for t in await staff_texts(desk) if "evil@163.com" in t]
    assert len(alert) == 1 and case.ref in alert[0] and "其他发件人" in alert[0]
    # The sender hears that the letter arrived, and nothing of the case.
    assert await deliver() == 1
    answer = (await smtp_server.wait_for(2))[1]
    assert answer.rcpt_tos == [("zhang.wei@qq.com" if how == "reply_to_victim" else "evil@163.com")]
    assert case.ref.encode() not in answer.content
    assert case.ref.lower().encode() not in answer.content.lower()
    mail = parsed(answer)
    assert "[TS-" not in str(mail["Subject"]) and "收到" in body_of(mail)
    assert ack_id not in str(mail.get("References", "")) + str(mail.get("In-Reply-To", ""))


async def test_the_complainants_own_address_joins_in_any_letter_case(
    desk: Desk, mailbox: Mailbox, smtp_server: SmtpSink, deliver: Callable[[], asyncio.Future[int]]
) -> None:
    case, _ = await open_victims_case(desk, mailbox, smtp_server, deliver)
    mailbox.append(
        letter(
            f"Re: [{case.ref}] 补充",
            "补充一点。",
            sender="Zhang.Wei@QQ.com",
            message_id="<again@qq.com>",
        )
    )
    stats = await intake.run_once(desk)
    assert stats.replies == 1 and stats.enquiries == 0
    assert len(await information_events(desk, case)) == 1


async def test_a_forged_bounce_for_another_address_does_not_fail_our_message(
    desk: Desk, mailbox: Mailbox, smtp_server: SmtpSink, deliver: Callable[[], asyncio.Future[int]]
) -> None:
    _, ack_id = await open_victims_case(desk, mailbox, smtp_server, deliver)
    mailbox.append(base.dsn(ack_id, "evil@163.com"))
    stats = await intake.run_once(desk)
    assert stats.bounces == 1
    async with desk.sessions() as s:
        sent = (
            await s.exec(select(OutboxMessage).where(OutboxMessage.email_message_id == ack_id))
        ).one()
        row = (await s.exec(select(InboundEmail).where(InboundEmail.kind == "bounce"))).one()
    assert sent.status == "sent" and row.case_id is None
    assert await deliver() == 0


async def test_a_known_sender_with_another_cases_tag_joins_the_thread_they_answer(
    desk: Desk, mailbox: Mailbox, smtp_server: SmtpSink, deliver: Callable[[], asyncio.Future[int]]
) -> None:
    case, ack_id = await open_victims_case(desk, mailbox, smtp_server, deliver)
    mailbox.append(letter("投诉", "另一件事。", sender="other@163.com", message_id="<o@163.com>"))
    await intake.run_once(desk)
    async with desk.sessions() as s:
        other = (await s.exec(select(Case).where(Case.id != case.id))).one()
    # The complainant answers their own thread, naming the other case in the subject.
    mailbox.append(
        letter(
            f"Re: 与 [{other.ref}] 有关",
            "补充。",
            message_id="<mine@qq.com>",
            extra=[("In-Reply-To", ack_id)],
        )
    )
    stats = await intake.run_once(desk)
    assert stats.replies == 1
    assert len(await information_events(desk, case)) == 1
    assert await information_events(desk, other) == []
