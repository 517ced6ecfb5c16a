"""One Telegram rate limit across instances: the overall slots come from a budget in PostgreSQL.

Two instances of one bot, each its own engine, `Bot` and limiter: one sends as the outbox does
(TelegramSender), the other answers as the interactive bot does (PTB's rate-limiter hook). The Bot
API emulator enforces Telegram's 30 a second and records when each send arrived.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import asyncpg
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.delivery import TransientFailure
from bot.delivery.messages import TelegramText
from bot.delivery.telegram import telegram_sender
from bot.delivery.telegram_pace import RateLimiter, budget_scope
from bot.emulator import Emulator
from storage.db import make_engine
from storage.repo.send_budget import SendBudget, send_budget
from tests.fixtures.telegram_instances import Instance, start_instance

CAP = 30  # Telegram: about 30 messages a second per bot token
TOKEN = "123:TEST"
POSTGRES = pytest.mark.parametrize(
    "backend", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


@pytest.fixture
async def instances(database_url: str, emulator: Emulator) -> AsyncIterator[list[Instance]]:
    async with AsyncExitStack() as stack:
        yield [await start_instance(stack, TOKEN, emulator.base_url, database_url) for _ in "ab"]


def busiest_second(emulator: Emulator) -> int:
    stamps = sorted(c.at for c in emulator.calls("sendMessage") if c.ok)
    return max((sum(1 for s in stamps[i:] if s < t + 1) for i, t in enumerate(stamps)), default=0)


async def send_both(emulator: Emulator, a: Instance, b: Instance, each: int) -> int:
    """`each` outbox sends from a and `each` replies from b, all at once; how many were refused."""
    chats = [emulator.user(900 + i).chat_id for i in range(2 * each)]

    async def outbox(chat: int) -> bool:
        try:
            await a.sender.send(TelegramText(str(chat), f"outbox {chat}"))
        except TransientFailure:
            return False
        return True

    async def reply(chat: int) -> bool:
        try:
            await b.replies.send_message(chat, f"reply {chat}")
        except Exception:  # RetryAfter: refused
            return False
        return True

    done = await asyncio.gather(
        *(outbox(c) for c in chats[:each]), *(reply(c) for c in chats[each:])
    )
    return done.count(False)


@POSTGRES
async def test_two_instances_stay_within_one_cap_in_total(
    emulator: Emulator, instances: list[Instance]
) -> None:
    emulator.rate_limit(per_second=CAP)
    a, b = instances
    assert await send_both(emulator, a, b, 45) == 0
    assert emulator.rejected == 0
    assert len([c for c in emulator.calls("sendMessage") if c.ok]) == 90
    # Within the cap, and not far below it (the margin, not a crawl).
    assert 20 <= busiest_second(emulator) <= CAP


async def test_without_a_shared_budget_two_instances_go_over_the_cap(emulator: Emulator) -> None:
    """What the shared budget is for: two limiters of their own send twice the cap."""
    emulator.rate_limit(per_second=CAP)
    async with AsyncExitStack() as stack:
        out = [await start_instance(stack, TOKEN, emulator.base_url, None) for _ in "ab"]
        refused = await send_both(emulator, out[0], out[1], 45)
    assert refused > 0 and emulator.rejected == refused


@POSTGRES
async def test_a_429_on_one_instance_holds_the_other(
    emulator: Emulator, instances: list[Instance], database_url: str
) -> None:
    a, b = instances
    chat = emulator.user(901).chat_id
    other = emulator.user(902).chat_id
    emulator.fail_next("sendMessage", 1, status=429, retry_after=1.5)
    with pytest.raises(TransientFailure):
        await a.sender.send(TelegramText(str(chat), "refused"))
    told = time.monotonic()
    # The other instance's reply waits out the pause too (its own limiter never saw the 429).
    await b.replies.send_message(other, "after the pause")
    assert time.monotonic() - told >= 1.4
    assert [c.params["text"] for c in emulator.calls("sendMessage") if c.ok] == ["after the pause"]


@POSTGRES
async def test_an_unreachable_database_falls_back_to_the_local_limiter(
    emulator: Emulator, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    chats = [emulator.user(910 + i).chat_id for i in range(3)]
    # Nothing listens on port 1: the budget cannot connect; every send still goes.
    nowhere = make_engine(make_url(database_url).set(port=1))
    budget = send_budget(nowhere, budget_scope(TOKEN))
    assert budget is not None
    sender = telegram_sender(TOKEN, base_url=emulator.base_url, shared=budget)
    await sender.bot.initialize()
    try:
        with caplog.at_level(logging.WARNING, logger="storage.repo.send_budget"):
            for chat in chats:
                await sender.send(TelegramText(str(chat), "sent anyway"))
    finally:
        await sender.close()
        await sender.bot.shutdown()
        await nowhere.dispose()
    assert len([c for c in emulator.calls("sendMessage") if c.ok]) == 3
    assert not budget.available
    warnings = [r for r in caplog.records if "cannot be reached" in r.getMessage()]
    assert len(warnings) == 1  # once for the outage, not once a send


@POSTGRES
async def test_a_lost_connection_is_paced_locally_then_shared_again(
    engine: AsyncEngine, database_url: str
) -> None:
    budget = SendBudget(engine, "telegram:123", reconnect=0)
    try:
        assert await budget.reserve(10) == pytest.approx(0, abs=0.5)
        conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg", "postgresql"))
        try:
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        finally:
            await conn.close()
        assert await budget.reserve(10) is None  # its session was killed: the local limiter
        assert not budget.available
        # At the next send it connects again; the slot taken before the outage still counts.
        assert await budget.reserve(10) == pytest.approx(10, abs=0.5)
        assert budget.available
    finally:
        await budget.close()


@POSTGRES
async def test_instances_of_one_bot_share_its_slots_and_other_bots_do_not(
    engine: AsyncEngine,
) -> None:
    assert budget_scope("123:AAE-secret") == "telegram:123"
    first = SendBudget(engine, budget_scope("123:A"))
    second = SendBudget(engine, budget_scope("123:A"))
    other = SendBudget(engine, budget_scope("456:B"))
    try:
        # A 10-second interval: the next slot of the scope is 10 s away, whoever asks.
        assert await first.reserve(10) == pytest.approx(0, abs=0.5)
        assert await second.reserve(10) == pytest.approx(10, abs=0.5)
        assert await other.reserve(10) == pytest.approx(0, abs=0.5)
        # A pause moves the slot on for every instance of that bot only.
        assert await first.pause(60)
        assert await second.reserve(10) == pytest.approx(60, abs=0.5)
        assert await other.reserve(10) == pytest.approx(10, abs=0.5)
    finally:
        for budget in (first, second, other):
            await budget.close()


async def test_sqlite_keeps_the_local_limiter(engine: AsyncEngine, backend: str) -> None:
    """One instance by design: no shared budget, the limiter paces alone."""
    budget = send_budget(engine, budget_scope(TOKEN))
    assert (budget is None) == (backend == "sqlite")
    if budget is not None:
        await budget.close()


async def test_a_limiter_whose_budget_is_unavailable_paces_locally() -> None:
    class Down:
        async def reserve(
            self, interval: float, chat: str | None = None, ahead: float = 0.0
        ) -> float | None:
            return None

        async def pause(self, seconds: float) -> bool:
            return False

        async def close(self) -> None:
            return None

    limiter = RateLimiter(10, shared=Down())
    sent = [await limiter.acquire_overall() for _ in range(4)]
    gaps = [b - a for a, b in itertools.pairwise(sent)]
    assert min(gaps) >= limiter.interval * 0.95
