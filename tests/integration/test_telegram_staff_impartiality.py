"""Impartiality on every staff action from the Telegram staff chat, by directory identity
(bot.domain.impartiality): the audit team stands aside from replies and milestones, and a case
assigned to someone is taken over only by a recorded hand-over."""

from __future__ import annotations

from datetime import date

from bot.services.cases import Complainant
from storage.repo import cases as repo
from tests.integration.test_cases_telegram import (
    STAFF_A,
    STAFF_B,
    STAFF_CHAT,
    Bot,
    _delivered,
    _events,
    _open,
    _step,
    bot,
    in_directory,
)

__all__ = ["bot"]  # the fixture, shared with test_cases_telegram


async def test_the_audit_team_is_refused_replies_and_milestones_with_the_reason(bot: Bot) -> None:
    desk = bot.desk
    opened = await _open(
        desk,
        kind="appeal",
        channel="email",
        complainant=Complainant(name="Factory", email="qa@factory.example", locale="en"),
        subject="Suspension",
        description="Please lift it.",
        decided_on=date(2026, 9, 20),
        decided_by="Li Na",
        audit_team=["wang@desk.example.test"],  # recorded by address, not by name
    )
    ref = opened.ref
    await in_directory(desk, "王芳", "wang@desk.example.test", STAFF_B)
    # Her Telegram name says nothing of who she is; the directory does.
    wang = bot.emulator.user(STAFF_B, "Fang", last_name="W", chat_type="group", chat_id=STAFF_CHAT)
    await _delivered(bot, wang)
    refused = await _step(wang, f"/reply {ref} The work group met.")
    assert f"您不能处理案件 {ref}：您是所涉审核组成员（王芳），须回避" in refused
    refused = await _step(wang, f"/milestone {ref} work_group_formed")
    assert "您是所涉审核组成员（王芳）" in refused
    assert "您是所涉审核组成员" in await _step(wang, f"/assign {ref}")
    assert await _events(desk, ref) == ["received", "acknowledged"]


async def test_someone_elses_case_is_taken_over_by_a_recorded_hand_over(bot: Bot) -> None:
    desk = bot.desk
    opened = await _open(
        desk,
        kind="complaint",
        channel="email",
        complainant=Complainant(name="陈静", email="chen@example.cn", locale="zh_CN"),
        subject="投诉",
        description="审核员迟到。",
    )
    ref = opened.ref
    await in_directory(desk, "张伟", "zhang@desk.example.test", STAFF_A)
    await in_directory(desk, "李娜", "li@desk.example.test", STAFF_B)
    zhang = bot.emulator.user(STAFF_A, "Z", chat_type="group", chat_id=STAFF_CHAT)
    li = bot.emulator.user(STAFF_B, "L", chat_type="group", chat_id=STAFF_CHAT)
    await _delivered(bot, zhang)
    assert f"案件 {ref} 已分配给 张伟" in await _step(zhang, f"/assign {ref}")
    refused = await _step(li, f"/reply {ref} 我来答复。")
    assert f"案件 {ref} 由 张伟 负责，应由其本人处理" in refused
    assert "由 张伟 负责" in await _step(li, f"/milestone {ref} investigation_done")
    assert f"案件 {ref} 已分配给 李娜" in await _step(li, f"/assign {ref}")
    assert "答复已排队发送" in await _step(li, f"/reply {ref} 我来答复。")
    assert await _events(desk, ref) == [
        "received",
        "acknowledged",
        "assigned",
        "assigned",
        "reply_sent",
    ]
    async with desk.sessions() as s:
        case = await repo.find_case_by_ref(s, ref)
        assert case is not None and case.assignee == "li@desk.example.test"
        handed = (await repo.events_of(s, case.id or 0))[3]
    # Who handed it over (the actor), from whom, to whom.
    assert handed.actor == f"staff:{STAFF_B}"
    assert handed.data["handed_over_from"] == "zhang@desk.example.test"
    assert handed.data["assignee"] == "li@desk.example.test"
    detail = await _step(zhang, f"/case {ref}")
    assert "李娜：由 张伟 转交给 李娜" in detail and "负责：李娜" in detail
