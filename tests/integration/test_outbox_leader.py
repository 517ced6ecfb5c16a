"""One Telegram rate limit across instances: the instance holding the advisory lock sends.

Two outbox workers on one PostgreSQL database, each with its own engine and its own sender (so its
own 30-a-second limiter), as two instances would be; the Bot API emulator enforces Telegram's cap
and records when each send arrived.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime

import asyncpg
import pytest

from bot.clock import FrozenClock
from bot.delivery.telegram import telegram_sender
from bot.emulator import Emulator
from bot.outbox.worker import Outbox
from storage.db import make_engine, session_factory
from storage.repo.outbox import TELEGRAM_SENDER_LOCK, enqueue

T0 = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
CAP = 30  # Telegram: about 30 messages a second per bot token
GROUP = -100555
POSTGRES = pytest.mark.parametrize(
    "backend", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


async def queue(outbox: Outbox, chats: list[int], tag: str) -> None:
    async with outbox.sessions() as session, session.begin():
        for chat in chats:
            key = f"{tag}:{chat}"
            payload = {"text": key}
            await enqueue(
                session, channel="telegram", recipient=str(chat), payload=payload,
                idempotency_key=key, now=T0,
            )  # fmt: skip


@pytest.fixture
async def instances(database_url: str, emulator: Emulator) -> AsyncIterator[list[Outbox]]:
    """Two instances: each its own engine, sender and limiter, at Telegram's real limits."""
    async with AsyncExitStack() as stack:
        out = []
        for name in ("a", "b"):
            engine = make_engine(database_url)
            stack.push_async_callback(engine.dispose)
            sender = telegram_sender("123:TEST", base_url=emulator.base_url, per_second=CAP)
            await sender.bot.initialize()
            stack.push_async_callback(sender.bot.shutdown)
            sessions = session_factory(engine)
            clock = FrozenClock(T0)
            # Retried at every claim here (5 s in production): the takeover needs no waiting.
            outbox = Outbox(
                sessions, {"telegram": sender}, clock, worker_id=name, concurrency=8,
                sender_lock_retry=0,
            )  # fmt: skip
            out.append(outbox)
        yield out


def busiest_second(emulator: Emulator) -> int:
    stamps = sorted(c.at for c in emulator.calls("sendMessage") if c.ok)
    return max((sum(1 for s in stamps[i:] if s < t + 1) for i, t in enumerate(stamps)), default=0)


def delivered(emulator: Emulator) -> Counter[str]:
    return Counter(c.params["text"] for c in emulator.calls("sendMessage") if c.ok)


async def lock_holder_pid(database_url: str) -> int:
    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        pid: int = await conn.fetchval(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND classid = $1 AND objid = $2",
            TELEGRAM_SENDER_LOCK >> 32,
            TELEGRAM_SENDER_LOCK & 0xFFFFFFFF,
        )
        return pid
    finally:
        await conn.close()


async def terminate(database_url: str, pid: int) -> None:
    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await conn.execute("SELECT pg_terminate_backend($1)", pid)
    finally:
        await conn.close()


@POSTGRES
async def test_two_instances_stay_within_one_cap_and_the_standby_takes_over(
    database_url: str, emulator: Emulator, instances: list[Outbox]
) -> None:
    emulator.rate_limit(per_second=CAP, per_chat_per_second=1)
    chats = [emulator.user(700 + i).chat_id for i in range(80)]
    emulator.user(1, "Staff", chat_type="group", chat_id=GROUP)
    a, b = instances
    await queue(a, [*chats, GROUP], "first")
    await queue(a, [GROUP], "again")

    # Both drain at once in small claims, each with its own 30/s limiter: one of them sends.
    first = await asyncio.gather(a.drain(limit=10), b.drain(limit=10))
    assert sorted(s.sent for s in first) == [0, 82]
    assert emulator.rejected == 0
    assert busiest_second(emulator) <= CAP
    group = sorted(c.at for c in emulator.calls("sendMessage") if c.params["chat_id"] == GROUP)
    assert len(group) == 2 and group[1] - group[0] >= 3.0  # 20 a minute to a group
    leader, standby = (a, b) if first[0].sent else (b, a)

    # The leader stops: the other sends from its next claim on.
    await leader.close()
    await queue(standby, chats[:10], "second")
    assert (await standby.drain()).sent == 10

    # The new leader dies (its session is killed): the first instance takes over, and the dead
    # one, noticing at its next claim that its lock is gone, sends nothing more.
    await terminate(database_url, await lock_holder_pid(database_url))
    await queue(standby, chats[10:40], "third")
    assert (await leader.drain()).sent == 30
    await queue(standby, chats[40:45], "fourth")
    assert (await standby.drain()).sent == 0
    assert (await leader.drain()).sent == 5

    # Nothing lost, nothing sent twice, never over the cap.
    assert emulator.rejected == 0
    assert busiest_second(emulator) <= CAP
    sent = delivered(emulator)
    assert len(sent) == 82 + 10 + 30 + 5 and set(sent.values()) == {1}
