"""Accepting or refusing a case in the console: the written notice on the complainant's channel,
the event with the member's identity, the decider role for appeals, impartiality."""

from __future__ import annotations

from datetime import date

from sqlmodel import col, select

from bot.services.cases import Complainant
from storage.models import Case, CaseEvent, Deadline, OutboxMessage
from tests.integration.console_kit import Console, add_staff, console, file_complaint

__all__ = ["console"]  # the fixture, imported for pytest


async def _decide(console: Console, ref: str, **data: str) -> str:
    token = await console.csrf(f"/cases/{ref}")
    response = await console.client.post(f"/cases/{ref}/decide", data={"csrf_token": token, **data})
    assert response.status_code == 303, response.text
    return (await console.client.get(response.headers["location"])).text


async def _case(console: Console, ref: str) -> tuple[Case, list[CaseEvent], list[OutboxMessage]]:
    async with console.desk.sessions() as s:
        case = (await s.exec(select(Case).where(Case.ref == ref))).one()
        events = (
            await s.exec(
                select(CaseEvent).where(CaseEvent.case_id == case.id).order_by(col(CaseEvent.seq))
            )
        ).all()
        sent = (
            await s.exec(
                select(OutboxMessage).where(
                    OutboxMessage.case_id == case.id, col(OutboxMessage.channel) == "email"
                )
            )
        ).all()
        return case, list(events), list(sent)


async def _late_appeal(console: Console, **extra: object) -> str:
    return await file_complaint(
        console.desk,
        kind="appeal",
        channel="email",
        decided_on=date(2026, 1, 10),  # months before 2026-09-28: past every body's window
        complainant=Complainant(name="韩梅梅", email="han@example.test"),
        subject="对暂停决定的申诉",
        **extra,
    )


async def test_a_decider_accepts_an_out_of_time_appeal_with_its_reason(console: Console) -> None:
    ref = await _late_appeal(console)
    await add_staff(console.desk, "李娜", "li@desk.example.test", "decider")
    # Staff may not decide an appeal: the page says who does, and a forged post is refused.
    await console.signed_in("zhang@desk.example.test")
    page = (await console.client.get(f"/cases/{ref}")).text
    assert "超过提出期限" in page and 'id="decide-form"' not in page
    refused = await _decide(console, ref, decision="accept", reason="邮路延误")
    assert f"案件 {ref} 是否受理须由决定人员决定。" in refused
    await console.client.post("/logout", data={"csrf_token": await console.csrf()})

    await console.signed_in("li@desk.example.test")
    assert 'id="decide-form"' in (await console.client.get(f"/cases/{ref}")).text
    no_reason = await _decide(console, ref, decision="accept", reason="  ")
    assert f"请写明理由（案件 {ref}）。" in no_reason
    done = await _decide(console, ref, decision="accept", reason="邮路延误，有邮戳为证")
    assert f"案件 {ref} 已受理。书面通知已排入发件箱（电子邮件）。" in done
    assert "受理（超过提出期限）（邮路延误，有邮戳为证）" in done  # the history, in words
    assert 'id="decide-form"' not in done  # decided once

    case, events, sent = await _case(console, ref)
    assert case.status == "in_progress" and case.closed_at is None
    assert (events[-1].type, events[-1].actor) == ("accepted", "staff:li@desk.example.test")
    assert events[-1].data and events[-1].data["out_of_time"] is True
    notice = [m for m in sent if "仍予受理" in m.payload["text"]]
    assert len(notice) == 1 and notice[0].recipient == "han@example.test"
    assert "邮路延误，有邮戳为证" in notice[0].payload["text"]
    assert notice[0].payload["in_reply_to"]  # threaded with the acknowledgement

    again = await _decide(console, ref, decision="refuse", grounds="out_of_time", reason="x")
    assert f"案件 {ref} 已作出是否受理的决定。" in again


async def test_refusing_for_formalities_closes_the_case_and_tells_the_complainant(
    console: Console,
) -> None:
    ref = await file_complaint(console.desk)  # a Telegram complaint, in time
    await console.signed_in("zhang@desk.example.test")
    in_time = await _decide(console, ref, decision="refuse", grounds="out_of_time", reason="x")
    assert "未超过提出期限" in in_time
    done = await _decide(
        console, ref, decision="refuse", grounds="formalities", reason="未签字盖章"
    )
    assert f"案件 {ref} 不予受理，已结案。书面通知已排入发件箱（Telegram）。" in done
    assert "不予受理：手续不全（未签字盖章）" in done
    case, events, _ = await _case(console, ref)
    assert case.status == "closed" and case.closed_at is not None
    assert events[-1].type == "refused" and events[-1].actor == "staff:zhang@desk.example.test"
    async with console.desk.sessions() as s:
        query = select(Deadline).where(Deadline.case_id == case.id)
        open_ = [d for d in (await s.exec(query)).all() if d.closed_at is None]
        told = (await s.exec(select(OutboxMessage).where(OutboxMessage.recipient == "5001"))).all()
    assert open_ == []
    assert any("不予受理" in m.payload["text"] and "未签字盖章" in m.payload["text"] for m in told)


async def test_the_decider_of_the_appealed_decision_may_not_accept_the_appeal(
    console: Console,
) -> None:
    ref = await _late_appeal(console, decided_by="王芳")
    await console.signed_in("wang@desk.example.test")  # an admin, but the one who decided
    page = await _decide(console, ref, decision="accept", reason="理由")
    assert f"您不能处理案件 {ref}：您是被申诉决定的作出人" in page
    assert f"案件 {ref} 已受理" not in page
    _, events, _ = await _case(console, ref)
    assert "accepted" not in [e.type for e in events]
