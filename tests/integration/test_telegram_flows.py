"""Starting something else ends the flow that waits (issue 10 item 20), through the real
application and the Bot API emulator: a command the bot answers, or another flow's button, ends
every waiting flow of the chat — whichever handler group it sits in — so the next text reaches
the flow just started, not the one before ("answer with the buttons")."""

from __future__ import annotations

from datetime import date

from bot.desk import Desk
from bot.emulator import Emulator
from storage.models import Certificate, Contact, Organisation
from tests.fixtures.telegram_app import STAFF_CHAT, STAFF_ID, expect, running, start_en


async def test_case_started_during_a_quote_takes_the_next_text(
    bot_desk: Desk, emulator: Emulator
) -> None:
    user = emulator.user(830, "Ann", language_code="en")
    async with running(bot_desk, emulator):
        await start_en(user)
        await user.send("/quote")
        await expect(user, "How many effective people")
        await user.send("/case")  # the filing flow sits in a later handler group
        await expect(user, "Choose one")
        await user.press("Appeal")
        await expect(user, "Which decision")
        await user.send("Suspension of certificate GGBZ-SA-2025-007")
        await expect(user, "On which date")


async def test_a_quote_started_during_a_case_leaves_no_case_waiting(
    bot_desk: Desk, emulator: Emulator
) -> None:
    user = emulator.user(831, "Ann", language_code="en")
    async with running(bot_desk, emulator):
        await start_en(user)
        await user.send("/case")
        await expect(user, "Choose one")
        await user.press("Appeal")
        await expect(user, "Which decision")
        await user.send("/quote")  # the quote flow sits in an earlier handler group
        await expect(user, "How many effective people")
        await user.send("35")
        await expect(user, "How many similar sites")
        await user.press("1")
        await expect(user, "35 effective people")
        # The appeal does not take the next text as its decision: nothing waits any more.
        await user.send("Suspension of certificate GGBZ-SA-2025-007")
        await expect(user, "did not understand")


async def test_mycases_and_change_end_a_flow_waiting_for_buttons(
    bot_desk: Desk, emulator: Emulator
) -> None:
    user = emulator.user(832, "陈")
    async with bot_desk.sessions() as s, s.begin():
        org = Organisation(name="武汉示例有限公司", locale="zh_CN")
        s.add(org)
        await s.flush()
        s.add(Contact(organisation_id=org.id, telegram_chat_id=832, telegram_user_id=832,
                      locale="zh_CN"))  # fmt: skip
        s.add(
            Certificate(
                number="GGBZ-832",
                organisation_id=org.id,
                holder=org.name,
                standard="GB/T 39604-2020",
                decided_on=date(2026, 7, 10),
                stage2_end_on=date(2026, 6, 15),
                expires_on=date(2029, 7, 9),
            )
        )
    async with running(bot_desk, emulator):
        await user.send("/case")
        await expect(user, "申诉、投诉与争议")  # waits for a button
        await user.send("/mycases")
        await expect(user, "您还没有提交过")
        await user.send("你好")  # not "please answer with the buttons": no flow waits
        await expect(user, "没有理解")
        await user.send("/case")
        await expect(user, "申诉、投诉与争议")
        await user.send("/change")
        await expect(user, "请选择要报告的变更")
        await user.press("地址或工作场所变更")
        await expect(user, "请用一条消息说明")
        await user.send("新地址：武汉市东湖高新区光谷大道1号")
        await expect(user, "已收到您的变更通报")


async def test_another_flows_button_ends_the_waiting_one(
    bot_desk: Desk, emulator: Emulator
) -> None:
    user = emulator.user(833, "Ann", language_code="en")
    async with running(bot_desk, emulator):
        await start_en(user)
        menu = next(r for r in user.replies if r.buttons and "What would you like" in r.text)
        await user.send("/case")
        await expect(user, "Choose one")
        await user.press("Appeal")
        await expect(user, "Which decision")
        # The main menu's button, in the message shown before the case was started.
        await user.press("Audit days and cost", message_id=menu.message_id)
        await expect(user, "How many effective people")
        await user.send("12")
        await expect(user, "How many similar sites")
        await user.press("1")
        await expect(user, "12 effective people")
        await user.send("Suspension of certificate GGBZ-SA-2025-007")
        await expect(user, "did not understand")


async def test_a_staff_command_ends_a_pending_reply_prompt(
    bot_desk: Desk, emulator: Emulator
) -> None:
    from bot.services import cases
    from bot.services.cases import Complainant
    from storage.unit_of_work import UnitOfWork

    async with UnitOfWork(bot_desk.sessions) as uow:
        opened = await cases.open_case(
            bot_desk,
            uow,
            kind="complaint",
            channel="email",
            complainant=Complainant(name="陈静", email="chen@example.cn", locale="zh_CN"),
            subject="投诉",
            description="审核员迟到。",
        )
    staff = emulator.user(STAFF_ID, "Zhang", chat_type="group", chat_id=STAFF_CHAT)
    async with running(bot_desk, emulator):
        await staff.send(f"/case {opened.ref}")
        await expect(staff, opened.ref)
        await staff.press("答复投诉人")
        await expect(staff, "请发送对案件")
        await staff.send("/cases")
        await expect(staff, opened.ref)
        # Chatter in the staff chat afterwards is not sent to the complainant.
        await staff.send("internal: check the auditor's travel log first")
        await staff.send("/cases")
        assert "答复已排队发送" not in (await staff.next_reply()).text
