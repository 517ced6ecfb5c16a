"""A staff chat that cannot be reached: its alerts are kept, copied to ESCALATION_EMAILS, shown,
and sent when it is back; a group that became a supergroup is followed to its new id."""

from __future__ import annotations

import email
import email.policy
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from bot.clock import FrozenClock
from bot.config import Settings, load_settings
from bot.delivery.smtp import SmtpSender
from bot.delivery.telegram import TelegramSender, telegram_sender
from bot.emulator import Emulator
from bot.outbox.admin import problems
from bot.outbox.messages import TelegramText, enqueue
from bot.outbox.to_staff import COALESCE_WINDOW, fan_out
from bot.outbox.worker import Outbox, status_counts
from storage.db import session_factory
from storage.models import ChatMigration, OutboxMessage
from tests.fixtures.mail import SmtpSink

T0 = datetime(2026, 9, 28, 2, 0, tzinfo=UTC)
STAFF = -100777
SUPERGROUP = -1009990001
BOSS = "boss@example.cn"


@pytest.fixture
async def sender(emulator: Emulator) -> AsyncIterator[TelegramSender]:
    s = telegram_sender("123:TEST", base_url=emulator.base_url, per_second=50, group_interval=0)
    await s.bot.initialize()
    try:
        yield s
    finally:
        await s.bot.shutdown()


def _settings(database_url: str, data_dir: Path, smtp: SmtpSink) -> Settings:
    return load_settings(
        data_dir=data_dir,
        database_url=database_url,
        staff_chat_id=STAFF,
        escalation_emails=[BOSS],
        smtp_host=smtp.host,
        smtp_port=smtp.port,
        smtp_security="none",
        mail_domain="desk.example.test",
    )


def _outbox(
    engine: AsyncEngine, settings: Settings, sender: TelegramSender, clock: FrozenClock
) -> Outbox:
    smtp = SmtpSender.from_settings(settings, clock)
    assert smtp is not None
    senders = {"telegram": sender, "email": smtp}
    return Outbox(session_factory(engine), senders, clock, settings=settings)  # type: ignore[dict-item]


async def _alert(engine: AsyncEngine, settings: Settings, now: datetime, i: int) -> None:
    async with session_factory(engine)() as s, s.begin():
        await fan_out(s, settings, now, key=f"alert-{i}", text=f"<b>新投诉 TS-{i}</b>\n请处理")


async def test_staff_chat_unreachable_alerts_are_kept_copied_by_mail_and_sent_when_back(
    engine: AsyncEngine,
    database_url: str,
    data_dir: Path,
    emulator: Emulator,
    sender: TelegramSender,
    smtp_server: SmtpSink,
) -> None:
    clock = FrozenClock(T0)
    settings = _settings(database_url, data_dir, smtp_server)
    emulator.user(9, "Staff", chat_type="group", chat_id=STAFF)
    emulator.block(STAFF)  # the bot was removed from the group: 403 on every send
    for i in range(50):
        await _alert(engine, settings, clock.now(), i)
    outbox = _outbox(engine, settings, sender, clock)
    stats = await outbox.drain()
    assert stats.failed == 0  # none dropped
    counts = await status_counts(outbox.sessions)
    assert counts["retrying"] == 50 and counts["failed"] == 0
    shown = await problems(outbox.sessions)
    assert all("Forbidden" in (p.error or "") for p in shown if p.channel == "telegram")
    # By e-mail to ESCALATION_EMAILS: the first alert itself, and that the staff chat failed;
    # the other 49 are counted into one letter sent when the window closes.
    first, notice = sorted(
        (await smtp_server.wait_for(2)),
        key=lambda m: b"TS-0" not in m.content,
    )
    assert first.rcpt_tos == [BOSS] and notice.rcpt_tos == [BOSS]
    assert "TS-0" in _text(first) and str(STAFF) in _text(notice)
    async with outbox.sessions() as s:
        query = select(OutboxMessage).where(col(OutboxMessage.coalesced) > 0)
        (summary,) = (await s.exec(query)).all()
    assert summary.coalesced == 49 and summary.recipient == BOSS
    clock.advance(seconds=COALESCE_WINDOW.total_seconds())
    await outbox.drain()
    assert "49" in _text((await smtp_server.wait_for(3))[2])

    # Back in the group: the kept alerts go out, each once — 50 at once are more than the group's
    # 20 a minute, so as the lines of a digest.
    emulator.block(STAFF, blocked=False)
    clock.advance(hours=1)
    await outbox.drain()
    texts = "\n".join(r.text for r in emulator.delivered(STAFF))
    assert len(emulator.delivered(STAFF)) <= 20
    assert all(texts.count(f"新投诉 TS-{i} · 请处理\n") == 1 for i in range(49))
    assert texts.count("新投诉 TS-49 · 请处理") == 1
    assert (await status_counts(outbox.sessions))["retrying"] == 0


async def test_a_failed_complainant_message_reaches_the_fallback_too(
    engine: AsyncEngine,
    database_url: str,
    data_dir: Path,
    emulator: Emulator,
    sender: TelegramSender,
    smtp_server: SmtpSink,
) -> None:
    """The complainant blocked the bot and the staff chat is gone: staff still hear of it."""
    clock = FrozenClock(T0)
    settings = _settings(database_url, data_dir, smtp_server)
    emulator.user(9, "Staff", chat_type="group", chat_id=STAFF)
    emulator.block(STAFF)
    user = emulator.user(501)
    emulator.block(user.chat_id)
    async with session_factory(engine)() as s, s.begin():
        await enqueue(s, TelegramText(str(user.chat_id), "您的投诉已受理"), key="ack", now=T0)
    outbox = _outbox(engine, settings, sender, clock)
    stats = await outbox.drain()
    assert stats.failed == 1
    mails = await smtp_server.wait_for(2)
    assert any(str(user.chat_id) in _text(m) and "blocked" in _text(m) for m in mails)


async def test_a_migrated_staff_group_is_followed_and_remembered(
    engine: AsyncEngine,
    database_url: str,
    data_dir: Path,
    emulator: Emulator,
    sender: TelegramSender,
    smtp_server: SmtpSink,
) -> None:
    clock = FrozenClock(T0)
    settings = _settings(database_url, data_dir, smtp_server)
    emulator.user(9, "Staff", chat_type="group", chat_id=STAFF)
    emulator.migrate(STAFF, SUPERGROUP)
    await _alert(engine, settings, clock.now(), 1)
    await _alert(engine, settings, clock.now(), 2)
    stats = await _outbox(engine, settings, sender, clock).drain()
    assert stats.failed == 0
    assert [r.text for r in emulator.delivered(SUPERGROUP)] == [
        "新投诉 TS-1\n请处理",
        "新投诉 TS-2\n请处理",
    ]
    async with session_factory(engine)() as s:
        (moved,) = (await s.exec(select(ChatMigration))).all()
    assert (moved.old_chat_id, moved.new_chat_id) == (str(STAFF), str(SUPERGROUP))
    # Another process, later: straight to the new id, the old one is not tried again.
    tries = len(emulator.calls("sendMessage"))
    await _alert(engine, settings, clock.now(), 3)
    await _outbox(engine, settings, sender, clock).drain()
    assert len(emulator.calls("sendMessage")) == tries + 1
    assert emulator.delivered(SUPERGROUP)[-1].text == "新投诉 TS-3\n请处理"
    assert smtp_server.received == []  # nothing failed, no fallback


def _text(mail: object) -> str:
    parsed = email.message_from_bytes(mail.content, policy=email.policy.default)  # type: ignore[attr-defined]
    body = parsed.get_body(("plain",))
    assert body is not None
    return f"{parsed['Subject']}\n{body.get_content()}"
