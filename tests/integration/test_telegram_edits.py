"""Edited Telegram messages are never answers (issue 10 item 4), through the real application
and the Bot API emulator: only a new message answers a prompt, runs a command or ends a flow;
an edit is not read, and the person is told to send the correction again."""

from __future__ import annotations

from datetime import date

from sqlmodel import select

from bot.desk import Desk
from bot.emulator import Emulator, FakeUser
from storage.models import Certificate, Contact, Organisation, OutboxMessage
from tests.fixtures.telegram_app import STAFF_CHAT, STAFF_ID, expect, running, start_en


async def _certified(desk: Desk, user_id: int) -> None:
    """A contact of a certified organisation, as the certificate import leaves one."""
    async with desk.sessions() as s, s.begin():
        org = Organisation(name="武汉示例有限公司", locale="zh_CN")
        s.add(org)
        await s.flush()
        s.add(Contact(organisation_id=org.id, telegram_chat_id=user_id, telegram_user_id=user_id,
                      locale="zh_CN"))  # fmt: skip
        s.add(
            Certificate(
                number=f"GGBZ-{user_id}",
                organisation_id=org.id,
                holder=org.name,
                standard="GB/T 39604-2020",
                decided_on=date(2026, 7, 10),
                stage2_end_on=date(2026, 6, 15),
                expires_on=date(2029, 7, 9),
            )
        )


async def _staff_rows(desk: Desk) -> list[str]:
    async with desk.sessions() as s:
        rows = (await s.exec(select(OutboxMessage))).all()
    return [r.idempotency_key for r in rows if r.idempotency_key.startswith("change:")]


async def test_an_edit_is_not_a_change_report(bot_desk: Desk, emulator: Emulator) -> None:
    user = emulator.user(820, "陈")
    await _certified(bot_desk, user.id)
    async with running(bot_desk, emulator):
        old = await user.send("/help")
        await expect(user, "/cancel")
        await user.send("/change")
        await expect(user, "请选择要报告的变更")
        await user.press("地址或工作场所变更")
        await expect(user, "请用一条消息说明")
        await user.edit(old, "旧消息改成：新地址在光谷大道")
        note = await expect(user, "修改过的消息不会被读取")
        assert note.message["reply_to_message"]["message_id"] == old["message"]["message_id"]
        assert await _staff_rows(bot_desk) == []
        # The prompt still waits, and a new message answers it.
        await user.send("新地址：武汉市东湖高新区光谷大道1号")
        await expect(user, "已收到您的变更通报")
    assert len(await _staff_rows(bot_desk)) == 1


async def test_an_edit_neither_answers_nor_ends_a_flow(bot_desk: Desk, emulator: Emulator) -> None:
    user = emulator.user(821, "Ann", language_code="en")
    async with running(bot_desk, emulator):
        await start_en(user)
        old = await user.send("/help")
        await expect(user, "/cancel")
        await user.send("/quote")
        await expect(user, "How many effective people")
        # Neither a number nor a command typed into an old message is taken.
        await user.edit(old, "120")
        await expect(user, "Edited messages are not read")
        await user.edit(old, "/cancel")
        await expect(user, "Edited messages are not read")
        await user.send("35")
        await expect(user, "How many similar sites")  # the flow went on from where it was
        await user.press("1")
        await expect(user, "35 effective people")
        assert not any("120 effective" in r.text or "Cancelled" in r.text for r in user.replies)


async def test_a_choice_prompt_does_not_remind_about_buttons_on_an_edit(
    bot_desk: Desk, emulator: Emulator
) -> None:
    user = emulator.user(822, "陈")
    await _certified(bot_desk, user.id)
    async with running(bot_desk, emulator):
        old = await user.send("你好")
        await expect(user, "没有理解")
        await user.send("/change")
        await expect(user, "请选择要报告的变更")
        before = len(user.replies)
        await user.edit(old, "重大事故")
        await expect(user, "修改过的消息不会被读取")
        assert len(user.replies) == before + 1  # no "answer with the buttons" as well
        await user.press("重大事故")
        await expect(user, "通报期限")


async def test_staff_are_told_an_edited_command_is_not_run(
    bot_desk: Desk, emulator: Emulator
) -> None:
    staff = emulator.user(STAFF_ID, "Zhang", chat_type="group", chat_id=STAFF_CHAT)
    async with running(bot_desk, emulator):
        command = await staff.send("/cases")
        await expect(staff, "")
        before = len(staff.replies)
        await staff.edit(command, "/cases now")
        note = await expect(staff, "修改过的命令不会再次执行")
        assert len(staff.replies) == before + 1
        assert note.message["reply_to_message"]["message_id"] == command["message"]["message_id"]
        # Chatter edited in the staff chat is neither read nor answered.
        chatter = await staff.send("lunch at noon?")
        await staff.edit(chatter, "lunch at one?")
        await staff.send("/cases")
        assert "修改过的" not in (await staff.next_reply()).text


async def test_the_emulator_sends_an_edit_as_telegram_does(emulator: Emulator) -> None:
    user: FakeUser = emulator.user(823, "Ann")
    sent = await user.send("/start")
    update = await user.edit(sent, "/help me")
    edited = update["edited_message"]
    assert edited["message_id"] == sent["message"]["message_id"]
    assert edited["date"] == sent["message"]["date"] and edited["edit_date"] >= edited["date"]
    assert edited["text"] == "/help me"
    assert edited["entities"] == [{"type": "bot_command", "offset": 0, "length": 5}]
    assert emulator.message(user.chat_id, edited["message_id"])["text"] == "/help me"
