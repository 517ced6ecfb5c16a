"""`/case REF` in the staff chat reads like the console's case file: events in words with who
did them, deadlines with their clause and how each was met, the text of added information and
replies, the attachments, the console link when CONSOLE_BASE_URL is set."""

from __future__ import annotations

from bot.services import cases
from storage.repo import cases as repo
from storage.unit_of_work import UnitOfWork
from tests.integration.test_cases_telegram import (
    PDF,
    STAFF_A,
    STAFF_CHAT,
    Bot,
    _delivered,
    _file_complaint_zh,
    _step,
    bot,
    in_directory,
)

__all__ = ["bot"]  # the fixture, shared with test_cases_telegram


async def test_the_case_file_in_words_with_files_information_and_the_console_link(
    bot: Bot,
) -> None:
    user = bot.emulator.user(530, "芳")
    staff = bot.emulator.user(STAFF_A, "Z", chat_type="group", chat_id=STAFF_CHAT)
    ref = await _file_complaint_zh(user)
    await _delivered(bot, user)
    async with UnitOfWork(bot.desk.sessions) as uow:
        case = await cases.lock_case(uow, ref)
        assert case is not None
        await cases.add_information(bot.desk, uow, case, "complainant:telegram:530", "还有工资单。")
    await in_directory(bot.desk, "张伟", "zhang@desk.example.test", STAFF_A)
    await _step(staff, f"/assign {ref}")
    assert "关闭期限" in await _step(staff, f"/milestone {ref} answer_sent")
    bot.desk.settings = bot.desk.settings.model_copy(
        update={"console_base_url": "https://desk.example.test/console"}
    )
    before = len(staff.replies)
    await staff.send(f"/case {ref}")
    # A closed case offers no buttons: its file ends with the console link.
    assert await bot.emulator.wait_for(
        lambda: any("控制台：" in r.text for r in staff.replies[before:])
    )
    shown = "\n".join(r.text for r in staff.replies[before:])
    assert "附件（1）" in shown and f"• 加班记录.pdf（application/pdf，{len(PDF)} B）" in shown
    assert "投诉人：投诉人补充信息：还有工资单。" in shown
    assert "投诉人/申诉人：王芳 / 13800138000" in shown
    assert "张伟：分配给 张伟" in shown and "张伟：节点：已书面答复" in shown
    assert "✓ 投诉调查完成：2026年11月13日（GGBZ §8.5.3" in shown
    assert "2026年9月28日 已满足：已书面答复" in shown
    assert "张伟：书面处理结果已发出（Telegram）" in shown  # the outcome letter, in words
    assert f"控制台：https://desk.example.test/console/cases/{ref}" in shown
    for raw in ("complainant:", "staff:", "information_added", "investigation_done", "9001"):
        assert raw not in shown, raw
    async with bot.desk.sessions() as s:
        found = await repo.find_case_by_ref(s, ref)
        assert found is not None and found.assignee == "zhang@desk.example.test"
