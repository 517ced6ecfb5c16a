"""Issue 15 through the case service on both databases: each clock from the day its clause
names (§2), outcomes and the steps after them (§3), SGC complaints (§4). Dates hand-worked on
the 2026 schedule (National Day 1-7 Oct, make-up workdays Sun 20 Sep and Sat 10 Oct)."""

from __future__ import annotations

from datetime import UTC, date, datetime

from bot.services.cases import Complainant
from bot.services.cases.dates import give_dates
from storage.models import CaseEvent
from storage.repo import cases as repo
from storage.unit_of_work import UnitOfWork
from tests.integration.test_cases_service import DeskFactory, _deadlines, _open, _outbox
from tests.integration.test_cases_service import make_desk as _make_desk

make_desk = _make_desk  # the same desk fixture, on both databases

# Thu 22 Oct 2026, 10:00 in Shanghai.
OCT_22 = datetime(2026, 10, 22, 2, 0, tzinfo=UTC)
FIRM = Complainant(name="某公司", email="qa@factory.example", locale="zh_CN")


async def _events(desk: object, case_id: int) -> list[CaseEvent]:
    async with desk.sessions() as s:  # type: ignore[attr-defined]
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
