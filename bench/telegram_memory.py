"""Memory the bot keeps per Telegram user once their conversation has ended (target ≤ 2 KB).

Each of N users (10,000 by default) says /start, picks a language, starts the quote flow and
leaves it with /cancel — a contact row, user and chat data, a flood-gate entry, a conversation
state written and deleted. Memory is Python's (tracemalloc), taken after a garbage collection
with the emulator's own records of the chats emptied (the emulator runs in this process; its
memory is not the bot's), before and after the idle sweep (handlers.telegram.flows.IdleFlows)
that forgets chats idle for longer than the conversation timeout. The figure is the first:
kept per user right after the conversation ended. Last line: JSON.

    python bench/telegram_memory.py [USERS=10000]

Users visit 8 at a time. 10,000 users are 50,000 updates and 10,000 first contacts (a contact
row each): ~4 minutes of CPU untraced, ~3 times that with tracemalloc on (it follows every
allocation) — about 15–18 minutes on 2 shared cores. A smaller USERS gives a quick look, but
only a large one shows that the bookkeeping is bounded (the flood gate prunes when it has
doubled past 1,024 users; PTB's own sets used to grow by every user ever seen).
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.clock import FrozenClock
from bot.config import load_settings
from bot.emulator import Emulator, FakeUser, bot_builder, run_app
from bot.main.app import build_application
from bot.main.desk import open_desk
from handlers.telegram.flows import IDLE_FLOWS
from storage.db import upgrade_async

T0 = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
WARM_UP = 200
CONCURRENCY = 8  # users in the middle of a visit at any time


async def visit(user: FakeUser) -> None:
    await user.send("/start")
    await user.next_reply()
    await user.press("lang:en")
    await user.next_reply()
    await user.next_reply()
    await user.send("/quote")
    await user.next_reply()
    await user.send("/cancel")
    await user.next_reply()


async def visit_all(emulator: Emulator, first_id: int, n: int, name: str) -> None:
    """`n` users visit, CONCURRENCY at a time (as people do: the bot polls them in batches)."""
    ids = iter(range(first_id, first_id + n))

    async def one_after_another() -> None:
        for user_id in ids:
            await visit(emulator.user(user_id, f"{name}{user_id - first_id}", language_code="en"))

    await asyncio.gather(*(one_after_another() for _ in range(min(CONCURRENCY, n))))


def forget_emulator(emulator: Emulator) -> None:
    """Drop the emulator's records of the chats: only the bot's memory is measured."""
    state = emulator.state
    for records in (state.chats, state.messages, state.outputs, state.callback_answers):
        records.clear()
    state._message_ids.clear()
    emulator.queue.history.clear()
    emulator.server.sent.clear()


def traced() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


async def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/certdesk.db"
        await upgrade_async(url)
        settings = load_settings(
            database_url=url,
            data_dir=Path(tmp) / "data",
            flood_max_updates=10**9,
            # Above what the bench sends, and a small enough window of recent sends that the
            # warm-up fills it (the limiter keeps the last second's: 10**6 would grow 1 MB).
            telegram_rate_per_second=1000,
        )
        clock = FrozenClock(T0)
        desk = await open_desk(settings, clock)
        try:
            async with Emulator() as emulator:
                app = build_application(desk, bot_builder(emulator))
                async with run_app(app):
                    # Caches, statements, pools: filled once.
                    await visit_all(emulator, 1_000_000, WARM_UP, "W")
                    await app.update_queue.join()
                    forget_emulator(emulator)
                    tracemalloc.start()
                    before = traced()
                    started = time.perf_counter()
                    await visit_all(emulator, 2_000_000, n, "U")
                    await app.update_queue.join()
                    seconds = time.perf_counter() - started
                    forget_emulator(emulator)
                    ended = traced()
                    clock.advance(seconds=settings.conversation_timeout_seconds + 1)
                    swept = await app.bot_data[IDLE_FLOWS].sweep(app, clock.now().timestamp())
                    after_sweep = traced()
                    top = tracemalloc.take_snapshot().statistics("filename")[:8]
                    tracemalloc.stop()
        finally:
            await desk.close()
    per_user = (ended - before) / n
    per_user_swept = (after_sweep - before) / n
    print(f"{n} users in {seconds:.1f} s; kept per user once the conversation ended: "
          f"{per_user:,.0f} B; after the idle sweep ({swept} flows ended by it): "
          f"{per_user_swept:,.0f} B (target ≤ 2,048 B)")  # fmt: skip
    for stat in top:
        print(f"  {stat}")
    print(json.dumps({
        "bench": "telegram_memory", "users": n, "ratio": round(per_user / 2048, 3),
        "bytes_per_user": round(per_user), "bytes_per_user_after_sweep": round(per_user_swept),
        "target_bytes": 2048,
    }))  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000))
