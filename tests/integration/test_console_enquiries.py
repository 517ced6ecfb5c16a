"""Sorting enquiries in the console: open as a case (dated the day it reached the inbox), attach
to a case, answer through the outbox, or mark as needing no answer — each once, with its reason
and the member's identity."""

from __future__ import annotations

from sqlmodel import col, select

from bot.clock import FrozenClock
from storage.models import Case, CaseEvent, InboundEmail, OutboxMessage
from tests.integration.console_kit import Console, console, file_complaint, store_enquiry

__all__ = ["console"]  # the fixture, imported for pytest


def letter(n: int, subject: str, body: str, sender: str = "zhao@example.test") -> bytes:
    return (
        f"From: 赵六 <{sender}>\r\nTo: desk@desk.example.test\r\nSubject: {subject}\r\n"
        f"Message-ID: <q{n}@example.test>\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"MIME-Version: 1.0\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{body}\r\n"
    ).encode()


async def _sort(console: Console, inbound_id: int, action: str, **data: str) -> tuple[str, str]:
    token = await console.csrf(f"/enquiries/{inbound_id}")
    response = await console.client.post(
        f"/enquiries/{inbound_id}/{action}", data={"csrf_token": token, **data}
    )
    assert response.status_code == 303, response.text
    where = response.headers["location"]
    return where, (await console.client.get(where)).text


async def _row(console: Console, inbound_id: int) -> InboundEmail:
    async with console.desk.sessions() as s:
        row = await s.get(InboundEmail, inbound_id)
        assert row is not None
        return row


async def test_an_enquiry_is_opened_as_a_case_received_the_day_it_arrived(
    console: Console,
) -> None:
    inbound_id = await store_enquiry(
        console.desk,
        letter(1, "Situation", "贵公司审核员收取了额外费用，我要求调查。"),
        "<q1@example.test>",
    )
    clock = console.desk.clock
    assert isinstance(clock, FrozenClock)
    clock.advance(days=3)  # sorted three days after it reached the inbox
    await console.signed_in("zhang@desk.example.test")
    listing = (await console.client.get("/enquiries")).text
    assert f'href="/enquiries/{inbound_id}"' in listing
    page = (await console.client.get(f"/enquiries/{inbound_id}")).text
    assert "额外费用" in page and "zhao@example.test" in page

    where, _ = await _sort(console, inbound_id, "open", kind="complaint", reason="")
    assert where == f"/enquiries/{inbound_id}"  # refused: no reason
    where, case_page = await _sort(
        console, inbound_id, "open", kind="complaint", reason="信中投诉审核员收费"
    )
    ref = where.rsplit("/", 1)[1]
    assert f"已立案：{ref}。" in case_page
    assert "由来信 #" in case_page and "信中投诉审核员收费" in case_page
    async with console.desk.sessions() as s:
        case = (await s.exec(select(Case).where(Case.ref == ref))).one()
        events = (
            await s.exec(
                select(CaseEvent).where(CaseEvent.case_id == case.id).order_by(col(CaseEvent.seq))
            )
        ).all()
        acks = (
            await s.exec(
                select(OutboxMessage).where(OutboxMessage.recipient == "zhao@example.test")
            )
        ).all()
    assert case.kind == "complaint" and case.complainant_email == "zhao@example.test"
    assert events[0].data and events[0].data["received_on"] == "2026-09-28"  # not 10-01
    assert (events[-1].type, events[-1].actor) == (
        "opened_from_enquiry",
        "staff:zhang@desk.example.test",
    )
    assert len(acks) == 1 and acks[0].payload["in_reply_to"] == "<q1@example.test>"
    row = await _row(console, inbound_id)
    assert (row.sorted_as, row.sorted_by, row.case_id) == (
        "case",
        "staff:zhang@desk.example.test",
        case.id,
    )
    assert f'href="/enquiries/{inbound_id}"' not in (await console.client.get("/")).text
    _, again = await _sort(console, inbound_id, "no_answer", reason="重复")
    assert f"来信 #{inbound_id} 已分拣过。" in again


async def test_an_enquiry_attached_to_a_case_joins_it_as_the_complainants(
    console: Console,
) -> None:
    ref = await file_complaint(console.desk)
    inbound_id = await store_enquiry(
        console.desk, letter(2, "补充", "补充材料：审核日期是九月十日。"), "<q2@example.test>"
    )
    await console.signed_in()
    _, page = await _sort(console, inbound_id, "attach", ref="TS-0000-999", reason="同一事项")
    assert "没有这个案件编号。" in page
    where, page = await _sort(console, inbound_id, "attach", ref=ref.lower(), reason="同一事项")
    assert where == f"/cases/{ref}" and f"来信已并入案件 {ref}。" in page
    assert "补充材料：审核日期是九月十日。" in page
    row = await _row(console, inbound_id)
    assert row.sorted_as == "attached" and row.sorted_note == "同一事项"


async def test_an_enquiry_is_answered_through_the_outbox_or_needs_no_answer(
    console: Console,
) -> None:
    asked = await store_enquiry(
        console.desk, letter(3, "Fees", "请问认证费用是多少？"), "<q3@example.test>"
    )
    spam = await store_enquiry(
        console.desk, letter(4, "广告", "优惠推广", "ads@example.test"), "<q4@example.test>"
    )
    await console.signed_in()
    _, page = await _sort(console, asked, "answer", text="申请费 1000 元，详见收费标准。")
    assert f"对来信 #{asked} 的答复已排入发件箱（电子邮件）。" in page
    _, page = await _sort(console, spam, "no_answer", reason="广告")
    assert f"来信 #{spam} 已标记为无需答复。" in page
    sorted_ = page.split('id="sorted"')[1]
    assert "无需答复" in sorted_ and "已答复" in sorted_ and "wang@desk.example.test" in sorted_
    async with console.desk.sessions() as s:
        sent = (
            await s.exec(
                select(OutboxMessage).where(OutboxMessage.recipient == "zhao@example.test")
            )
        ).one()
        to_spam = (
            await s.exec(select(OutboxMessage).where(OutboxMessage.recipient == "ads@example.test"))
        ).all()
    assert sent.payload["subject"] == "Re: Fees" or sent.payload["subject"] == "回复：Fees"
    assert sent.payload["in_reply_to"] == "<q3@example.test>"
    assert "申请费 1000 元" in sent.payload["text"] and sent.payload["auto_reply"] is False
    assert to_spam == []
    assert (await _row(console, spam)).sorted_note == "广告"
