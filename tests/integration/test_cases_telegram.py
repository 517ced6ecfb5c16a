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

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select
from telegram.ext import Application

from bot import cases
from bot.app import build_application
from bot.cases import Complainant
from bot.clock import FrozenClock
from bot.config import load_settings
from bot.delivery.smtp import SmtpSender
from bot.delivery.telegram import RateLimiter, TelegramSender
from bot.desk import Desk, load_calendar
from bot.emulator import Emulator, FakeUser, NoReplyError, Reply, bot_builder, run_app
from bot.outbox import Outbox
from bot.policy import load_profile
from bot.refs import find_ref
from storage.db import session_factory
from storage.models import OutboxMessage
from tests.fixtures.mail import SmtpSink

STAFF_CHAT = -100500
STAFF_A, STAFF_B = 9001, 9002
RECEIVED_AT = datetime(2026, 9, 28, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
MODULES = ["handlers.telegram.common", "handlers.telegram.staff_cases", "handlers.telegram.cases"]
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
    app = build_application(desk, bot_builder(emulator), modules=MODULES)
    smtp = SmtpSender.from_settings(settings, desk.clock)
    assert smtp is not None
    async with run_app(app):
        # No per-chat spacing in tests: the limiter's pacing is tested with the sender itself.
        limiter = RateLimiter(1000, private_interval=0, group_interval=0)
        senders = {"telegram": TelegramSender(app.bot, limiter), "email": smtp}
        outbox = Outbox(desk.sessions, senders, desk.clock, staff_chat_id=STAFF_CHAT)
        yield Bot(desk, app, emulator, outbox)
        await smtp.close()


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
    assert f"{ref} 投诉：已受理，下一期限 2026年11月13日" in listed

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
    await _step(user, "/case")
    assert "Which decision" in await _step(user, "Appeal", press=True)
    assert "On which date" in await _step(user, "Suspension of certificate GGBZ-SA-2025-007")
    assert "could not read" in await _step(user, "last month")
    assert "who took that decision" in await _step(user, "2026-06-01")
    await _step(user, "Zhang Wei, Wang Fang")
    await _step(user, "Please lift the suspension; the findings were closed.")
    await _step(user, "Continue", press=True)
    await _step(user, "Factory Ltd")
    await _step(user, "qa@factory.example")
    ref = find_ref(await _step(user, "Submit", press=True))
    assert ref is not None
    staff_before = len(zhang.replies)
    (ack,) = await _delivered(bot, user)
    assert "the time limit for appeals ended on 2026-09-01" in ack  # out of time, still recorded
    assert "• Appeal work group formed: by 2026-10-16 (GGBZ §8.6.2" in ack
    assert "超过申诉/争议提出期限" in zhang.replies[staff_before].text

    # The decision-maker may not take it; another staff member may.
    refused = await _step(zhang, "由我处理", press=True)
    assert "不能将案件" in refused and "被申诉决定的作出人" in refused
    assert f"案件 {ref} 已分配给 Li Na" in await _step(li, "由我处理", press=True)

    listing = await _step(li, "/cases")
    assert ref in listing and "2026年10月16日" in listing and "负责：9002" in listing
    detail = await _step(li, f"/case {ref}")
    assert "Factory Ltd / qa@factory.example" in detail  # staff see the identity
    assert "组成申诉工作组：2026年10月16日" in detail
    assert "1. 2026-09-28 10:00 complainant:telegram:503：received" in detail
    assert "关闭期限：组成申诉工作组" in await _step(li, "已组成工作组", press=True)

    assert "请发送对案件" in await _step(li, "答复投诉人", press=True)
    queued = await _step(li, "The work group met; decision by 27 November.")
    assert "答复已排队发送" in queued
    (answer,) = await _delivered(bot, user)
    assert f"Answer about case {ref}" in answer
    assert "The work group met; decision by 27 November." in answer


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
    async with desk.sessions() as s:
        opened = await cases.open_case(
            desk,
            s,
            kind="complaint",
            channel="email",
            complainant=Complainant(name="陈静", email="chen@example.cn", locale="zh_CN"),
            subject="投诉",
            description="审核员迟到。",
            source_message_id="<letter-1@example.cn>",
        )
        await s.commit()
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
