"""The case service on both databases: deadlines, acknowledgements, impartiality, history."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from bot.clock import FrozenClock
from bot.config import load_settings
from bot.desk import Desk, load_calendar
from bot.main.cli import main
from bot.profiles import load_profile
from bot.services import cases
from bot.services.cases import CaseRefused, Complainant
from storage.db import session_factory
from storage.models import Case, CaseEvent, Deadline, OutboxMessage
from storage.repo import cases as repo
from storage.unit_of_work import UnitOfWork

STAFF_CHAT = -1001
# 2026-09-28 10:00 in Shanghai: the Monday before the National Day break.
RECEIVED_AT = datetime(2026, 9, 28, 2, 0, tzinfo=UTC)

DeskFactory = Callable[..., Desk]


@pytest.fixture
async def make_desk(
    engine: AsyncEngine, database_url: str, data_dir: Path
) -> AsyncIterator[DeskFactory]:
    def build(profile: str = "ggbz", at: datetime = RECEIVED_AT) -> Desk:
        settings = load_settings(
            data_dir=data_dir,
            database_url=database_url,
            profile=profile,
            staff_chat_id=STAFF_CHAT,
            mail_domain="desk.example.test",
        )
        return Desk(
            settings=settings,
            profile=load_profile(profile),
            calendar=load_calendar(settings),
            engine=engine,
            sessions=session_factory(engine),
            clock=FrozenClock(at),
        )

    yield build


async def _open(desk: Desk, **fields: Any) -> cases.OpenedCase:
    """`open_case` in a transaction of its own; a plain e-mailed complaint unless told."""
    plain: dict[str, Any] = {"kind": "complaint", "channel": "email", "subject": None}
    async with UnitOfWork(desk.sessions) as uow:
        opened = await cases.open_case(desk, uow, **(plain | fields))
        await uow.commit()
    return opened


async def _outbox(desk: Desk, case_id: int) -> list[OutboxMessage]:
    async with desk.sessions() as s:
        query = select(OutboxMessage).where(OutboxMessage.case_id == case_id)
        return list((await s.exec(query.order_by(col(OutboxMessage.id)))).all())


async def _deadlines(desk: Desk, case_id: int) -> dict[str, Deadline]:
    async with desk.sessions() as s:
        return {d.rule_id: d for d in await repo.deadlines_of(s, case_id)}


async def test_complaint_by_email_in_chinese_gets_ggbz_deadlines_and_threaded_ack(
    make_desk: DeskFactory,
) -> None:
    desk = make_desk()
    opened = await _open(
        desk,
        complainant=Complainant(name="李雷", email="li.lei@example.cn", locale="zh_CN"),
        subject="投诉审核员态度",
        description="审核员在现场审核时态度恶劣。",
        concerns="staff",
        source_message_id="abc123@mail.example.cn",
    )
    ref = opened.ref
    assert opened.case.id is not None
    # Same dates as `certdesk deadlines --kind complaint --received 2026-09-28`.
    found = await _deadlines(desk, opened.case.id)
    assert {k: d.due_on for k, d in found.items()} == {
        "complaint.investigation": date(2026, 11, 13),
        "complaint.written_result": date(2026, 11, 27),
    }
    assert all(d.closed_at is None and not d.provisional for d in found.values())

    mail, staff = await _outbox(desk, opened.case.id)
    assert mail.channel == "email" and mail.recipient == "li.lei@example.cn"
    payload = mail.payload
    assert payload["subject"] == f"[{ref}] 我们已收到您的投诉"
    assert payload["auto_reply"] is True and payload["case_ref"] == ref
    assert payload["in_reply_to"] == "<abc123@mail.example.cn>"
    assert payload["references"] == ["<abc123@mail.example.cn>"]
    assert payload["message_id"].endswith("@desk.example.test>")
    assert mail.email_message_id == payload["message_id"]
    text = payload["text"]
    assert ref in text and "2026年9月28日" in text
    assert "• 投诉调查完成：2026年11月13日前（GGBZ §8.5.3" in text
    assert "• 投诉处理结果书面告知：2026年11月27日前（GGBZ §8.3" in text
    assert f"[{ref}]" in text  # how to reply so it reaches the case
    assert "<br>" in payload["html"]

    assert staff.recipient == str(STAFF_CHAT)
    assert ref in staff.payload["text"] and "2026年11月13日" in staff.payload["text"]
    assert staff.payload["reply_markup"][0][0]["callback_data"] == f"staff:assign:{ref}"

    # Both our acknowledgement and the complainant's letter thread back to the case.
    async with desk.sessions() as s:
        for mid in (payload["message_id"], "<abc123@mail.example.cn>", "abc123@mail.example.cn"):
            case = await repo.find_case_by_message_id(s, mid)
            assert case is not None and case.ref == ref
        assert await repo.find_case_by_message_id(s, "<other@x>") is None
        assert (await repo.find_case_by_ref(s, ref)) is not None


async def test_complaint_by_telegram_in_english(make_desk: DeskFactory) -> None:
    desk = make_desk()
    opened = await _open(
        desk,
        channel="telegram",
        complainant=Complainant(
            name="Ann Lee",
            phone="+86 138 0000 0000",
            telegram_user_id=501,
            telegram_chat_id=501,
            locale="en",
        ),
        description="The certified factory ignores overtime rules.",
        concerns="certified",
        concerns_certificate_no="GGBZ-SA-2025-001",
    )
    assert opened.case.id is not None
    ack, _staff = await _outbox(desk, opened.case.id)
    assert ack.channel == "telegram" and ack.recipient == "501"
    text = ack.payload["text"]
    assert "• Complaint investigated: by 2026-11-13 (GGBZ §8.5.3" in text
    assert "• Written answer to the complaint: by 2026-11-27 (GGBZ §8.3" in text
    assert "/mycases" in text
    async with desk.sessions() as s:
        mine = await repo.cases_of_telegram_user(s, 501)
        assert [c.ref for c in mine] == [opened.ref]
        # Another user cannot reach it, even knowing the reference.
        assert await repo.own_case(s, 502, opened.ref) is None
        assert (await repo.own_case(s, 501, opened.ref)) is not None


@pytest.mark.parametrize(
    ("decided", "out_of_time"),
    [(date(2026, 8, 1), False), (date(2026, 6, 1), True)],
    ids=["in-window", "out-of-time"],
)
async def test_appeal_filing_window(
    make_desk: DeskFactory, decided: date, out_of_time: bool
) -> None:
    desk = make_desk()
    opened = await _open(
        desk,
        kind="appeal",
        complainant=Complainant(name="某公司", email="qa@factory.example", locale="zh_CN"),
        subject="申诉：暂停证书",
        description="请求撤销暂停决定。",
        decided_on=decided,
        decided_by="张伟",
        audit_team=["王芳", "刘洋"],
    )
    case = opened.case
    assert case.id is not None and case.out_of_time is out_of_time
    found = await _deadlines(desk, case.id)
    # The filing window is met or missed by the letter itself: recorded, never left open.
    assert found["appeal.filing_window"].closed_at is not None
    assert found["appeal.filing_window"].start_on == decided
    assert found["appeal.work_group"].due_on == date(2026, 10, 16)
    assert found["appeal.decision"].due_on == date(2026, 11, 27)
    mail, staff = await _outbox(desk, case.id)
    text = mail.payload["text"]
    assert "申诉手续要求：GGBZ §8.6.1" in text
    assert "• 组成申诉工作组：2026年10月16日前" in text
    assert "申诉提出期限" not in text.split("我们将在以下日期前完成")[1].split("\n\n")[0]
    assert ("原决定作出日期为2026年6月1日，申诉提出期限已于2026年9月1日届满" in text) is out_of_time
    assert ("超过申诉/争议提出期限" in staff.payload["text"]) is out_of_time


async def test_anonymous_complaint_under_bqc_is_recorded_incomplete(
    make_desk: DeskFactory,
) -> None:
    desk = make_desk("bqc")
    opened = await _open(
        desk,
        channel="telegram",
        complainant=Complainant(telegram_user_id=77, telegram_chat_id=77, locale="zh_CN"),
        description="某获证企业环境违规。",
    )
    case = opened.case
    assert case.id is not None and case.incomplete and not case.out_of_time
    ack, staff = await _outbox(desk, case.id)
    assert "匿名投诉通常不予受理（BQC 申诉投诉争议处理规则 三.1" in ack.payload["text"]
    assert "请提供您的姓名和联系方式" in ack.payload["text"]
    assert "2026年12月25日" in ack.payload["text"]  # BQC: 60 working days
    assert "身份信息不完整" in staff.payload["text"]

    async with UnitOfWork(desk.sessions) as uow:
        case = await repo.lock_case(uow.session, case.id)
        await cases.provide_identity(
            desk, uow, case, "complainant:telegram:77", name="赵敏", phone="13800000000"
        )
        await uow.commit()
        assert not case.incomplete


async def test_assignment_refused_to_decider_and_auditor(make_desk: DeskFactory) -> None:
    desk = make_desk()
    opened = await _open(
        desk,
        kind="appeal",
        complainant=Complainant(name="A", email="a@example.test", locale="en"),
        subject="Appeal",
        description="Please reconsider.",
        decided_on=date(2026, 9, 1),
        decided_by="1001",
        audit_team=["Wang Fang"],
    )
    async with UnitOfWork(desk.sessions) as uow:
        case = await repo.lock_case(uow.session, opened.case.id or 0)
        with pytest.raises(CaseRefused) as refused:
            await cases.assign(desk, uow, case, "staff:1001", "1001", ["Zhang Wei"])
        assert "took the decision under appeal" in cases.refused_text(refused.value, "en")
        with pytest.raises(CaseRefused) as refused:
            await cases.assign(desk, uow, case, "staff:1002", "1002", ["wang fang"])
        assert "audit team" in cases.refused_text(refused.value, "en")
        assert "审核组成员" in cases.refused_text(refused.value, "zh_CN")
        # Someone whose names are not known cannot be checked, so is not assigned unchecked.
        with pytest.raises(CaseRefused) as refused:
            await cases.assign(desk, uow, case, "staff:1003", "1004", None)
        assert "name is not known" in cases.refused_text(refused.value, "en")
        await cases.assign(desk, uow, case, "staff:1003", "1003", ["Li Na"])
        await uow.commit()
        assert case.assignee == "1003" and case.status == "in_progress"
    # Nobody to stand aside on a complaint: an id alone will do.
    complaint = await _open(
        desk, complainant=Complainant(name="B", email="b@example.test"), description="…"
    )
    async with UnitOfWork(desk.sessions) as uow:
        case = await repo.lock_case(uow.session, complaint.case.id or 0)
        await cases.assign(desk, uow, case, "staff:1003", "1004", None)
        assert case.assignee == "1004"


async def test_milestones_close_deadlines_and_the_case(make_desk: DeskFactory) -> None:
    desk = make_desk()
    clock = desk.clock
    assert isinstance(clock, FrozenClock)
    opened = await _open(
        desk,
        kind="appeal",
        complainant=Complainant(name="A", email="a@example.test"),
        subject="申诉",
        description="…",
        decided_on=date(2026, 9, 1),
    )
    case_id = opened.case.id
    assert case_id is not None
    clock.advance(days=5)
    async with UnitOfWork(desk.sessions) as uow:
        case = await repo.lock_case(uow.session, case_id)
        # A complaint's milestone closes nothing on an appeal: refused, not recorded.
        with pytest.raises(CaseRefused) as refused:
            await cases.record_milestone(desk, uow, case, "staff:9", "investigation_done")
        assert "does not apply" in cases.refused_text(refused.value, "en")
        closed = await cases.record_milestone(desk, uow, case, "staff:9", "work_group_formed")
        await uow.commit()
    assert [d.rule_id for d in closed] == ["appeal.work_group"]
    found = await _deadlines(desk, case_id)
    assert found["appeal.work_group"].closed_by == "work_group_formed"
    assert found["appeal.decision"].closed_at is None
    async with UnitOfWork(desk.sessions) as uow:
        listed = await repo.open_cases_by_due(uow.session)
        assert [(x.case.ref, x.next_due) for x in listed] == [(opened.ref, date(2026, 11, 27))]
        case = await repo.lock_case(uow.session, case_id)
        await cases.record_milestone(desk, uow, case, "staff:9", "decision_made")
        await uow.commit()
        assert case.status == "closed" and case.closed_at == clock.now()
        with pytest.raises(CaseRefused):
            await cases.record_milestone(desk, uow, case, "staff:9", "answer_sent")
        assert await repo.open_cases_by_due(uow.session) == []
    found = await _deadlines(desk, case_id)
    assert all(d.closed_at is not None for d in found.values())


async def test_withdrawal_closes_everything_and_staff_reply_goes_to_email(
    make_desk: DeskFactory,
) -> None:
    desk = make_desk()
    opened = await _open(
        desk,
        complainant=Complainant(name="B", email="b@example.test", locale="en"),
        subject="Complaint",
        description="…",
        source_message_id="<first@b.example.test>",
    )
    async with UnitOfWork(desk.sessions) as uow:
        case = await repo.lock_case(uow.session, opened.case.id or 0)
        await cases.add_information(
            desk, uow, case, "complainant:email:b@example.test", "More facts", (), "<second@b>"
        )
        row = await cases.reply(desk, uow, case, "staff:9", "We are looking into it.")
        await uow.commit()
    assert row.channel == "email"
    assert row.payload["subject"] == f"[{opened.ref}] Answer about your case"
    assert row.payload["in_reply_to"] == "<second@b>"
    assert row.payload["auto_reply"] is False
    assert "We are looking into it." in row.payload["text"]
    async with UnitOfWork(desk.sessions) as uow:
        assert (await repo.find_case_by_message_id(uow.session, "<second@b>")) is not None
        case = await repo.lock_case(uow.session, case.id or 0)
        await cases.withdraw(desk, uow, case, "complainant:email:b@example.test")
        await uow.commit()
        assert case.status == "withdrawn"
        events = await repo.events_of(uow.session, case.id or 0)
    assert [e.type for e in events] == [
        "received",
        "acknowledged",
        "information_added",
        "reply_sent",
        "withdrawn",
    ]
    found = await _deadlines(desk, opened.case.id or 0)
    assert {d.closed_by for d in found.values()} == {"withdrawn"}


def _bypass_guard(conn: sa.Connection, on: bool) -> None:
    """What someone with direct database access could do: lift the append-only guard.

    PostgreSQL's database is shared by the session's tests, so the guard is put back; a SQLite
    database is this test's own copy.
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"ALTER TABLE case_event {'DISABLE' if on else 'ENABLE'} TRIGGER ALL")
        if not on:  # as the migration leaves it: replication sessions do not lift it either
            conn.exec_driver_sql(
                "ALTER TABLE case_event ENABLE ALWAYS TRIGGER case_event_append_only"
            )
    elif on:
        conn.exec_driver_sql("DROP TRIGGER case_event_no_update")


async def test_verify_names_the_altered_event(
    make_desk: DeskFactory,
    engine: AsyncEngine,
    database_url: str,
    data_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    desk = make_desk()
    refs = []
    async with UnitOfWork(desk.sessions) as uow:
        for name in ("A", "B"):
            opened = await cases.open_case(
                desk,
                uow,
                kind="complaint",
                channel="email",
                complainant=Complainant(name=name, email=f"{name}@example.test"),
                subject=None,
                description=f"投诉 {name}",
            )
            await cases.add_information(desk, uow, opened.case, "x", "补充", ())
            refs.append(opened.ref)
        await uow.commit()
        assert await cases.verify(uow) == []

    # The application cannot change history: the database refuses it.
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        async with engine.begin() as conn:
            await conn.execute(sa.text("UPDATE case_event SET actor = 'x'"))

    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("DATA_DIR", str(data_dir))  # where the desk keeps its history key
    assert await asyncio.to_thread(main, ["cases", "verify"]) == 0
    assert "2 cases" in capsys.readouterr().out

    # Someone with database access rewrites the description of B's first event.
    async with engine.begin() as conn:
        await conn.run_sync(_bypass_guard, True)
        async with desk.sessions() as s:
            case = await repo.find_case_by_ref(s, refs[1])
            assert case is not None
            first = (await repo.events_of(s, case.id or 0))[0]
        data = dict(first.data or {}) | {"description": "投诉已撤销"}
        await conn.execute(
            sa.update(CaseEvent).where(col(CaseEvent.id) == first.id).values(data=data)
        )
        await conn.run_sync(_bypass_guard, False)
    async with UnitOfWork(desk.sessions) as uow:
        problems = await cases.verify(uow)
        assert [(p.ref, p.seq, p.reason) for p in problems] == [(refs[1], 1, "hash")]
        assert await cases.verify(uow, refs[0]) == []

    assert await asyncio.to_thread(main, ["cases", "verify"]) == 1
    out = capsys.readouterr().out
    assert f"{refs[1]}: event #1" in out and "altered" in out
    assert await asyncio.to_thread(main, ["cases", "verify", refs[0]]) == 0
    assert await asyncio.to_thread(main, ["cases", "verify", "TS-2026-ZZZZZZ"]) == 2
    assert "no case TS-2026-ZZZZZZ" in capsys.readouterr().err
    if engine.dialect.name == "postgresql":  # the shared database keeps its guard
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            async with engine.begin() as conn:
                await conn.execute(sa.text("DELETE FROM case_event"))


async def test_references_are_unique_and_well_formed(make_desk: DeskFactory) -> None:
    desk = make_desk()
    async with UnitOfWork(desk.sessions) as uow:
        refs = set()
        for i in range(20):
            opened = await cases.open_case(
                desk,
                uow,
                kind="dispute",
                channel="telegram",
                complainant=Complainant(telegram_user_id=900 + i, telegram_chat_id=900 + i),
                subject=None,
                description="…",
            )
            refs.add(opened.ref)
        await uow.commit()
        count = (await uow.session.exec(select(sa.func.count()).select_from(Case))).one()
    assert len(refs) == 20 == count
    assert all(r.startswith("TS-2026-") and len(r) == 14 for r in refs)


async def test_open_cases_listed_overdue_first_with_provisional_dates(
    make_desk: DeskFactory,
) -> None:
    desk = make_desk()
    clock = desk.clock
    assert isinstance(clock, FrozenClock)
    refs = {}
    # Received on three days; the last one's 30 working days run into 2027 (schedule unknown).
    for label, at in (
        ("late", datetime(2026, 12, 21, 2, tzinfo=UTC)),
        ("early", datetime(2026, 9, 1, 2, tzinfo=UTC)),
        ("middle", datetime(2026, 11, 2, 2, tzinfo=UTC)),
    ):
        clock.set(at)
        opened = await _open(
            desk,
            complainant=Complainant(name=label, email=f"{label}@example.test"),
            description=label,
        )
        refs[label] = opened.ref
    clock.set(datetime(2026, 12, 22, 2, tzinfo=UTC))
    async with desk.sessions() as s:
        listed = await repo.open_cases_by_due(s)
    assert [x.case.ref for x in listed] == [refs["early"], refs["middle"], refs["late"]]
    assert listed[0].next_due is not None and listed[0].next_due < clock.today()  # overdue
    assert [x.provisional for x in listed] == [False, False, True]


async def test_verify_flags_a_case_without_history(make_desk: DeskFactory) -> None:
    desk = make_desk()
    async with UnitOfWork(desk.sessions) as uow:
        uow.session.add(
            Case(ref="TS-2026-AAAAAA", kind="complaint", channel="email", status="received")
        )
        await uow.commit()
        problems = await cases.verify(uow)
    assert [(p.ref, p.reason) for p in problems] == [("TS-2026-AAAAAA", "missing")]
    assert "no history" in str(problems[0])
