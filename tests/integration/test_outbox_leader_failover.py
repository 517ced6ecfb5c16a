"""The sending instance dies (SIGKILL, its own OS process): another takes over in bounded time.

The holder of the Telegram sender lock is a real separate process that claimed messages and is
killed mid-send; the standby here takes the lock within its retry interval (plus the time the
server needs to see the dead session), then sends everything: the dead one's claims once their
lease runs out, nothing twice.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.clock import FrozenClock
from bot.delivery.telegram import telegram_sender
from bot.emulator import Emulator
from bot.outbox.worker import Outbox
from storage.db import make_engine, session_factory
from storage.repo.outbox import enqueue, sender_lock

POSTGRES = pytest.mark.parametrize(
    "backend", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
RETRY = 1.0  # the standby's attempts (SENDER_LOCK_RETRY, 5 s in production)
BOUND = RETRY + 2.0  # takeover within one retry, plus the server noticing the dead session

# The holder: takes the lock, claims 5 messages as a worker would, says so, then hangs there.
HOLDER = """
import asyncio, sys
from bot.clock import Clock
from bot.outbox.worker import Outbox
from storage.db import make_engine, session_factory

async def main(url):
    engine = make_engine(url)
    outbox = Outbox(session_factory(engine), {}, Clock(), worker_id="doomed")
    assert await outbox.sender_lock.held()
    claimed = await outbox.claim(5)
    print(len(claimed), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

asyncio.run(main(sys.argv[1]))
"""


@POSTGRES
async def test_the_standby_takes_over_when_the_sending_process_is_killed(
    database_url: str, emulator: Emulator
) -> None:
    chats = [emulator.user(800 + i).chat_id for i in range(12)]
    engine = make_engine(database_url)
    sender = telegram_sender("123:TEST", base_url=emulator.base_url, per_second=30)
    await sender.bot.initialize()
    try:
        async with session_factory(engine)() as s, s.begin():
            for chat in chats:
                await enqueue(
                    s, channel="telegram", recipient=str(chat), payload={"text": f"m{chat}"},
                    idempotency_key=f"m{chat}", now=datetime.now(UTC) - timedelta(seconds=1),
                )  # fmt: skip
        holder = await asyncio.create_subprocess_exec(
            sys.executable, "-c", HOLDER, database_url,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            cwd=Path(__file__).resolve().parents[2],
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        )  # fmt: skip
        try:
            assert holder.stdout is not None
            line = await asyncio.wait_for(holder.stdout.readline(), 30)
            assert line.strip() == b"5"  # it holds the lock and 5 claims
            lock = sender_lock(engine, retry=RETRY)
            assert not await lock.held()  # the other process sends, not this one

            holder.send_signal(signal.SIGKILL)
            killed = time.monotonic()
            await holder.wait()
            while not await lock.held():
                assert time.monotonic() - killed < BOUND, "no takeover"
                await asyncio.sleep(0.05)
            took = time.monotonic() - killed
        finally:
            if holder.returncode is None:
                holder.kill()
                await holder.wait()
        print(f"takeover after SIGKILL: {took:.2f} s (bound {BOUND:g} s)")
        assert took < BOUND

        # The new holder sends what was never claimed at once, and the dead one's claims once
        # their lease (30 s) has run out: its clock is moved past it, no waiting.
        clock = FrozenClock(datetime.now(UTC))
        standby = Outbox(session_factory(engine), {"telegram": sender}, clock, worker_id="b")
        assert (await standby.drain()).sent == 7
        clock.advance(seconds=31)
        assert (await standby.drain()).sent == 5
        sent = Counter(c.params["chat_id"] for c in emulator.calls("sendMessage") if c.ok)
        assert sorted(sent) == sorted(chats) and set(sent.values()) == {1}
    finally:
        await sender.bot.shutdown()
        await engine.dispose()
