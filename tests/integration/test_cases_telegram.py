"""Cases through the real PTB application and the Bot API emulator, in both languages.

The acknowledgement and staff alerts go through the outbox, drained here by the real worker
with the real Telegram sender (and SMTP sender against aiosmtpd for e-mail complainants).
"""

from __future__ import annotations

import email
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select
from telegram.ext import Application

from bot.clock import FrozenClock
from bot.config import load_settings
from bot.delivery.smtp import SmtpSender
from bot.delivery.telegram import TelegramSender
from bot.delivery.telegram_pace import RateLimiter
from bot.desk import Desk, load_calendar
from bot.domain.refs import find_ref
from bot.emulator import Emulator, FakeUser, NoReplyError, Reply, bot_builder, run_app
from bot.main.app import build_application
from bot.outbox.worker import Outbox
from bot.profiles import load_profile
from bot.services import cases
from bot.services.cases import Complainant
from handlers.telegram import cases_filing, cases_mine, common, staff_cases
from storage.db import session_factory
from storage.models import OutboxMessage
from storage.repo import cases as repo
from storage.repo import staff as staff_repo
from storage.unit_of_work import UnitOfWork
from tests.fixtures.mail import SmtpSink

STAFF_CHAT = -100500
STAFF_A, STAFF_B = 9001, 9002
RECEIVED_AT = datetime(2026, 9, 28, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
MODULES = [common, staff_cases, cases_filing, cases_mine]
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


@dataclass
class Bot:
    desk: Desk
    app: Application
    emulator: Emulator
    outbox: Outbox

    async def deliver(self) -> None:
        """Run the outbox worker until nothing is due (`certdesk run` does it in the background)."""
        await self.outbox.drain()


@pytest.fixture
async def bot(
    emulator: Emulator,
    engine: AsyncEngine,
    database_url: str,
    data_dir: Path,
    smtp_server: SmtpSink,
) -> AsyncIterator[Bot]:
    settings = load_settings(
        data_dir=data_dir,
        database_url=database_url,
        staff_user_ids=[STAFF_A, STAFF_B],
        staff_chat_id=STAFF_CHAT,
        smtp_host=smtp_server.host,
        smtp_port=smtp_server.port,
        smtp_security="none",
        mail_domain="desk.example.test",
    )
    desk = Desk(
        settings=settings,
        profile=load_profile("ggbz"),
        calendar=load_calendar(settings),
        engine=engine,
        sessions=session_factory(engine),
        clock=FrozenClock(RECEIVED_AT),
    )
    # No per-chat spacing in tests: the limiter's pacing is tested with the sender itself, and
    # the staff group's turns in test_group_replies.
    limiter = RateLimiter(1000, private_interval=0, group_interval=0)
    app = build_application(desk, bot_builder(emulator), modules=MODULES, limiter=limiter)
    smtp = SmtpSender.from_settings(settings, desk.clock)
    assert smtp is not None
    async with run_app(app):
        senders = {"telegram": TelegramSender(app.bot, limiter), "email": smtp}
        outbox = Outbox(desk.sessions, senders, desk.clock, staff_chat_id=STAFF_CHAT)
        yield Bot(desk, app, emulator, outbox)
        await smtp.close()


async def _open(desk: Desk, **fields: Any) -> cases.OpenedCase:
    """A case opened as the e-mail intake would (no chat), in a transaction of its own."""
    async with UnitOfWork(desk.sessions) as uow:
        opened = await cases.open_case(desk, uow, **fields)
    return opened


async def _reply(user: FakeUser, action: str, *, press: bool = False) -> Reply:
    """What the bot shows in the user's chat after this message or button press.

    Counted per chat, so several staff members in the staff chat read the same stream."""
    before = len(user.replies)
    await (user.press(action) if press else user.send(action))
    if not await user.emulator.wait_for(lambda: len(user.replies) > before):
        raise NoReplyError(f"no reply to {action!r} in chat {user.chat_id}")
    return user.replies[before]


async def _step(user: FakeUser, action: str, *, press: bool = False) -> str:
    return (await _reply(user, action, press=press)).text


async def _delivered(bot: Bot, user: FakeUser) -> list[str]:
    """Run the outbox; the texts it brought to this user's chat."""
    before = len(user.replies)
    await bot.deliver()
    return [r.text for r in user.replies[before:]]


async def _file_complaint_zh(user: FakeUser) -> str:
    assert "申诉、投诉与争议" in await _step(user, "/case")
    assert "您的投诉针对" in await _step(user, "投诉", press=True)
    assert "获证组织的名称" in await _step(user, "获证组织", press=True)
    assert "描述事情经过" in await _step(user, "武汉某玩具厂 GGBZ-SA-2025-001")
    assert "证明材料" in await _step(user, "该厂强迫工人超时加班，每月超过 100 小时。")
    before = len(user.replies)
    await user.upload(PDF, "../../加班记录.pdf", "application/pdf")
    await user.upload(b"MZ\x90\x00not a document", "evil.pdf", "application/pdf")
    assert await user.emulator.wait_for(lambda: len(user.replies) >= before + 2)
    answers = [r.text for r in user.replies[before:]]
    assert "已收到文件：加班记录.pdf" in answers[0]
    assert "无法识别该文件类型" in answers[1]
    assert "您的姓名" in await _step(user, "继续", press=True)
    assert "电话或电子邮箱" in await _step(user, "王芳")
    summary = await _step(user, "13800138000")
    assert "请确认您的投诉" in summary and "加班记录.pdf" in summary
    assert "武汉某玩具厂 GGBZ-SA-2025-001" in summary
    submitted = await _step(user, "确认提交", press=True)
    ref = find_ref(submitted)
    assert ref is not None, submitted
    return ref


async def test_complaint_in_chinese_is_acknowledged_with_ggbz_dates(bot: Bot) -> None:
    user = bot.emulator.user(501, "芳", language_code="zh-hans")
    staff = bot.emulator.user(STAFF_A, "Zhang", chat_type="group", chat_id=STAFF_CHAT)
    ref = await _file_complaint_zh(user)
    staff_before = len(staff.replies)
    (ack,) = await _delivered(bot, user)
    assert f"案件编号：{ref}" in ack
    assert "• 投诉调查完成：2026年11月13日前（GGBZ §8.5.3" in ack
    assert "• 投诉处理结果书面告知：2026年11月27日前（GGBZ §8.3" in ack
    assert "不会告知被投诉方" in ack
    alert = staff.replies[staff_before]
    assert ref in alert.text and "2026年11月13日" in alert.text
    assert alert.buttons == ["由我处理", "查看"]

    # The user's own list shows it with its next date.
    listed = await _step(user, "/mycases")
    assert f"{ref} 投诉：已收到，下一期限 2026年11月13日" in listed

    # Add information, then withdraw: both recorded, staff told, the user answered in writing.
    assert "2026年11月13日前" in await _step(user, ref, press=True)
    assert "请发送要补充的内容" in await _step(user, "补充信息", press=True)
    assert f"已将您补充的信息记入案件 {ref}" in await _step(user, "补充：还有工资单。")
    await _step(user, f"/mycases {ref}")
    assert f"确定撤回案件 {ref} 吗" in await _step(user, "撤回", press=True)
    pressed = await user.press("确定撤回")
    query_id = pressed["callback_query"]["id"]
    # Answered once the withdrawal is committed; the notice then waits in the outbox.
    assert await bot.emulator.wait_for(lambda: bot.emulator.callback_answers[query_id] is not None)
    staff_before = len(staff.replies)
    notices = await _delivered(bot, user)
    assert notices == [f"案件 {ref} 已按您的要求撤回。"]
    assert "收到补充信息" in staff.replies[staff_before].text
    assert f"{ref} 投诉：已撤回" in await _step(user, "/mycases")


async def test_complaint_in_english_anonymous_allowed_under_ggbz(bot: Bot) -> None:
    user = bot.emulator.user(502, "Ann", language_code="en")
    assert "Choose one" in await _step(user, "/case")
    await _step(user, "Complaint", press=True)
    assert "Please describe" in await _step(user, "A member of our staff", press=True)
    await _step(user, "The auditor asked for a gift.")
    assert "Please tell us your name" in await _step(user, "Continue", press=True)
    assert "phone number or e-mail" in await _step(user, "Skip", press=True)
    summary = await _step(user, "Skip", press=True)
    assert "Name: (not given)" in summary
    submitted = await _step(user, "Submit", press=True)
    ref = find_ref(submitted)
    assert ref is not None
    (ack,) = await _delivered(bot, user)
    assert f"Its reference is {ref}" in ack
    assert "• Complaint investigated: by 2026-11-13 (GGBZ §8.5.3" in ack
    assert "• Written answer to the complaint: by 2026-11-27 (GGBZ §8.3" in ack
    assert "anonymous" not in ack  # GGBZ accepts anonymous complaints


async def test_appeal_staff_workflow_and_reply_on_telegram(bot: Bot) -> None:
    user = bot.emulator.user(503, "Li", language_code="en")
    zhang = bot.emulator.user(
        STAFF_A, "Zhang", last_name="Wei", chat_type="group", chat_id=STAFF_CHAT
    )
    li = bot.emulator.user(STAFF_B, "Li", last_name="Na", chat_type="group", chat_id=STAFF_CHAT)
    await in_directory(bot.desk, "Zhang Wei", "zhang@desk.example.test", STAFF_A)
    await in_directory(bot.desk, "李娜", "li@desk.example.test", STAFF_B)
    await _step(user, "/case")
    assert "Which decision" in await _step(user, "Appeal", press=True)
    assert "On which date" in await _step(user, "Suspension of certificate GGBZ-SA-2025-007")
    assert "could not read" in await _step(user, "last month")
    # Two dates, asked apart: when the decision was made, when its notice reached the appellant.
    assert "receive the notice" in await _step(user, "2026-06-01")
    assert "before the decision was made" in await _step(user, "2026-05-30")
    assert "who took that decision" in await _step(user, "2026-06-05")
    await _step(user, "Zhang Wei, Wang Fang")
    await _step(user, "Please lift the suspension; the findings were closed.")
    await _step(user, "Continue", press=True)
    await _step(user, "Factory Ltd")
    await _step(user, "qa@factory.example")
    ref = find_ref(await _step(user, "Submit", press=True))
    assert ref is not None
    staff_before = len(zhang.replies)
    (ack,) = await _delivered(bot, user)
    # GGBZ §8.6.1 counts from the day the decision was made: out of time, still recorded.
    late = "the decision was made on 2026-06-01. Time limit to file an appeal: ended on 2026-09-01"
    assert late in ack
    assert "• Appeal work group formed: by 2026-10-16 (GGBZ §8.6.2" in ack
    assert "超过申诉/争议提出期限" in zhang.replies[staff_before].text

    # The decision-maker may not take it; another staff member may.
    refused = await _step(zhang, "由我处理", press=True)
    assert "您不能处理案件" in refused and "您是被申诉决定的作出人（Zhang Wei）" in refused
    assert f"案件 {ref} 已分配给 李娜" in await _step(li, "由我处理", press=True)

    listing = await _step(li, "/cases")
    assert ref in listing and "2026年10月16日" in listing and "负责：李娜" in listing
    detail = await _step(li, f"/case {ref}")
    assert "Factory Ltd / qa@factory.example" in detail  # staff see the identity
    assert "组成申诉工作组：2026年10月16日" in detail
    # The case file in words, as the console shows it: no raw actor ids, event types or ids.
    assert "1. 2026-09-28 10:00 投诉人：收到申诉（Telegram）" in detail
    assert "系统：已发出书面确认" in detail
    assert "李娜：分配给 李娜" in detail and "负责：李娜" in detail
    assert "被申诉的决定：2026年6月1日" in detail and "作出人：Zhang Wei" in detail
    assert "complainant:" not in detail and "received" not in detail and "9002" not in detail
    assert "关闭期限：组成申诉工作组" in await _step(li, "已组成工作组", press=True)

    assert "请发送对案件" in await _step(li, "答复投诉人", press=True)
    queued = await _step(li, "The work group met; decision by 27 November.")
    assert "答复已排队发送" in queued
    (answer,) = await _delivered(bot, user)
    assert f"Answer about case {ref}" in answer
    assert "The work group met; decision by 27 November." in answer
    detail = await _step(li, f"/case {ref}")
    # How the deadline was met, with its clause; the reply sent, in full, by whom.
    assert "✓ 组成申诉工作组：2026年10月16日（GGBZ §8.6.2" in detail
    assert "2026年9月28日 已满足：已组成工作组" in detail
    assert "李娜：节点：已组成工作组" in detail
    assert "李娜：答复（Telegram）：The work group met; decision by 27 November." in detail


async def test_someone_elses_reference_is_not_found(bot: Bot) -> None:
    owner = bot.emulator.user(504, "Owner")
    other = bot.emulator.user(505, "Other")
    ref = await _file_complaint_zh(owner)
    assert "没有找到该编号的案件" in await _step(other, f"/mycases {ref}")
    assert "没有找到该编号的案件" in await _step(other, "/mycases TS-2026-ZZZZZZ")
    assert "您还没有提交过" in await _step(other, "/mycases")
    # Staff commands do nothing for the public, whatever they type.
    for command in ("/cases", f"/case {ref}", f"/assign {ref}", f"/reply {ref} hi"):
        await other.send(command)
    await other.send("/mycases")
    shown = [r.text for r in other.replies][-5:]
    assert all(ref not in text for text in shown), shown
    assert ref in await _step(owner, f"/mycases {ref}")


async def test_staff_reply_reaches_an_email_complainant(bot: Bot, smtp_server: SmtpSink) -> None:
    desk = bot.desk
    opened = await _open(
        desk,
        kind="complaint",
        channel="email",
        complainant=Complainant(name="陈静", email="chen@example.cn", locale="zh_CN"),
        subject="投诉",
        description="审核员迟到。",
        source_message_id="<letter-1@example.cn>",
    )
    staff = bot.emulator.user(STAFF_A, "Zhang", chat_type="group", chat_id=STAFF_CHAT)
    (alert,) = await _delivered(bot, staff)
    assert opened.ref in alert
    queued = await _step(staff, f"/reply {opened.ref} 我们已核实，审核员已受到批评。")
    assert "电子邮件" in queued
    await bot.deliver()
    ack_mail, reply_mail = await smtp_server.wait_for(2)
    ack = email.message_from_bytes(ack_mail.content, policy=default_policy)
    reply = email.message_from_bytes(reply_mail.content, policy=default_policy)
    assert reply_mail.rcpt_tos == ["chen@example.cn"]
    assert str(ack["Subject"]) == f"[{opened.ref}] 我们已收到您的投诉"
    assert str(ack["In-Reply-To"]) == "<letter-1@example.cn>"
    assert str(reply["Subject"]) == f"[{opened.ref}] 关于您的案件的答复"
    assert str(reply["In-Reply-To"]) == str(ack["Message-ID"])
    body = reply.get_body(preferencelist=("plain",))
    assert body is not None and "我们已核实，审核员已受到批评。" in body.get_content()
    async with desk.sessions() as s:
        found = await cases.find_case_by_message_id(s, str(reply["Message-ID"]))
        assert found is not None and found.ref == opened.ref
        rows = (await s.exec(select(OutboxMessage).where(OutboxMessage.case_id == found.id))).all()
    assert {r.status for r in rows} == {"sent"}
    assert date(2026, 9, 28) == opened.case.created_at.date()


async def _forge(user: FakeUser, data: str) -> dict[str, Any]:
    """A modified client presses a button never shown to it, with callback data of its choice."""
    message = list(user.emulator._messages[user.chat_id].values())[-1]
    return await user._callback(message, {"text": "forged", "callback_data": data})


async def _events(desk: Desk, ref: str) -> list[str]:
    async with desk.sessions() as s:
        case = await cases.find_case_by_ref(s, ref)
        assert case is not None
        return [e.type for e in await repo.events_of(s, case.id or 0)]


async def test_forged_buttons_reach_nobody_elses_case(bot: Bot) -> None:
    owner = bot.emulator.user(510, "Owner")
    other = bot.emulator.user(511, "Other")
    ref = await _file_complaint_zh(owner)
    assert "您还没有提交过" in await _step(other, "/mycases")
    for data in ("show", "info", "id", "withdraw", "withdraw_yes"):
        count = len(other.replies)
        await _forge(other, f"mycase:{data}:{ref}")
        assert await bot.emulator.wait_for(lambda n=count: len(other.replies) > n), data
        assert "没有找到该编号的案件" in other.replies[count].text
        assert ref not in other.replies[count].text
    # Staff buttons forged by someone who is not staff: nothing happens, nothing is shown.
    for data in (f"staff:show:{ref}", f"staff:assign:{ref}", f"staff:reply:{ref}"):
        await _forge(other, data)
    await _forge(other, f"staff:ms:answer_sent:{ref}")
    assert "您还没有提交过" in await _step(other, "/mycases")  # the very next answer
    assert all(ref not in r.text for r in other.replies)
    assert await _events(bot.desk, ref) == ["received", "acknowledged"]
    assert f"{ref} 投诉：已收到" in await _step(owner, "/mycases")


async def test_forged_choices_in_the_filing_flow_are_ignored(bot: Bot) -> None:
    user = bot.emulator.user(512, "Chen")
    await _step(user, "/case")
    await _forge(user, "case:kind:bogus")
    assert "您的投诉针对" in await _step(user, "投诉", press=True)
    await _forge(user, "case:concerns:../../etc")
    assert "获证组织的名称" in await _step(user, "获证组织", press=True)


EVIL = '<script>alert("x")</script> & <b>'


async def test_user_text_is_escaped_everywhere_and_identity_kept_for_staff(bot: Bot) -> None:
    user = bot.emulator.user(513, "Eve", language_code="en")
    nosy = bot.emulator.user(514, "Nosy", language_code="en")
    staff = bot.emulator.user(STAFF_A, "Zhang", chat_type="group", chat_id=STAFF_CHAT)
    await _step(user, "/case")
    await _step(user, "Complaint", press=True)
    await _step(user, "This certification body", press=True)
    await _step(user, EVIL)
    await _step(user, "Continue", press=True)
    await _step(user, "<i>Eve</i> & Co")
    summary = await _step(user, "eve@example.test")
    assert EVIL in summary and "<i>Eve</i> & Co" in summary
    ref = find_ref(await _step(user, "Submit", press=True))
    assert ref is not None
    await bot.deliver()
    assert ref in await _step(user, "/mycases")
    await _step(user, f"/mycases {ref}")
    await _step(user, "Add information", press=True)
    await _step(user, EVIL)
    staff_before = len(staff.replies)
    await bot.deliver()
    assert EVIL in staff.replies[staff_before].text  # "information added" alert
    detail = await _step(staff, f"/case {ref}")
    assert EVIL in detail and "<i>Eve</i> & Co / eve@example.test" in detail
    assert "答复已排队发送" in await _step(staff, f"/reply {ref} {EVIL}")
    (answer,) = await _delivered(bot, user)
    assert EVIL in answer
    # The complainant's identity reaches nobody but staff.
    assert "No case with that reference" in await _step(nosy, f"/mycases {ref}")
    shown = [
        r.text
        for chat, replies in bot.emulator._outputs.items()
        for r in replies
        if chat not in (user.chat_id, STAFF_CHAT)
    ]
    assert not any("Eve</i>" in text or "eve@example.test" in text for text in shown)


async def in_directory(desk: Desk, name: str, email: str, telegram_id: int) -> None:
    """A staff directory entry (`certdesk staff add`), its password never used here."""
    async with UnitOfWork(desk.sessions) as uow:
        await staff_repo.add(
            uow.session,
            name=name,
            email=email,
            telegram_user_id=telegram_id,
            role="staff",
            password_hash="unused",
            now=desk.clock.now(),
        )


async def test_impartiality_holds_when_assigning_someone_else_by_id(bot: Bot) -> None:
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
    )
    ref = opened.ref
    zhang = bot.emulator.user(
        STAFF_A, "Zhang", last_name="Wei", chat_type="group", chat_id=STAFF_CHAT
    )
    await _delivered(bot, zhang)
    # Nobody is in the staff directory yet: nobody can be checked, so nobody acts.
    assert "不在工作人员名录中" in await _step(zhang, f"/assign {ref}")
    await in_directory(desk, "Zhang Wei", "zhang@desk.example.test", STAFF_A)
    assert "无法确认其姓名" in await _step(zhang, f"/assign {ref} {STAFF_B}")
    # A display name proves nothing: Li Na calling herself something else is still Li Na.
    await in_directory(desk, "Li Na", "li@desk.example.test", STAFF_B)
    li = bot.emulator.user(STAFF_B, "Someone", last_name="Else")
    await _step(li, "/start")
    assert "被申诉决定的作出人" in await _step(zhang, f"/assign {ref} {STAFF_B}")
    assert "不是已配置的工作人员" in await _step(zhang, f"/assign {ref} 12345")
    assert await _events(desk, ref) == ["received", "acknowledged"]
    assert f"案件 {ref} 已分配给 Zhang Wei" in await _step(zhang, f"/assign {ref}")
    # Only the milestones of an appeal; another kind's is refused, whatever is typed.
    assert "不适用" in await _step(zhang, f"/milestone {ref} investigation_done")
    assert "关闭期限：组成申诉工作组" in await _step(zhang, f"/milestone {ref} work_group_formed")
    # Staff cannot withdraw a case for the complainant, even with forged button data.
    await _forge(zhang, f"staff:ms:withdrawn:{ref}")
    await _forge(zhang, f"staff:ms:bogus:{ref}")
    assert "处理中" in await _step(zhang, f"/case {ref}")  # the very next answer
    assert await _events(desk, ref) == ["received", "acknowledged", "assigned", "work_group_formed"]


async def test_staff_see_the_identity_given_after_the_fact(bot: Bot) -> None:
    desk = bot.desk
    opened = await _open(
        desk,
        kind="complaint",
        channel="telegram",
        complainant=Complainant(telegram_user_id=515, telegram_chat_id=515, locale="zh_CN"),
        subject=None,
        description="匿名投诉。",
    )
    async with UnitOfWork(desk.sessions) as uow:
        case = await repo.lock_case(uow.session, opened.case.id or 0)
        await cases.provide_identity(
            desk, uow, case, "complainant:telegram:515", name="赵敏", phone="13800000000"
        )
    staff = bot.emulator.user(STAFF_A, "Zhang", chat_type="group", chat_id=STAFF_CHAT)
    assert "投诉人/申诉人：赵敏 / 13800000000" in await _step(staff, f"/case {opened.ref}")


# --- edited messages --------------------------------------------------------------------------


async def _sent(user: FakeUser, text: str) -> dict[str, Any]:
    """Send a message and wait for the bot's answer to it; the message as Telegram sent it."""
    before = len(user.replies)
    update = await user.send(text)
    if not await user.emulator.wait_for(lambda: len(user.replies) > before):
        raise NoReplyError(f"no reply to {text!r} in chat {user.chat_id}")
    message: dict[str, Any] = update["message"]
    return message


async def test_an_edited_message_does_not_answer_the_add_information_prompt(bot: Bot) -> None:
    user = bot.emulator.user(516, "Wu")
    ref = await _file_complaint_zh(user)
    earlier = await _sent(user, f"/mycases {ref}")
    assert "请发送要补充的内容" in await _step(user, "补充信息", press=True)
    # Editing an old message is not an answer: the user is told to send it as a new one.
    before = len(user.replies)
    await user.edit(earlier, "改过的旧消息")
    assert await bot.emulator.wait_for(lambda: len(user.replies) > before)
    assert "修改过的消息不会被读取" in user.replies[before].text
    # The prompt still waits for a new message, and takes it.
    assert f"已将您补充的信息记入案件 {ref}" in await _step(user, "补充：新的工资单。")
    async with bot.desk.sessions() as s:
        case = await cases.find_case_by_ref(s, ref)
        assert case is not None
        added = [
            e.data for e in await repo.events_of(s, case.id or 0) if e.type == "information_added"
        ]
    assert [(d or {}).get("text") for d in added] == ["补充：新的工资单。"]


async def test_an_edited_message_neither_answers_the_reply_prompt_nor_replies_again(
    bot: Bot,
) -> None:
    user = bot.emulator.user(517, "Wu", language_code="en")
    opened = await _open(
        bot.desk,
        kind="complaint",
        channel="telegram",
        complainant=Complainant(name="Wu", telegram_user_id=517, telegram_chat_id=517, locale="en"),
        subject=None,
        description="The auditor was late.",
    )
    ref = opened.ref
    staff = bot.emulator.user(STAFF_A, "Zhang", chat_type="group", chat_id=STAFF_CHAT)
    await bot.deliver()
    assert len(user.replies) == 1  # the acknowledgement
    command = await _sent(staff, f"/reply {ref} First answer.")
    await _step(staff, f"/case {ref}")
    assert "请发送对案件" in await _step(staff, "答复投诉人", press=True)
    # Neither an edited command nor an edited message is taken, in the prompt or outside it.
    # The edited command is answered with a note that it is not run again; chatter is not.
    before = len(staff.replies)
    await staff.edit(command, f"/reply {ref} Edited first answer.")
    assert await bot.emulator.wait_for(lambda: len(staff.replies) > before)
    assert "修改过的命令不会再次执行" in staff.replies[before].text
    await staff.edit(command, "Edited into plain text.")
    assert "答复已排队发送" in await _step(staff, "Second answer.")
    assert len(staff.replies) == before + 2
    answers = await _delivered(bot, user)
    assert len(answers) == 2
    assert "First answer." in answers[0] and "Second answer." in answers[1]
    assert not any("Edited" in text for text in answers)
    events = await _events(bot.desk, ref)
    assert events.count("reply_sent") == 2
