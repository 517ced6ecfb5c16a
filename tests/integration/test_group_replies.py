"""Replies straight into a group (a staff command answered in the staff group) count in its
20 a minute with the outbox's alerts: they take the group's turn in the limiter (shared by the
instances on PostgreSQL) and are recorded as sent rows, which the outbox's pacer counts.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from telegram.ext import ExtBot

from bot.clock import FrozenClock
from bot.config import load_settings
from bot.delivery.messages import TelegramText
from bot.delivery.telegram import TelegramSender, telegram_sender
from bot.delivery.telegram_limits import SharedRateLimiter
from bot.delivery.telegram_pace import RateLimiter
from bot.emulator import Emulator
from bot.outbox.group_replies import group_reply_recorder
from bot.outbox.to_staff import fan_out
from bot.outbox.worker import Outbox
from storage.db import session_factory
from storage.models import OutboxMessage
from tests.fixtures.telegram_instances import start_instance

T0 = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
STAFF = -100555
TOKEN = "123:TEST"
GAP = 0.25  # a group's turn here (4 s in production): short enough to wait for
BURST = 2  # turns a reply may take ahead here
POSTGRES = pytest.mark.parametrize(
    "backend", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


@pytest.fixture
def staff_group(emulator: Emulator) -> int:
    return emulator.user(1, "Staff", chat_type="group", chat_id=STAFF).chat_id


@POSTGRES
async def test_two_instances_take_turns_in_a_group_outbox_and_replies_alike(
    database_url: str, emulator: Emulator, staff_group: int
) -> None:
    async with AsyncExitStack() as stack:
        senders: list[TelegramSender] = []
        replies: list[ExtBot[None]] = []
        for _ in range(2):
            one = await start_instance(
                stack, TOKEN, emulator.base_url, database_url, group_interval=GAP
            )
            one.sender.limiter.group_burst = BURST
            senders.append(one.sender)
            replies.append(one.replies)
        # The outbox's holder sends alerts while the other instance answers staff commands.
        await asyncio.gather(
            *(senders[0].send(TelegramText(str(STAFF), f"alert {i}")) for i in range(6)),
            *(replies[1].send_message(STAFF, f"reply {i}") for i in range(6)),
        )
    arrived = sorted(c.at for c in emulator.calls("sendMessage") if c.ok)
    assert len(arrived) == 12
    # The group's turns, whichever instance sent: a second holds at most 1/GAP turns and the
    # replies' burst (each instance alone would put 10 or more in the first second).
    assert busiest(arrived, 1.0) <= int(1.0 / GAP) + BURST + 1


def busiest(stamps: list[float], span: float) -> int:
    return max(sum(1 for s in stamps[i:] if s < t + span) for i, t in enumerate(stamps))


async def test_replies_to_a_group_may_go_a_few_turns_ahead_and_no_more() -> None:
    """The cell-rate limit on one instance: a burst of replies at once, then a turn each; the
    outbox's own sends wait for their turn."""
    limiter = RateLimiter(1000, group_interval=GAP, group_burst=BURST)
    start = time.monotonic()

    async def reply() -> float:
        await limiter.acquire(str(STAFF), reply=True)
        return time.monotonic() - start

    went = sorted(await asyncio.gather(*(reply() for _ in range(6))))
    assert went[BURST] < GAP / 2  # the burst: at once
    assert went[BURST + 1] >= GAP - 0.05  # then one a turn
    assert busiest(went, 2 * GAP) <= 2 + BURST + 1
    await limiter.acquire(str(STAFF))  # the outbox's: no burst, after the replies' turns
    assert time.monotonic() - start >= (6 - BURST) * GAP - 0.05


async def test_a_reply_into_the_staff_group_counts_in_the_outbox_minute(
    engine: AsyncEngine,
    database_url: str,
    data_dir: Path,
    emulator: Emulator,
    staff_group: int,
) -> None:
    clock = FrozenClock(T0)
    emulator.state.clock = clock  # the emulator's minute is the test's
    emulator.rate_limit(per_group_per_minute=20)
    sessions = session_factory(engine)
    limiter = RateLimiter(30, group_interval=0)  # only the minute counts here
    on_group = group_reply_recorder(sessions, clock)
    bot = ExtBot(
        TOKEN, base_url=emulator.base_url, rate_limiter=SharedRateLimiter(limiter, None, on_group)
    )
    await bot.initialize()
    person = emulator.user(7).chat_id
    try:
        for i in range(20):  # staff commands answered in the group: its minute is full
            await bot.send_message(STAFF, f"reply {i}")
            clock.advance(seconds=1)
        await bot.send_message(person, "a person is not a group")  # not recorded
    finally:
        await bot.shutdown()
    async with sessions() as s:
        rows = list((await s.exec(select(OutboxMessage))).all())
    assert len(rows) == 20 and {(r.recipient, r.status) for r in rows} == {(str(STAFF), "sent")}

    settings = load_settings(data_dir=data_dir, database_url=database_url, staff_chat_id=STAFF)
    sender = telegram_sender(TOKEN, base_url=emulator.base_url, group_interval=0)
    await sender.bot.initialize()
    try:
        outbox = Outbox(sessions, {"telegram": sender}, clock, settings=settings)
        async with sessions() as s, s.begin():
            await fan_out(s, settings, clock.now(), key="a", about="a@example.cn", text="新投诉")
        assert (await outbox.drain()).sent == 0  # the replies filled the minute: it waits
        async with sessions() as s:
            alert = (await s.exec(select(OutboxMessage).where(col(OutboxMessage.id) > 20))).one()
        assert alert.status == "queued" and alert.next_attempt_at == T0 + timedelta(seconds=60)
        clock.advance(seconds=40)  # the first reply leaves the minute
        assert (await outbox.drain()).sent == 1
    finally:
        await sender.bot.shutdown()
    assert emulator.rejected == 0 and emulator.busiest_minute(STAFF) <= 20
