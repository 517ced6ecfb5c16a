"""Echo bot through the Telegram emulator: updates/s and reply latency p50/p99.

Also a helper: ``measure(app, emulator, n, make_update)`` drives any app the same way, so other
benches (bench/telegram_updates.py) reuse it. Prints figures; asserts nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from telegram import Update
from telegram.ext import Application, ContextTypes, MessageHandler, filters

from bot.emulator import Emulator, FakeUser, bot_builder, run_app

# Queues update number i and returns the user whose chat gets the reply. Updates i and j with
# i ≡ j (mod concurrency) run on the same worker one after another, so a user per residue
# (users[i % concurrency]) never has two replies outstanding.
MakeUpdate = Callable[[int], Awaitable[FakeUser]]


@dataclass
class Figures:
    label: str
    n: int
    seconds: float
    latencies: list[float]  # seconds, update queued → reply recorded by the emulator
    cpu_per_update: float = 0.0  # ms of process CPU time, when measured

    @property
    def rate(self) -> float:
        return self.n / self.seconds

    def percentile(self, p: int) -> float:
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[p - 1]

    def __str__(self) -> str:
        return (
            f"{self.label}: {self.n} updates in {self.seconds:.2f} s = {self.rate:,.0f} updates/s; "
            f"latency p50 {self.percentile(50) * 1000:.1f} ms, "
            f"p99 {self.percentile(99) * 1000:.1f} ms"
        )


async def measure(
    app: Application,
    emulator: Emulator,
    n: int,
    make_update: MakeUpdate,
    *,
    concurrency: int = 1,
    timeout: float = 10.0,
    label: str = "measure",
) -> Figures:
    """Closed loop: ``concurrency`` workers each queue an update and wait for its reply.

    Starts the app (polling the emulator) unless it is already running.
    """
    latencies: list[float] = []

    async def worker(k: int) -> None:
        for i in range(k, n, concurrency):
            queued = time.perf_counter()
            user = await make_update(i)
            reply = await user.next_reply(timeout)
            latencies.append(reply.at - queued)

    async with contextlib.AsyncExitStack() as stack:
        if not app.running:
            await stack.enter_async_context(run_app(app))
        started = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(concurrency)))
        elapsed = time.perf_counter() - started
    return Figures(label, n, elapsed, latencies)


async def _echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await update.effective_message.reply_text(update.effective_message.text)


def echo_app(emulator: Emulator, *, concurrent: bool = False) -> Application:
    app = bot_builder(emulator).concurrent_updates(concurrent).build()
    app.add_handler(MessageHandler(filters.TEXT, _echo))
    return app


async def run(n: int, users: int, *, concurrent: bool = False) -> Figures:
    async with Emulator() as emulator:
        people = [emulator.user(10_000 + k) for k in range(users)]

        async def make_update(i: int) -> FakeUser:
            user = people[i % users]
            await user.send(f"message {i}")
            return user

        app = echo_app(emulator, concurrent=concurrent)
        async with run_app(app):
            await measure(app, emulator, min(50, n), make_update, concurrency=users)  # warm-up
            label = f"echo, {users} users, concurrent_updates={concurrent}"
            return await measure(app, emulator, n, make_update, concurrency=users, label=label)


async def main(n: int) -> None:
    rates = {}
    for users, concurrent in ((1, False), (8, False), (8, True)):
        figures = await run(n, users, concurrent=concurrent)
        rates[f"{users}_users_concurrent_{concurrent}"] = round(figures.rate, 1)
        print(figures, flush=True)
    print(json.dumps({"bench": "telegram_echo", "ratio": None, "updates_per_s": rates}))


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000))
