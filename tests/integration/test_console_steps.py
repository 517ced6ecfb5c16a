"""The steps after a case is opened, from the console, on SQLite and PostgreSQL: an e-mailed SGC
appeal's dates, its acceptance (one path: the clause's own step), an extension with its approver,
the outcome letter with where to go next; a complaint about a certified organisation told to it,
the publicity decision (a decider's) and a serious complaint. Each an event by the member."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from bot.domain.deadlines import due_date
from bot.services.cases import Complainant
from storage.models import Case, CaseEvent, Deadline, OutboxMessage
from tests.integration.console_kit import Console, console_with, file_complaint

WANG = "staff:wang@desk.example.test"


@pytest.fixture
async def sgc(engine: AsyncEngine, database_url: str, data_dir: Path) -> AsyncIterator[Console]:
    async with console_with(engine, database_url, data_dir, profile="sgc") as c:
        await c.signed_in()
        yield c


async def _post(console: Console, ref: str, action: str, **data: str) -> str:
    token = await console.csrf(f"/cases/{ref}")
    response = await console.client.post(
        f"/cases/{ref}/{action}", data={"csrf_token": token, **data}
    )
    assert response.status_code == 303, response.text
    return (await console.client.get(response.headers["location"])).text


async def _state(console: Console, ref: str) -> tuple[Case, list[CaseEvent], list[Deadline]]:
    async with console.desk.sessions() as s:
        case = (await s.exec(select(Case).where(Case.ref == ref))).one()
        events = await s.exec(
            select(CaseEvent).where(CaseEvent.case_id == case.id).order_by(col(CaseEvent.seq))
        )
        rows = await s.exec(select(Deadline).where(Deadline.case_id == case.id))
        return case, list(events.all()), list(rows.all())


async def _sent(console: Console, ref: str) -> list[OutboxMessage]:
    async with console.desk.sessions() as s:
        case = (await s.exec(select(Case).where(Case.ref == ref))).one()
        rows = await s.exec(
            select(OutboxMessage)
            .where(OutboxMessage.case_id == case.id, OutboxMessage.recipient == "firm@example.test")
            .order_by(col(OutboxMessage.id))
        )
        return list(rows.all())


async def _emailed_appeal(console: Console) -> str:
    return await file_complaint(
        console.desk,
        kind="appeal",
        channel="email",
        complainant=Complainant(name="某售后服务公司", email="firm@example.test"),
        subject="对暂停决定的申诉",
    )


async def test_an_emailed_sgc_appeal_gets_its_dates_acceptance_extension_and_outcome(
    sgc: Console,
) -> None:
    desk = sgc.desk
    ref = await _emailed_appeal(sgc)
    page = (await sgc.client.get(f"/cases/{ref}")).text
    assert 'id="dates-form"' in page and 'id="outcome-form"' in page

    # The dates: decided a week back, the notice received three days back (SGC §八1.3(4)).
    today = desk.clock.today()
    decided, notified = date(2026, 9, 18), date(2026, 9, 24)
    page = await _post(
        sgc, ref, "dates", decided_on=decided.isoformat(), notified_on=notified.isoformat()
    )
    assert "申诉在期限内提出" in page
    case, events, rows = await _state(sgc, ref)
    assert events[-1].type == "dates_given" and events[-1].actor == WANG
    window = next(d for d in rows if d.rule_id == "appeal.filing_window")
    rule = desk.profile.rules["appeal.filing_window"]
    expected = due_date(notified, rule.count, rule.unit, desk.calendar, True).due
    assert window.start_on == notified and window.due_on == expected and expected >= today
    assert not case.out_of_time and case.decided_on == decided
    page = await _post(sgc, ref, "dates", notified_on="2999-01-01")
    assert "日期不能晚于今天" in page

    # Acceptance: the console's one form runs the clause's own step (§八1.4), told to the
    # appellant citing it; a second decision is refused.
    page = await _post(sgc, ref, "decide", decision="accept")
    assert f"案件 {ref} 已受理" in page
    case, events, _ = await _state(sgc, ref)
    assert case.status == "accepted"
    assert [e.type for e in events].count("acceptance_decided") == 1
    assert not any(e.type == "accepted" for e in events)
    assert events[-1].actor == WANG
    assert "SGC §八1.4" in (await _sent(sgc, ref))[-1].payload["text"]
    assert 'id="decide-form"' not in page
    page = await _post(sgc, ref, "decide", decision="refuse", grounds="formalities", reason="x")
    assert "已作出是否受理的决定" in page
    _, events, _ = await _state(sgc, ref)
    assert [e.type for e in events].count("acceptance_decided") == 1

    # The extension needs the approver its clause names (§八1.7), recorded by name.
    page = await _post(sgc, ref, "extend", rule="appeal.decision", new_due="2026-12-31",
                       approved_by="", reason="")  # fmt: skip
    assert "技术委员会主任" in page
    page = await _post(sgc, ref, "extend", rule="appeal.decision", new_due="2026-12-31",
                       approved_by="刘主任", reason="需补充现场调查")  # fmt: skip
    assert "已延至 2026年12月31日" in page
    _, events, rows = await _state(sgc, ref)
    assert next(d for d in rows if d.rule_id == "appeal.decision").due_on == date(2026, 12, 31)
    ext = events[-1]
    assert ext.type == "deadline_extended" and ext.actor == WANG
    assert (ext.data or {})["approved_by"] == "刘主任"
    assert (ext.data or {})["approver_role"] == "技术委员会主任"
    assert "经技术委员会主任刘主任批准" in page

    # The outcome: the final milestone with its text; the letter adds the second-level line.
    page = await _post(sgc, ref, "outcome", text="")
    assert "请填写处理结果" in page
    page = await _post(sgc, ref, "outcome", text="维持原暂停决定。")
    assert f"案件 {ref} 已结案" in page
    case, events, rows = await _state(sgc, ref)
    assert case.closed_at is not None and events[-1].type == "outcome_sent"
    letter = (await _sent(sgc, ref))[-1].payload["text"]
    second = next(d for d in rows if d.rule_id == "appeal.second_level")
    assert "维持原暂停决定。" in letter and "10个工作日内" in letter
    assert f"{second.due_on.year}年{second.due_on.month}月{second.due_on.day}日" in letter
    assert "SGC §八1.7" in letter


async def test_refusing_an_sgc_appeal_is_the_clause_step_and_closes_it(sgc: Console) -> None:
    ref = await _emailed_appeal(sgc)
    page = await _post(sgc, ref, "decide", decision="refuse", grounds="formalities",
                       reason="未缴纳申诉保证金")  # fmt: skip
    assert f"案件 {ref} 不予受理" in page
    case, events, rows = await _state(sgc, ref)
    assert case.closed_at is not None and case.status == "closed"
    decided = events[-1]
    assert decided.type == "acceptance_decided" and decided.actor == WANG
    assert (decided.data or {}) | {} == {
        "accepted": False, "reason": "未缴纳申诉保证金", "grounds": "formalities"
    }  # fmt: skip
    assert all(d.closed_at is not None for d in rows)
    assert "未缴纳申诉保证金" in (await _sent(sgc, ref))[-1].payload["text"]


async def test_a_complaint_about_a_certified_organisation_told_publicity_and_serious(
    sgc: Console,
) -> None:
    ref = await file_complaint(
        sgc.desk,
        channel="email",
        complainant=Complainant(name="张三", email="zhang3@example.test"),
        subject="某售后服务公司",
        description="该公司被新闻媒体曝光。",
        concerns="certified",
        concerns_certificate_no="SGC-AS-2025-001",
    )
    page = (await sgc.client.get(f"/cases/{ref}")).text
    for form in ("inform-form", "publicity-form", "serious-form"):
        assert f'id="{form}"' in page

    page = await _post(sgc, ref, "inform", how="书面通知，请其配合调查", on="")
    assert "已告知获证组织" in page
    _, events, _ = await _state(sgc, ref)
    informed = events[-1]
    assert informed.type == "organisation_informed" and informed.actor == WANG
    assert (informed.data or {})["on"] == sgc.desk.clock.today().isoformat()
    assert "SGC §八2.3" in str((informed.data or {})["clause"])

    # Publishing needs the organisation and the complainant to agree (§八2.6(8)).
    page = await _post(sgc, ref, "publicity", public="yes", extent="官网公告", agreed_org="1")
    assert "SGC §八2.6(8)" in page
    page = await _post(sgc, ref, "publicity", public="yes", extent="官网公告", agreed_org="1",
                       agreed_complainant="1")  # fmt: skip
    assert "将公开" in page
    _, events, _ = await _state(sgc, ref)
    assert events[-1].type == "publicity_decided" and events[-1].actor == WANG

    page = await _post(sgc, ref, "serious", reason="")
    assert "请写明属于哪一种严重情形" in page
    page = await _post(sgc, ref, "serious", reason="在新闻媒体曝光")
    assert "已标记为严重投诉" in page and 'id="serious-form"' not in page
    _, events, rows = await _state(sgc, ref)
    assert events[-1].type == "marked_serious" and events[-1].actor == WANG
    report = next(d for d in rows if d.rule_id == "complaint.serious_report")
    rule = sgc.desk.profile.rules["complaint.serious_report"]
    received = date(2026, 9, 28)
    assert report.due_on == due_date(received, rule.count, rule.unit, sgc.desk.calendar).due


async def test_the_publicity_decision_is_a_deciders(sgc: Console) -> None:
    ref = await file_complaint(sgc.desk, concerns="certified")
    await sgc.client.post("/logout", data={"csrf_token": await sgc.csrf()})
    await sgc.signed_in("zhang@desk.example.test")  # role staff
    page = (await sgc.client.get(f"/cases/{ref}")).text
    assert "须由决定人员（decider）决定" in page
    token = await sgc.csrf(f"/cases/{ref}")
    response = await sgc.client.post(
        f"/cases/{ref}/publicity", data={"csrf_token": token, "public": "no"}
    )
    assert response.status_code == 403
    _, events, _ = await _state(sgc, ref)
    assert not any(e.type == "publicity_decided" for e in events)
