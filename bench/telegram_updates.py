"""Eligibility answers through the emulator: updates/s and latency p50/p99 of the full bot
(guard, persistence, SQLite writes, rate limiter) next to a bare echo bot through the same
emulator, and the ratio of the two rates. Target: ≥ 0.5 of the echo rate on SQLite.

    python bench/telegram_updates.py [N=2000] [USERS=1]
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.telegram_echo import Figures, measure
from bench.telegram_echo import run as run_echo
from bot.app import build_application
from bot.clock import FrozenClock
from bot.config import load_settings
from bot.desk import open_desk
from bot.emulator import Emulator, FakeUser, bot_builder, run_app
from storage.db import upgrade_async

T0 = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)


async def answer(user: FakeUser) -> None:
    """Send what the bot's latest message asks for: a yes/no button, the start date, or a new
    run of the check after a verdict (every update gets exactly one reply)."""
    last = user.replies[-1]
    data = [b.get("callback_data", "") for row in last.keyboard for b in row]
    yes_no = [d for d in data if d.startswith(("el:y:", "el:n:"))]
    if yes_no:
        # The answer that passes: "yes" unless the question is one of the refusals.
        cond = yes_no[0].split(":")[2]
        refusal = cond in {
            "suspension_order", "dishonest_list", "major_accident", "spot_check",
            "revoked_elsewhere", "revoked_unrectified",
        }  # fmt: skip
        await user.press(f"el:{'n' if refusal else 'y'}:{cond}", message_id=last.message_id)
    elif "el:back" in data:
        await user.send("2026-01-05")
    else:
        await user.send("/eligibility")


async def run_bot(n: int, users: int) -> Figures:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/certdesk.db"
        await upgrade_async(url)
        settings = load_settings(
            database_url=url,
            data_dir=Path(tmp) / "data",
            # A bench user answers far faster than a person: lift the per-user flood limit
            # and the overall send rate (the emulator does not throttle unless asked).
            flood_max_updates=10**9,
            telegram_rate_per_second=10**6,
        )
        desk = await open_desk(settings, FrozenClock(T0))
        try:
            async with Emulator() as emulator:
                people = [emulator.user(20_000 + k, f"U{k}") for k in range(users)]
                app = build_application(desk, bot_builder(emulator))
                async with run_app(app):
                    for person in people:  # set-up: first contact, language, organisation
                        await person.send("/start")
                        await person.next_reply()
                        await person.press("lang:zh_CN")
                        await person.next_reply()
                        await person.next_reply()
                        await person.send("/eligibility")
                        await person.next_reply()
                        await person.send(f"基准测试公司 {person.id}")
                        await person.next_reply()

                    async def make_update(i: int) -> FakeUser:
                        person = people[i % users]
                        await answer(person)
                        return person

                    await measure(app, emulator, min(100, n), make_update, concurrency=users)
                    label = f"eligibility answers, {users} user(s), SQLite"
                    return await measure(
                        app, emulator, n, make_update, concurrency=users, label=label
                    )
        finally:
            await desk.close()


async def main(n: int, users: int) -> None:
    echo = await run_echo(n, users)
    print(echo, flush=True)
    bot = await run_bot(n, users)
    print(bot, flush=True)
    print(f"ratio: {bot.rate / echo.rate:.2f} of the echo rate (target ≥ 0.5)")


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    asyncio.run(main(args[0] if args else 2000, args[1] if len(args) > 1 else 1))
