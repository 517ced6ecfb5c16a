"""Issue 15 through the case service on both databases: each clock from the day its clause
names (§2), outcomes and the steps after them (§3), SGC complaints (§4). Dates hand-worked on
the 2026 schedule (National Day 1-7 Oct, make-up workdays Sun 20 Sep and Sat 10 Oct)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from bot.clock import FrozenClock
from bot.desk import Desk
from bot.services import cases
from bot.services.cases import CaseRefused, Complainant, steps
from bot.services.cases.dates import give_dates
from storage.models import Case, CaseEvent
from storage.repo import cases as repo
from storage.unit_of_work import UnitOfWork
from tests.integration.test_cases_service import (
    STAFF_CHAT,
    DeskFactory,
    _deadlines,
    _open,
    _outbox,
)
from tests.integration.test_cases_service import make_desk as _make_desk

make_desk = _make_desk  # the same desk fixture, on both databases

# Thu 22 Oct 2026, 10:00 in Shanghai.
OCT_22 = datetime(2026, 10, 22, 2, 0, tzinfo=UTC)
FIRM = Complainant(name="某公司", email="qa@factory.example", locale="zh_CN")


async def _events(desk: Desk, case_id: int) -> list[CaseEvent]:
    async with desk.sessions() as s:
        return list(await repo.events_of(s, case_id))


async def test_sgc_appeal_in_time_counted_from_the_notice(make_desk: DeskFactory) -> None:
    """Decision Fri 18 Sep, its notice received Mon 12 Oct (12 working days later), the appeal
    filed Thu 22 Oct (8 working days after the notice): in time under SGC §八1.3(4)."""
    desk = make_desk("sgc", at=OCT_22)
    opened = await _open(
        desk,
        kind="appeal",
        complainant=FIRM,
        subject="申诉：暂停证书",
        description="请求撤销暂停决定。",
        decided_on=date(2026, 9, 18),
        notified_on=date(2026, 10, 12),
    )
    assert opened.case.id is not None and opened.case.out_of_time is False
    window = (await _deadlines(desk, opened.case.id))["appeal.filing_window"]
    assert (window.start_on, window.due_on) == (date(2026, 10, 12), date(2026, 10, 26))
    mail, staff = await _outbox(desk, opened.case.id)
    assert "届满" not in mail.payload["text"] and "尚未核对" not in mail.payload["text"]
    assert "超过申诉/争议提出期限" not in staff.payload["text"]
    received = (await _events(desk, opened.case.id))[0]
    assert received.data is not None and received.data["notified_on"] == "2026-10-12"


async def test_sgc_appeal_late_names_the_notice_day(make_desk: DeskFactory) -> None:
    desk = make_desk("sgc", at=OCT_22)
    opened = await _open(
        desk,
        kind="appeal",
        complainant=FIRM,
        subject="申诉",
        description="……",
        decided_on=date(2026, 9, 1),
        notified_on=date(2026, 9, 3),
    )
    assert opened.case.out_of_time is True
    mail, _staff = await _outbox(desk, opened.case.id or 0)
    # 10 working days after Thu 3 Sep: 4, 7-11, 14-17.
    assert (
        "您收到决定通知的日期为2026年9月3日，申诉提出期限已于2026年9月17日届满（SGC §八1.3(4)"
        in mail.payload["text"]
    )


async def test_dispute_out_of_time_names_the_dispute_window(make_desk: DeskFactory) -> None:
    desk = make_desk("sgc", at=OCT_22)
    opened = await _open(
        desk,
        kind="dispute",
        complainant=FIRM,
        subject="争议",
        description="……",
        decided_on=date(2026, 9, 1),
    )
    mail, _staff = await _outbox(desk, opened.case.id or 0)
    text = mail.payload["text"]
    assert "争议所涉事件发生日期为2026年9月1日，争议提出期限已于2026年9月15日届满" in text
    assert "申诉提出期限" not in text and "您的争议已登记" in text


async def test_emailed_appeal_window_not_yet_checked_until_staff_give_the_dates(
    make_desk: DeskFactory,
) -> None:
    desk = make_desk("sgc", at=OCT_22)
    opened = await _open(
        desk, kind="appeal", complainant=FIRM, subject="申诉", description="请复核。"
    )
    case = opened.case
    assert case.id is not None and case.out_of_time is False
    assert "appeal.filing_window" not in await _deadlines(desk, case.id)
    mail, staff = await _outbox(desk, case.id)
    assert (
        "申诉提出期限：尚未核对。请告知原决定的作出日期和您收到该决定通知的日期"
        in (mail.payload["text"])
    )
    assert "申诉提出期限：尚未核对" in staff.payload["text"]

    async with UnitOfWork(desk.sessions) as uow:
        locked = await repo.lock_case(uow.session, case.id)
        event = await give_dates(
            desk,
            uow,
            locked,
            "staff:9001",
            decided_on=date(2026, 9, 18),
            notified_on=date(2026, 10, 12),
        )
        await uow.commit()
    assert event.type == "dates_given" and event.data is not None
    assert event.data["out_of_time"] is False and event.data["windows_unchecked"] == []
    window = (await _deadlines(desk, case.id))["appeal.filing_window"]
    assert (window.start_on, window.due_on) == (date(2026, 10, 12), date(2026, 10, 26))
    assert window.closed_at is not None  # met by the letter itself, never a staff alert

    # Given later, a notice of 3 Sep makes the same letter late.
    async with UnitOfWork(desk.sessions) as uow:
        locked = await repo.lock_case(uow.session, case.id)
        await give_dates(
            desk,
            uow,
            locked,
            "staff:9001",
            decided_on=date(2026, 9, 1),
            notified_on=date(2026, 9, 3),
        )
        await uow.commit()
        assert locked.out_of_time is True
    assert (await _deadlines(desk, case.id))["appeal.filing_window"].due_on == date(2026, 9, 17)


# --- §3 outcomes and the steps after them -------------------------------------------------------

SEP_28 = datetime(2026, 9, 28, 2, 0, tzinfo=UTC)  # Mon 28 Sep 2026, 10:00 in Shanghai


async def _locked(desk: Desk, uow: UnitOfWork, case_id: int) -> Case:
    return await repo.lock_case(uow.session, case_id)


async def test_sgc_appeal_acceptance_extension_outcome_and_a_second_level_appeal_in_its_window(
    make_desk: DeskFactory,
) -> None:
    desk = make_desk("sgc", at=SEP_28)
    clock = desk.clock
    assert isinstance(clock, FrozenClock)
    opened = await _open(
        desk,
        kind="appeal",
        complainant=FIRM,
        subject="申诉：暂停证书",
        description="请求撤销暂停决定。",
        decided_on=date(2026, 9, 18),
        notified_on=date(2026, 9, 22),
    )
    case_id = opened.case.id
    assert case_id is not None and not opened.case.out_of_time

    # §八1.4: the technical committee's acceptance decision is told to the appellant.
    async with UnitOfWork(desk.sessions) as uow:
        case = await _locked(desk, uow, case_id)
        await steps.decide_acceptance(desk, uow, case, "staff:9001", accepted=True)
        await uow.commit()
        assert case.status == "accepted"
    told = (await _outbox(desk, case_id))[-1]
    assert told.recipient == FIRM.email and "已予受理" in told.payload["text"]
    assert "SGC §八1.4" in told.payload["text"]

    # §八1.7: an extension needs the technical committee director, recorded by name.
    async with UnitOfWork(desk.sessions) as uow:
        case = await _locked(desk, uow, case_id)
        with pytest.raises(CaseRefused) as refused:
            await steps.extend_deadline(
                desk, uow, case, "staff:9001", "appeal.decision", date(2026, 12, 31), approved_by=""
            )
        assert "技术委员会主任" in cases.refused_text(refused.value, "zh_CN")
        row = await steps.extend_deadline(
            desk,
            uow,
            case,
            "staff:9001",
            "appeal.decision",
            date(2026, 12, 31),
            approved_by="王主任",
            reason="需要补充现场核查",
        )
        await uow.commit()
    assert row.due_on == date(2026, 12, 31)
    extended = [e for e in await _events(desk, case_id) if e.type == "deadline_extended"]
    assert extended[0].data is not None
    assert extended[0].data["approved_by"] == "王主任"
    assert extended[0].data["approver_role"] == "技术委员会主任"
    assert extended[0].data["from"] == "2026-11-27" and extended[0].data["to"] == "2026-12-31"

    # Closing the case sends the outcome, with the second-level window's own last day:
    # 10 working days after Wed 30 Sep are 8, 9, Sat 10 (make-up), 12-16, 19, 20 Oct.
    clock.advance(days=2)
    async with UnitOfWork(desk.sessions) as uow:
        case = await _locked(desk, uow, case_id)
        await cases.record_milestone(
            desk, uow, case, "staff:9001", "decision_made", note="经复核，维持暂停决定。"
        )
        await uow.commit()
    outcome = (await _outbox(desk, case_id))[-1]
    assert outcome.payload["subject"] == f"[{opened.ref}] 您的申诉处理结果"
    text = outcome.payload["text"]
    assert "经复核，维持暂停决定。" in text
    assert (
        "可在接到本结果后10个工作日内（即2026年10月20日前）向公正性委员会、认可机构或国家认监委"
        in text
    )
    assert "SGC §八1.7" in text
    window = (await _deadlines(desk, case_id))["appeal.second_level"]
    assert (window.start_on, window.due_on) == (date(2026, 9, 30), date(2026, 10, 20))
    assert window.closed_by == "outcome_sent"  # the appellant's window: never a staff alert
    assert [e.type for e in await _events(desk, case_id)][-2:] == ["decision_made", "outcome_sent"]

    # A further appeal by the same appellant inside that window is recognised as such.
    later = make_desk("sgc", at=datetime(2026, 10, 19, 2, 0, tzinfo=UTC))
    again = await _open(
        later, kind="appeal", complainant=FIRM, subject="再次申诉", description="不服复核结果。"
    )
    assert again.case.out_of_time is False
    mail, staff = await _outbox(later, again.case.id or 0)
    assert (
        f"您的申诉在案件 {opened.ref} 处理结果告知后的对申诉结果再次提出申诉的期限内提出"
        in (mail.payload["text"])
    )
    assert (
        f"在案件 {opened.ref} 的对申诉结果再次提出申诉的期限内提出（2026年10月20日前）"
        in (staff.payload["text"])
    )
    first = (await _events(later, again.case.id or 0))[0]
    assert first.data is not None and first.data["follows"]["ref"] == opened.ref
    # The day after the window, it is an ordinary new appeal.
    late = make_desk("sgc", at=datetime(2026, 10, 21, 2, 0, tzinfo=UTC))
    other = await _open(late, kind="appeal", complainant=FIRM, subject="申诉", description="…")
    assert (await _events(late, other.case.id or 0))[0].data["follows"] is None  # type: ignore[index]


async def test_ggbz_complaint_deadline_met_by_the_written_notice_with_where_to_go_next(
    make_desk: DeskFactory,
) -> None:
    desk = make_desk("ggbz", at=SEP_28)
    opened = await _open(desk, complainant=FIRM, subject="投诉", description="……", concerns="staff")
    case_id = opened.case.id
    assert case_id is not None
    async with UnitOfWork(desk.sessions) as uow:
        case = await _locked(desk, uow, case_id)
        # GGBZ §8.5.3: the internal investigation does not meet the 30 working days.
        with pytest.raises(CaseRefused):
            await cases.record_milestone(desk, uow, case, "staff:9", "investigation_done")
        closed = await cases.record_milestone(desk, uow, case, "staff:9", "answer_sent")
        await uow.commit()
    assert {d.rule_id for d in closed} == {"complaint.investigation", "complaint.written_result"}
    found = await _deadlines(desk, case_id)
    assert found["complaint.investigation"].closed_by == "answer_sent"
    outcome = (await _outbox(desk, case_id))[-1]
    text = outcome.payload["text"]
    assert "国家认监委（CNCA）投诉（GGBZ §8.5.3、§8.4" in text
    assert "决定的内容和理由见本机构的书面决定" in text  # no text given: still a full letter


async def test_bqc_outcome_names_the_accreditation_body_then_the_courts(
    make_desk: DeskFactory,
) -> None:
    desk = make_desk("bqc", at=SEP_28)
    en = Complainant(name="Factory", email="qa@factory.example", locale="en")
    opened = await _open(desk, kind="appeal", complainant=en, subject="Appeal", description="…")
    async with UnitOfWork(desk.sessions) as uow:
        case = await _locked(desk, uow, opened.case.id or 0)
        await cases.record_milestone(desk, uow, case, "staff:9", "decision_made", note="Upheld.")
        await uow.commit()
    text = (await _outbox(desk, opened.case.id or 0))[-1].payload["text"]
    assert "you may appeal to the accreditation body" in text and "local court" in text
    assert "BQC 认证规则 §19.3" in text


# --- §3 complaints about a certified organisation; §4 serious SGC complaints ----------------------


async def test_serious_sgc_complaint_about_a_certified_organisation(
    make_desk: DeskFactory,
) -> None:
    desk = make_desk("sgc", at=datetime(2026, 1, 31, 2, 0, tzinfo=UTC))  # Sat 31 Jan
    opened = await _open(
        desk,
        complainant=Complainant(name="张三", email="zhang@example.cn"),
        subject="某售后服务公司",
        description="该公司被新闻媒体曝光。",
        concerns="certified",
        concerns_certificate_no="某售后服务公司 SGC-AS-2025-001",
    )
    case_id = opened.case.id
    assert case_id is not None
    found = await _deadlines(desk, case_id)
    # §八2.4: 1 month (Sat 28 Feb, a make-up workday); §八2.6(1): 2 months overall.
    assert {k: d.due_on for k, d in found.items()} == {
        "complaint.about_organisation": date(2026, 2, 28),
        "complaint.written_result": date(2026, 3, 31),
    }
    async with UnitOfWork(desk.sessions) as uow:
        case = await _locked(desk, uow, case_id)
        rows = await steps.mark_serious(desk, uow, case, "staff:9001", reason="新闻媒体曝光")
        await steps.inform_organisation(desk, uow, case, "staff:9001", how="书面通知，请其配合调查")
        with pytest.raises(CaseRefused) as refused:
            await steps.decide_publicity(
                desk,
                uow,
                case,
                "staff:9001",
                public=True,
                agreed_with_organisation=True,
                agreed_with_complainant=False,
            )
        assert "SGC §八2.6(8)" in cases.refused_text(refused.value, "zh_CN")
        await steps.decide_publicity(
            desk,
            uow,
            case,
            "staff:9001",
            public=False,
            agreed_with_organisation=True,
            agreed_with_complainant=True,
        )
        await uow.commit()
    # 10 working days after Sat 31 Jan: 2-6, 9-13 Feb.
    assert [(r.rule_id, r.due_on, r.closed_at) for r in rows] == [
        ("complaint.serious_report", date(2026, 2, 13), None)
    ]
    alert = (await _outbox(desk, case_id))[-1]
    assert alert.recipient == str(STAFF_CHAT)
    assert "严重投诉" in alert.payload["text"] and "暂停证书使用" in alert.payload["text"]
    assert "严重投诉报告认可机构：2026年2月13日前" in alert.payload["text"]
    types = [e.type for e in await _events(desk, case_id)]
    assert types[-3:] == ["marked_serious", "organisation_informed", "publicity_decided"]

    # The complaint decision opens the 10 working days to appeal it (§八2.6(4)).
    async with UnitOfWork(desk.sessions) as uow:
        case = await _locked(desk, uow, case_id)
        await cases.record_milestone(
            desk, uow, case, "staff:9001", "answer_sent", note="投诉属实。"
        )
        await uow.commit()
    text = (await _outbox(desk, case_id))[-1].payload["text"]
    # Sent Sat 31 Jan: 2-6, 9-13 Feb.
    assert "有权在接到本决定后10个工作日内（即2026年2月13日前）向本机构提出申诉" in text


async def test_organisation_steps_refused_on_other_complaints(make_desk: DeskFactory) -> None:
    desk = make_desk("sgc", at=SEP_28)
    opened = await _open(desk, complainant=FIRM, subject="投诉", description="……", concerns="staff")
    async with UnitOfWork(desk.sessions) as uow:
        case = await _locked(desk, uow, opened.case.id or 0)
        with pytest.raises(CaseRefused) as refused:
            await steps.inform_organisation(desk, uow, case, "staff:9", how="…")
        assert refused.value.key == "cases.not_about_organisation"
