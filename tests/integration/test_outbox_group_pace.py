"""The staff group's 20 messages a minute: paced, and alerts merged into a digest beyond it.

A real PTB `Bot` (the outbox's Telegram sender) against the Bot API emulator, which enforces a
group's 20 a minute on the test's clock and records when each message arrived; time moves only
by the test's FrozenClock, so a simulated minute takes no waiting.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from telegram.error import RetryAfter

from bot.clock import FrozenClock
from bot.config import Settings, load_settings
from bot.delivery.telegram import TelegramSender, telegram_sender
from bot.emulator import Emulator
from bot.outbox.to_staff import fan_out
from bot.outbox.worker import Outbox, status_counts
from storage.db import make_engine, session_factory
from storage.models import OutboxMessage

T0 = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
STAFF = -100555
LIMIT = 20  # Telegram: 20 messages a minute to one group


@pytest.fixture
async def sender(emulator: Emulator) -> AsyncIterator[TelegramSender]:
    # No spacing of its own between a group's sends: only the outbox's pacing keeps the minute.
    s = telegram_sender("123:TEST", base_url=emulator.base_url, per_second=30, group_interval=0)
    await s.bot.initialize()
    try:
        yield s
    finally:
        await s.bot.shutdown()


@pytest.fixture
def clock(emulator: Emulator) -> FrozenClock:
    clock = FrozenClock(T0)
    emulator.state.clock = clock  # the emulator's minute is the test's
    emulator.rate_limit(per_group_per_minute=LIMIT)
    emulator.user(1, "Staff", chat_type="group", chat_id=STAFF)
    return clock


def _settings(database_url: str, data_dir: Path) -> Settings:
    return load_settings(data_dir=data_dir, database_url=database_url, staff_chat_id=STAFF)


async def _alert(engine: AsyncEngine, settings: Settings, now: datetime, i: int) -> None:
    """An alert about case TS-i from sender i: no two about the same sender (no coalescing)."""
    async with session_factory(engine)() as s, s.begin():
        await fan_out(
            s, settings, now, key=f"alert-{i}", about=f"sender{i}@example.cn",
            text=f"<b>新投诉 TS-{i}</b>\n来自 sender{i}@example.cn，请处理",
        )  # fmt: skip


def _seen(emulator: Emulator, i: int) -> int:
    """How many times alert i's text reached the group, alone or as a digest's line."""
    pattern = re.compile(rf"新投诉 TS-{i}\b")
    return sum(len(pattern.findall(r.text)) for r in emulator.delivered(STAFF))


async def _rows(engine: AsyncEngine) -> list[OutboxMessage]:
    async with session_factory(engine)() as s:
        return list((await s.exec(select(OutboxMessage).order_by(col(OutboxMessage.id)))).all())


async def test_200_alerts_about_200_cases_in_a_minute_stay_within_20_a_minute(
    engine: AsyncEngine,
    database_url: str,
    data_dir: Path,
    emulator: Emulator,
    sender: TelegramSender,
    clock: FrozenClock,
) -> None:
    settings = _settings(database_url, data_dir)
    outbox = Outbox(session_factory(engine), {"telegram": sender}, clock, settings=settings)
    # 200 alerts over 60 s, the worker draining every 1.5 s as the scheduler would.
    for i in range(200):
        await _alert(engine, settings, clock.now(), i)
        clock.advance(seconds=0.3)
        if i % 5 == 4:
            await outbox.drain()
    for _ in range(200):  # then on, every 3 s, until nothing waits
        counts = await status_counts(outbox.sessions)
        if counts["queued"] == counts["sending"] == counts["retrying"] == 0:
            break
        clock.advance(seconds=3)
        await outbox.drain()

    assert emulator.rejected == 0 and emulator.group_rejected == 0
    assert emulator.busiest_minute(STAFF) <= LIMIT
    # Every alert's text reached the group once; each row is sent, alone or in a digest.
    assert [i for i in range(200) if _seen(emulator, i) != 1] == []
    rows = await _rows(engine)
    assert len(rows) == 200 and {r.status for r in rows} == {"sent"}
    delivered = {str(r.message_id): r for r in emulator.delivered(STAFF)}
    digested = [r for r in rows if r.sent_in is not None]
    assert len(digested) > 100 and len(delivered) < 60  # merged, not 200 messages
    for row in digested:  # each points at the group message it went in, which holds its line
        number = re.search(r"TS-(\d+)", row.payload["text"])
        assert number is not None and f"TS-{number[1]}" in delivered[row.sent_in or ""].text
    assert (await status_counts(outbox.sessions))["digested"] == len(digested)
    # The first alerts went as themselves (with the console link, buttons kept), at once.
    first = emulator.delivered(STAFF)[0]
    assert first.text.startswith("新投诉 TS-0") and rows[0].sent_in is None
    digests = [r for r in emulator.delivered(STAFF) if "合并为一条" in r.text]
    assert digests and all(len(r.text) <= 4096 for r in digests)


async def test_the_minute_is_counted_from_the_outbox_across_instances(
    engine: AsyncEngine,
    database_url: str,
    data_dir: Path,
    emulator: Emulator,
    sender: TelegramSender,
    clock: FrozenClock,
) -> None:
    """A new sending instance (another engine, worker and limiter) knows what the last one sent
    in the minute: what it reads is the outbox, not its own memory."""
    settings = _settings(database_url, data_dir)
    first = Outbox(session_factory(engine), {"telegram": sender}, clock, settings=settings)
    for i in range(15):
        await _alert(engine, settings, clock.now(), i)
    assert (await first.drain()).sent == 15  # alone: the room allowed them
    await first.close()  # on PostgreSQL: lets the other take the sender lock
    clock.advance(seconds=20)
    other = make_engine(database_url)
    try:
        second = Outbox(
            session_factory(other), {"telegram": sender}, clock, settings=settings,
            sender_lock_retry=0,
        )  # fmt: skip
        for i in range(15, 30):
            await _alert(other, settings, clock.now(), i)
        stats = await second.drain()
        # 5 slots left in the minute, 15 waiting: one digest of all 15.
        assert stats.sent == 15 and stats.digested == 15
        assert len(emulator.delivered(STAFF)) == 16
        for i in range(30, 40):  # the room is 4 now: all ten in one more digest
            await _alert(other, settings, clock.now(), i)
        assert (await second.drain()).digested == 10
    finally:
        await other.dispose()
    assert emulator.busiest_minute(STAFF) <= LIMIT and emulator.rejected == 0
    assert all(_seen(emulator, i) == 1 for i in range(40))


async def test_no_room_left_waits_for_the_next_slot(
    engine: AsyncEngine,
    database_url: str,
    data_dir: Path,
    emulator: Emulator,
    sender: TelegramSender,
    clock: FrozenClock,
) -> None:
    settings = _settings(database_url, data_dir)
    outbox = Outbox(session_factory(engine), {"telegram": sender}, clock, settings=settings)
    for i in range(20):
        await _alert(engine, settings, clock.now(), i)
    assert (await outbox.drain()).sent == 20  # exactly the room: each as it is
    clock.advance(seconds=10)
    await _alert(engine, settings, clock.now(), 20)
    assert (await outbox.drain()).sent == 0  # the minute is full: it waits, unclaimed
    async with session_factory(engine)() as s:
        key = OutboxMessage.idempotency_key == "alert-20"
        row = (await s.exec(select(OutboxMessage).where(key))).one()
    assert row.status == "queued" and row.attempts == 0
    assert row.next_attempt_at == T0 + timedelta(seconds=60)  # when the first 20 leave
    clock.advance(seconds=49)
    assert (await outbox.drain()).sent == 0
    clock.advance(seconds=1)
    assert (await outbox.drain()).sent == 1
    assert emulator.busiest_minute(STAFF) <= LIMIT and emulator.rejected == 0


async def test_the_emulator_refuses_a_21st_message_a_minute_to_a_group(
    emulator: Emulator, sender: TelegramSender, clock: FrozenClock
) -> None:
    """What makes the tests above able to fail: unpaced, the 21st in a minute is refused (429)."""
    bot = sender.bot  # the PTB Bot itself, no limiter in between
    private = emulator.user(7).chat_id
    for i in range(LIMIT):
        await bot.send_message(STAFF, f"m{i}")
        clock.advance(seconds=2)
    with pytest.raises(RetryAfter) as refused:
        await bot.send_message(STAFF, "one too many")
    assert refused.value.retry_after == timedelta(seconds=20)
    assert emulator.group_rejected == 1 and emulator.busiest_minute(STAFF) == LIMIT
    await bot.send_message(private, "a person is not a group")
    clock.advance(seconds=20)  # the first left the minute
    await bot.send_message(STAFF, "room again")
    assert emulator.busiest_minute(STAFF) == LIMIT
    assert len(emulator.delivered(STAFF)) == LIMIT + 1
