"""Staff alerts where the staff are: one notice fanned out to the staff chat, the WeCom, DingTalk
and Feishu robots (the local emulator of their webhooks) and e-mail (an aiosmtpd sink), each on
its own outbox row, so one failing channel holds up none of the others."""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from bot.clock import FrozenClock
from bot.config import load_settings
from bot.desk import Desk, load_calendar
from bot.main.cli import main
from bot.main.runner import _senders
from bot.outbox.admin import problems
from bot.outbox.messages import Letter, enqueue
from bot.outbox.staff_notice import plain_text, title_and_body
from bot.outbox.worker import MAX_ATTEMPTS, Outbox, status_counts
from bot.profiles import load_profile
from bot.services import cases
from bot.services.cases import Complainant
from storage.db import session_factory
from storage.models import OutboxMessage
from tests.fixtures.mail import SmtpSink
from tests.fixtures.robots import ROBOTS, RobotEmulator

# 2026-09-28 10:00 in Shanghai, a Monday.
T0 = datetime(2026, 9, 28, 2, 0, tzinfo=UTC)
STAFF_MAIL = "desk-staff@example.cn"
CONSOLE = "https://console.example.cn/"
STAFF_CHAT = -1001

DeskFactory = Callable[..., Desk]


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(T0)


@pytest.fixture
async def emulator(clock: FrozenClock) -> AsyncIterator[RobotEmulator]:
    """The robots, checking signatures' timestamps against the desk's (test) clock."""
    async with RobotEmulator(now=lambda: clock.now().timestamp()) as emu:
        yield emu


@pytest.fixture
def make_desk(
    engine: AsyncEngine,
    database_url: str,
    data_dir: Path,
    clock: FrozenClock,
    emulator: RobotEmulator,
    smtp_server: SmtpSink,
) -> DeskFactory:
    def build(**overrides: Any) -> Desk:
        fields: dict[str, Any] = {
            "data_dir": data_dir,
            "database_url": database_url,
            "mail_domain": "desk.example.test",
            "smtp_host": smtp_server.host,
            "smtp_port": smtp_server.port,
            "smtp_security": "none",
            "wecom_webhook_url": emulator.wecom_url,
            "dingtalk_webhook_url": emulator.dingtalk_url,
            "dingtalk_secret": emulator.dingtalk_secret,
            "feishu_webhook_url": emulator.feishu_url,
            "feishu_secret": emulator.feishu_secret,
            "staff_alert_emails": [STAFF_MAIL],
            "console_base_url": CONSOLE,
        }
        settings = load_settings(**(fields | overrides))
        return Desk(
            settings=settings,
            profile=load_profile("ggbz"),
            calendar=load_calendar(settings),
            engine=engine,
            sessions=session_factory(engine),
            clock=clock,
        )

    return build


def _outbox(desk: Desk) -> Outbox:
    # The runner's own senders (Telegram left out: no staff chat in these desks).
    senders = _senders(desk, None)
    return Outbox(desk.sessions, senders, desk.clock, settings=desk.settings)  # type: ignore[arg-type]


async def _complaint(desk: Desk) -> str:
    """A new Telegram complaint (no e-mail acknowledgement): only the staff alert is e-mailed."""
    async with desk.sessions() as s:
        opened = await cases.open_case(
            desk,
            s,
            kind="complaint",
            channel="telegram",
            subject="投诉审核员态度",
            complainant=Complainant(
                name="李雷", telegram_user_id=4242, telegram_chat_id=4242, locale="zh_CN"
            ),
            description="审核员在现场审核时态度恶劣。",
        )
        await s.commit()
    return opened.ref


async def _staff_rows(desk: Desk, ref: str) -> dict[str, OutboxMessage]:
    async with desk.sessions() as s:
        query = select(OutboxMessage).where(col(OutboxMessage.idempotency_key).contains(ref))
        rows = (await s.exec(query.where(col(OutboxMessage.recipient) != "4242"))).all()
    return {row.channel: row for row in rows}


async def _close(outbox: Outbox) -> None:
    for sender in outbox.senders.values():
        if (close := getattr(sender, "close", None)) is not None:
            await close()


async def test_a_new_complaint_alerts_every_robot_and_email_at_once(
    make_desk: DeskFactory, emulator: RobotEmulator, smtp_server: SmtpSink
) -> None:
    desk = make_desk()
    ref = await _complaint(desk)
    rows = await _staff_rows(desk, ref)
    assert set(rows) == {"wecom", "dingtalk", "feishu", "email"}
    assert rows["wecom"].idempotency_key == f"case:{ref}:staff:new:wecom"
    assert rows["email"].idempotency_key == f"case:{ref}:staff:new:email:{STAFF_MAIL}"
    robot = rows["feishu"].payload
    assert set(robot) == {"title", "text", "link", "act_hint"}
    assert ref in robot["title"] and "<b>" not in robot["title"]
    # The link is the case's page in the console (issue 11 §9), not only its home page.
    assert robot["link"] == f"{CONSOLE}cases/{ref}"
    assert robot["act_hint"] == "请在控制台或 Telegram 员工群处理"

    outbox = _outbox(desk)
    try:
        stats = await outbox.drain_once()
    finally:
        await _close(outbox)
    assert stats.failed == 0 and stats.retried == 0
    for name in ROBOTS:
        [got] = emulator.received[name]
        assert ref in got.raw.decode()
    assert (
        "请在控制台或 Telegram 员工群处理"
        in emulator.received["wecom"][0].body["markdown"]["content"]
    )
    [mail] = await smtp_server.wait_for(1)
    assert mail.rcpt_tos == [STAFF_MAIL]
    parsed = email.message_from_bytes(mail.content, policy=email.policy.default)
    assert parsed["Subject"].startswith("员工提醒：") and ref in parsed["Subject"]
    body = parsed.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert "<b>" not in text and ref in text and CONSOLE in text
    async with desk.sessions() as s:
        sent = (await s.exec(select(OutboxMessage).where(OutboxMessage.status == "sent"))).all()
    assert {r.channel for r in sent} >= {"wecom", "dingtalk", "feishu", "email"}


async def test_with_a_staff_chat_telegram_keeps_its_key_and_buttons(
    make_desk: DeskFactory,
) -> None:
    desk = make_desk(staff_chat_id=STAFF_CHAT)
    ref = await _complaint(desk)
    async with desk.sessions() as s:
        query = select(OutboxMessage).where(
            OutboxMessage.idempotency_key == f"case:{ref}:staff:new"
        )
        telegram = (await s.exec(query)).one()
    assert telegram.channel == "telegram" and telegram.recipient == str(STAFF_CHAT)
    assert "<b>" in telegram.payload["text"]
    assert telegram.payload["reply_markup"][0][0]["callback_data"] == f"staff:assign:{ref}"
    rows = await _staff_rows(desk, ref)
    assert {"wecom", "dingtalk", "feishu", "email"} <= set(rows)
    assert all("reply_markup" not in rows[c].payload for c in ("wecom", "email"))


async def test_dingtalk_with_a_bad_secret_fails_alone_and_shows_in_outbox_status(
    make_desk: DeskFactory,
    emulator: RobotEmulator,
    smtp_server: SmtpSink,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    desk = make_desk(dingtalk_secret="SEC" + "0" * 64)
    ref = await _complaint(desk)
    outbox = _outbox(desk)
    try:
        stats = await outbox.drain_once()
    finally:
        await _close(outbox)
    assert stats.failed == 0  # a staff alert is never dropped: kept, retried
    rows = await _staff_rows(desk, ref)
    assert rows["dingtalk"].status == "queued" and rows["dingtalk"].attempts == MAX_ATTEMPTS
    assert "310000" in (rows["dingtalk"].last_error or "")
    assert all(rows[c].status == "sent" for c in ("wecom", "feishu", "email"))
    assert emulator.received["dingtalk"] == [] and emulator.refused["dingtalk"] == [310000]
    await smtp_server.wait_for(1)

    # Visible to whoever looks at the outbox, with channel and error; then queued again.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", database_url)
    assert await asyncio.to_thread(main, ["outbox", "status"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith(f"#{rows['dingtalk'].id} "))
    assert "retrying dingtalk" in line and "310000" in line
    assert await asyncio.to_thread(main, ["outbox", "retry", str(rows["dingtalk"].id)]) == 0
    again = (await _staff_rows(desk, ref))["dingtalk"]
    assert again.status == "queued" and again.attempts == 0  # due now, a fresh start
    assert await asyncio.to_thread(main, ["outbox", "retry", "--failed"]) == 0
    assert "0 failed messages" in capsys.readouterr().out.splitlines()[-1]


async def test_wecom_rate_limited_is_retried_later_while_the_others_are_sent(
    make_desk: DeskFactory, emulator: RobotEmulator, clock: FrozenClock
) -> None:
    desk = make_desk()
    ref = await _complaint(desk)
    emulator.fail_next("wecom", 45009)
    outbox = _outbox(desk)
    try:
        stats = await outbox.drain_once()
    finally:
        await _close(outbox)
    assert stats.retried == 1 and stats.failed == 0
    rows = await _staff_rows(desk, ref)
    wecom = rows["wecom"]
    assert wecom.status == "queued" and wecom.attempts == 1
    assert wecom.next_attempt_at > clock.now()
    assert all(rows[c].status == "sent" for c in ("dingtalk", "feishu", "email"))


async def test_all_robots_down_wait_queued_and_go_out_once_back(
    make_desk: DeskFactory, emulator: RobotEmulator, clock: FrozenClock
) -> None:
    desk = make_desk()
    ref = await _complaint(desk)
    await emulator.down()
    outbox = _outbox(desk)
    try:
        stats = await outbox.drain_once()
        rows = await _staff_rows(desk, ref)
        assert stats.retried == 3 and rows["email"].status == "sent"
        for name in ROBOTS:
            assert rows[name].status == "queued" and rows[name].attempts == 1
            assert rows[name].next_attempt_at > clock.now()
        assert (await status_counts(desk.sessions))["retrying"] == 3
        shown = await problems(desk.sessions)
        assert {p.channel for p in shown if p.status == "retrying"} == set(ROBOTS)
        assert all(p.error for p in shown)

        await emulator.up()
        assert (await outbox.drain_once()).handled == 0  # not due yet
        clock.advance(hours=1)
        assert (await outbox.drain_once()).sent == 3
    finally:
        await _close(outbox)
    rows = await _staff_rows(desk, ref)
    assert all(rows[name].status == "sent" for name in ROBOTS)
    assert all(len(emulator.received[name]) == 1 for name in ROBOTS)


async def test_without_any_staff_channel_one_staff_row_stays_queued(
    make_desk: DeskFactory,
) -> None:
    desk = make_desk(
        wecom_webhook_url=None,
        dingtalk_webhook_url=None,
        feishu_webhook_url=None,
        staff_alert_emails=[],
    )
    ref = await _complaint(desk)
    async with desk.sessions() as s:
        query = select(OutboxMessage).where(col(OutboxMessage.idempotency_key).contains(ref))
        rows = [r for r in (await s.exec(query)).all() if r.recipient != "4242"]
    assert [(r.channel, r.recipient, r.idempotency_key) for r in rows] == [
        ("staff", "staff", f"case:{ref}:staff:new")
    ]


def test_plain_text_of_telegram_html() -> None:
    html_text = '🆕 新投诉 <b>TS-1</b>\n<a href="x">A &amp; B</a> &lt;ok&gt;\n\n第三行'
    assert plain_text(html_text) == "🆕 新投诉 TS-1\nA & B <ok>\n\n第三行"
    assert title_and_body(html_text) == ("🆕 新投诉 TS-1", "A & B <ok>\n\n第三行")


# --- certdesk staff-alert test ---------------------------------------------------------------


def _robot_env(monkeypatch: pytest.MonkeyPatch, robots: RobotEmulator) -> None:
    monkeypatch.setenv("WECOM_WEBHOOK_URL", robots.wecom_url)
    monkeypatch.setenv("DINGTALK_WEBHOOK_URL", robots.dingtalk_url)
    monkeypatch.setenv("DINGTALK_SECRET", robots.dingtalk_secret or "")
    monkeypatch.setenv("FEISHU_WEBHOOK_URL", robots.feishu_url)
    monkeypatch.setenv("FEISHU_SECRET", robots.feishu_secret or "")


async def test_staff_alert_test_reports_each_channel(
    robots: RobotEmulator,
    smtp_server: SmtpSink,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    assert await asyncio.to_thread(main, ["staff-alert", "test"]) == 2
    assert "WECOM_WEBHOOK_URL" in capsys.readouterr().out

    _robot_env(monkeypatch, robots)
    monkeypatch.setenv("STAFF_ALERT_EMAILS", f'["{STAFF_MAIL}"]')
    monkeypatch.setenv("SMTP_HOST", smtp_server.host)
    monkeypatch.setenv("SMTP_PORT", str(smtp_server.port))
    monkeypatch.setenv("SMTP_SECURITY", "none")
    assert await asyncio.to_thread(main, ["staff-alert", "test"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "wecom: ok",
        "dingtalk: ok",
        "feishu: ok",
        f"email {STAFF_MAIL}: ok",
    ]
    assert all(len(robots.received[name]) == 1 for name in ROBOTS)
    assert "测试提醒" in robots.received["feishu"][0].raw.decode()
    await smtp_server.wait_for(1)

    robots.fail_next("wecom", 93000)
    monkeypatch.setenv("STAFF_CHAT_ID", str(STAFF_CHAT))  # no bot token: said, not crashed
    assert await asyncio.to_thread(main, ["staff-alert", "test"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"telegram {STAFF_CHAT}: TELEGRAM_BOT_TOKEN is not set"
    assert lines[1].startswith("wecom: ") and "93000" in lines[1]
    assert robots.wecom_key not in lines[1]  # the key in the URL stays secret
    assert lines[2:] == ["dingtalk: ok", "feishu: ok", f"email {STAFF_MAIL}: ok"]


def test_robot_settings_are_secret(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(
        wecom_webhook_url="https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=very-secret-key",
        dingtalk_secret="SECsecretsecret",
        feishu_secret="feishu-secret",
    )
    for value in ("very-secret-key", "SECsecretsecret", "feishu-secret"):
        assert value not in repr(settings)
    assert settings.console_base_url is None and settings.staff_alert_emails == []


async def test_a_message_failed_for_good_is_reported_on_every_staff_channel(
    make_desk: DeskFactory, emulator: RobotEmulator, smtp_server: SmtpSink
) -> None:
    """Not only the Telegram staff chat (there is none here): each robot and the staff mailbox."""
    desk = make_desk()
    async with desk.sessions() as s, s.begin():
        letter = Letter(to="gone@example.cn", subject="[TS-1] 回执", text="已收到")
        await enqueue(s, letter, key="ack:gone", now=desk.clock.now())
    smtp_server.fail_with(550, at="rcpt", text="no such user")
    outbox = _outbox(desk)
    try:
        stats = await outbox.drain()
    finally:
        await _close(outbox)
    assert stats.failed == 1
    for name in ROBOTS:
        [got] = emulator.received[name]
        assert "gone" in got.raw.decode() and "550" in got.raw.decode()  # (@ shown full-width)
    [mail] = await smtp_server.wait_for(1)
    parsed = email.message_from_bytes(mail.content, policy=email.policy.default)
    body = parsed.get_body(("plain",))
    assert body is not None and "gone@example.cn" in body.get_content()
    assert mail.rcpt_tos == [STAFF_MAIL]
