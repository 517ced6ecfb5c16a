"""The outbox's Telegram sender against the Bot API emulator: formatting, faults, rate limits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.clock import FrozenClock
from bot.delivery.telegram import TelegramSender, telegram_sender
from bot.emulator import Emulator
from bot.outbox.worker import Outbox, status_counts
from storage.db import session_factory
from storage.repo.outbox import enqueue

T0 = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
STAFF = -100777


@pytest.fixture
async def sender(emulator: Emulator) -> AsyncIterator[TelegramSender]:
    s = telegram_sender("123:TEST", base_url=emulator.base_url, per_second=50)
    await s.bot.initialize()
    try:
        yield s
    finally:
        await s.bot.shutdown()


async def queue(engine: AsyncEngine, chat: int, key: str, **payload: object) -> None:
    async with session_factory(engine)() as session, session.begin():
        await enqueue(
            session,
            channel="telegram",
            recipient=str(chat),
            payload={"text": key, **payload},
            idempotency_key=key,
            now=T0,
        )


def outbox_for(engine: AsyncEngine, sender: TelegramSender, clock: FrozenClock) -> Outbox:
    return Outbox(session_factory(engine), {"telegram": sender}, clock, staff_chat_id=STAFF)


async def test_html_text_and_inline_keyboard_arrive(
    engine: AsyncEngine, emulator: Emulator, sender: TelegramSender
) -> None:
    user = emulator.user(501)
    buttons = [[{"text": "查看", "callback_data": "v:1"}]]
    await queue(engine, user.chat_id, "<b>证书</b> 提醒", reply_markup=buttons)
    await queue(engine, user.chat_id, "a < b & c", parse_mode=None)
    await outbox_for(engine, sender, FrozenClock(T0)).drain()
    first, second = emulator.delivered(user.chat_id)
    assert first.text == "证书 提醒" and first.buttons == ["查看"]
    assert second.text == "a < b & c"


async def test_429_is_retried_after_retry_after_and_sent_once(
    engine: AsyncEngine, emulator: Emulator, sender: TelegramSender
) -> None:
    user, clock = emulator.user(502), FrozenClock(T0)
    outbox = outbox_for(engine, sender, clock)
    emulator.fail_next("sendMessage", status=429, retry_after=0.2)
    await queue(engine, user.chat_id, "hello")
    assert (await outbox.drain()).retried == 1
    assert (await status_counts(outbox.sessions))["retrying"] == 1
    clock.advance(seconds=0.1)
    assert (await outbox.drain()).handled == 0  # not before Telegram's retry_after
    clock.advance(seconds=0.2)
    assert (await outbox.drain()).sent == 1
    assert [r.text for r in emulator.delivered(user.chat_id)] == ["hello"]


async def test_5xx_and_network_errors_are_retried(
    engine: AsyncEngine, emulator: Emulator, sender: TelegramSender
) -> None:
    user, clock = emulator.user(503), FrozenClock(T0)
    outbox = outbox_for(engine, sender, clock)
    emulator.fail_next("sendMessage", n=2, status=502)
    await queue(engine, user.chat_id, "after a bad gateway")
    for _ in range(3):
        await outbox.drain()
        clock.advance(hours=1)  # beyond any backoff
    assert [r.text for r in emulator.delivered(user.chat_id)] == ["after a bad gateway"]
    counts = await status_counts(outbox.sessions)
    assert counts["sent"] == 1 and counts["failed"] == 0


async def test_blocked_chat_fails_permanently_and_staff_hear_of_it(
    engine: AsyncEngine, emulator: Emulator, sender: TelegramSender
) -> None:
    user = emulator.user(504)
    emulator.user(9, "Staff", chat_type="group", chat_id=STAFF)
    emulator.block(user.chat_id)
    sender.limiter.group_interval = 0
    await queue(engine, user.chat_id, "you blocked me")
    await queue(engine, 999_999, "chat not found")
    stats = await outbox_for(engine, sender, FrozenClock(T0)).drain()
    assert stats.failed == 2
    staff = [r.text for r in emulator.delivered(STAFF)]
    assert len(staff) == 2 and any("blocked" in t for t in staff)
    assert any("chat not found" in t.lower() for t in staff)


async def test_rate_limits_are_respected(
    engine: AsyncEngine, emulator: Emulator, sender: TelegramSender
) -> None:
    # Telegram's limits, scaled: 50/s overall (the sender's cap) and 1/s per chat.
    emulator.rate_limit(per_second=50, per_chat_per_second=1)
    users = [emulator.user(600 + i) for i in range(60)]
    for u in users:
        await queue(engine, u.chat_id, f"to {u.id}")
    for i in range(3):
        await queue(engine, users[0].chat_id, f"again {i}")
    stats = await outbox_for(engine, sender, FrozenClock(T0)).drain()
    assert stats.sent == 63 and emulator.rejected == 0
    assert sum(len(emulator.delivered(u.chat_id)) for u in users) == 63
    stamps = sorted(c.at for c in emulator.calls("sendMessage") if c.ok)
    # No one-second window holds more than the cap.
    assert max(sum(1 for s in stamps[i:] if s < t + 1) for i, t in enumerate(stamps)) <= 50
    same_chat = [r for r in emulator.delivered(users[0].chat_id)]
    assert len(same_chat) == 4


async def test_unreachable_api_is_retried_not_failed(engine: AsyncEngine) -> None:
    from tests.fixtures.mail import free_port

    down = telegram_sender("123:TEST", base_url=f"http://127.0.0.1:{free_port()}/bot")
    await down.bot.request.initialize()  # no getMe: nothing answers
    try:
        await queue(engine, 505, "while Telegram is unreachable")
        stats = await outbox_for(engine, down, FrozenClock(T0)).drain()
    finally:
        await down.bot.request.shutdown()
    assert stats.retried == 1 and stats.failed == 0
    assert "NetworkError" in stats.errors[0]
    assert (await status_counts(session_factory(engine)))["retrying"] == 1


async def test_a_staff_text_over_4096_characters_goes_in_parts_nothing_cut(
    engine: AsyncEngine, emulator: Emulator, sender: TelegramSender
) -> None:
    """A letter from a 5,000-character display name, and a long enquiry, reach staff whole."""
    emulator.user(9, "Staff", chat_type="group", chat_id=STAFF)
    sender.limiter.group_interval = 0
    name = "王" * 2500 + " " + "Zhang " * 420  # one line of 5,021 characters
    lines = [f"<b>来信 #{i}</b> 内容 &lt;第 {i} 行&gt; " + "正文" * 40 for i in range(60)]
    text = f"📨 新来信\n发件人：{name}\n" + "\n".join(lines)
    buttons = [[{"text": "处理", "callback_data": "sd:a:1"}]]
    await queue(engine, STAFF, text, reply_markup=buttons)
    stats = await outbox_for(engine, sender, FrozenClock(T0)).drain()
    assert stats.sent == 1 and stats.failed == 0
    parts = emulator.delivered(STAFF)
    assert len(parts) >= 3 and all(len(p.text.encode("utf-16-le")) // 2 <= 4096 for p in parts)
    assert [p.text.rsplit("\n", 1)[-1] for p in parts] == [
        f"({i}/{len(parts)})" for i in range(1, len(parts) + 1)
    ]
    whole = "".join(p.text.rsplit("\n", 1)[0] for p in parts)
    assert whole.count("王") == 2500 and whole.count("Zhang") == 420  # the name, whole
    assert all(f"<第 {i} 行>" in whole for i in range(60))  # every line, unescaped once
    assert parts[-1].buttons == ["处理"] and all(not p.buttons for p in parts[:-1])
