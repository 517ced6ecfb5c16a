"""Eligibility answers through the emulator: updates/s and latency p50/p99 of the full bot
(guard, persistence, SQLite writes, rate limiter) next to a bare echo bot through the same
emulator, and a bare bot making the same Bot API calls through the same HTTP transport. The
figure is bot ÷ bare (target ≥ 0.8), printed last as one JSON line with the p99 handling
latency; bot ÷ echo is shown too.

    python bench/telegram_updates.py [N=2000] [USERS=1] [ROUNDS=1]

The bare bot is fair by construction: one round of the check is first recorded from the full
bot (`record_script`: every reply's HTML text and inline keyboard, from the first question to
the verdict with the main menu), and the bare bot replays it — the same sendMessage calls with
the same texts and keyboards, answerCallbackQuery beside each one that answers a button press,
none for typed text (the start date, /eligibility) — driven by the same `answer` function, so
both get the same updates. Both are built by `bot_builder` with PTB's default transport,
HTTPXRequest (httpx over HTTP/1.1, a pool of up to 256 kept-alive connections for the calls,
one for getUpdates); the bare bot has no rate limiter and no logic.

Everything (emulator, bot, benchmark) shares one event loop, so the rate is set by CPU time:
each line also shows the process CPU time per update, steadier than the rate on a busy
machine. With ROUNDS > 1, echo, bare and bot runs alternate and the median ratio is printed.

What an eligibility answer costs beyond the bare bot: PTB's dispatch through the guard group
and a persistent ConversationHandler (its idle timeout a note in memory, handlers.telegram.flows
.IdleFlows), the catalog texts rendered, and one transaction (update-id record + answer
[+ conversation state]) committed in one call to the writer (storage.writer: on SQLite the
loop's own connection, statements compiled once, no ORM).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from telegram import InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    ContextTypes,
    Defaults,
    MessageHandler,
    filters,
)

from bench.telegram_echo import Figures, MakeUpdate, echo_app, measure
from bot.clock import FrozenClock
from bot.config import load_settings
from bot.emulator import Emulator, FakeUser, Reply, bot_builder, run_app
from bot.main.app import build_application
from bot.main.desk import open_desk
from storage.db import upgrade_async

T0 = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
T = TypeVar("T")


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


async def measured(
    app: Application, emulator: Emulator, n: int, make_update: MakeUpdate, users: int, label: str
) -> Figures:
    """`measure`, with the process CPU time per update added to the label."""
    cpu = time.process_time()
    figures = await measure(app, emulator, n, make_update, concurrency=users, label=label)
    per_update = (time.process_time() - cpu) / n * 1000
    figures.label = f"{label} [CPU {per_update:.2f} ms/update]"
    figures.cpu_per_update = per_update
    return figures


async def run_echo(n: int, users: int) -> Figures:
    async with Emulator() as emulator:
        people = [emulator.user(10_000 + k) for k in range(users)]

        async def make_update(i: int) -> FakeUser:
            user = people[i % users]
            await user.send(f"message {i}")
            return user

        app = echo_app(emulator)
        async with run_app(app):
            await measure(app, emulator, min(100, n), make_update, concurrency=users)  # warm-up
            label = f"echo, {users} user(s)"
            return await measured(app, emulator, n, make_update, users, label)


@dataclass(frozen=True)
class Script:
    """What the full bot sent over one round of the check, reply by reply: the question with
    its intro (the answer to /eligibility), every next question, the verdict with the main menu.
    The bare bot replays it, so both make the very same Bot API calls with the same texts and
    keyboards, and the same driver (`answer`) sends both the same updates."""

    replies: tuple[tuple[str, InlineKeyboardMarkup | None], ...]


async def _drive_into_flow(person: FakeUser) -> None:
    """Set-up of a bench user of the full bot: first contact, language, organisation; ends with
    the first question of the check as the latest reply."""
    await person.send("/start")
    await person.next_reply()
    await person.press("lang:zh_CN")
    await person.next_reply()
    await person.next_reply()
    await person.send("/eligibility")
    await person.next_reply()
    await person.send(f"基准测试公司 {person.id}")
    await person.next_reply()


def _markup(reply: Reply) -> InlineKeyboardMarkup | None:
    return InlineKeyboardMarkup.de_json(reply.reply_markup, None) if reply.reply_markup else None


async def record_script() -> Script:
    """One round of the check through the full bot, from its first question to its verdict."""
    recorded: list[Reply] = []

    async def drive(app: Application, emulator: Emulator, people: list[FakeUser]) -> None:
        person = people[0]
        await _drive_into_flow(person)
        recorded.append(person.replies[-1])
        while True:
            await answer(person)
            reply = await person.next_reply()
            recorded.append(reply)
            data = [str(b.get("callback_data", "")) for row in reply.keyboard for b in row]
            if not any(d.startswith("el:") for d in data):
                break  # the verdict: the main menu, no question any more

    await _with_bot(1, drive)
    for reply in recorded:
        assert reply.parse_mode == ParseMode.HTML and reply.raw is not None
    return Script(tuple((r.raw or "", _markup(r)) for r in recorded))


def bare_app(emulator: Emulator, script: Script) -> Application:
    """No logic: each update of a chat gets the script's next reply; a button press is answered
    (answerCallbackQuery) beside it, as the full bot does. HTML defaults, no rate limiter."""
    steps: dict[int, int] = {}

    async def reply(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        chat = update.effective_chat
        assert chat is not None
        step = steps.get(chat.id, 0)
        steps[chat.id] = step + 1
        text, markup = script.replies[step % len(script.replies)]
        send = context.bot.send_message(chat.id, text, reply_markup=markup)
        if update.callback_query is None:
            await send
        else:
            await asyncio.gather(update.callback_query.answer(), send)

    app = bot_builder(emulator).defaults(Defaults(parse_mode=ParseMode.HTML)).build()
    app.add_handler(CallbackQueryHandler(reply))
    app.add_handler(MessageHandler(filters.TEXT, reply))
    return app


async def run_bare(n: int, users: int, script: Script) -> Figures:
    """The same Telegram calls per update as the full bot (the recorded script), nothing else:
    the most the full bot can reach through this emulator and PTB's HTTPXRequest."""
    async with Emulator() as emulator:
        people = [emulator.user(30_000 + k) for k in range(users)]
        app = bare_app(emulator, script)
        async with run_app(app):
            for person in people:  # as the full bot's users start: the first question showing
                await person.send("/eligibility")
                await person.next_reply()

            async def make_update(i: int) -> FakeUser:
                person = people[i % users]
                await answer(person)
                return person

            await measure(app, emulator, min(100, n), make_update, concurrency=users)
            label = f"bare bot, the same Telegram calls, {users} user(s)"
            return await measured(app, emulator, n, make_update, users, label)


async def _with_bot(
    users: int, drive: Callable[[Application, Emulator, list[FakeUser]], Awaitable[T]]
) -> T:
    """The full bot on a fresh SQLite database and emulator; `drive(app, emulator, people)`."""
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
                    return await drive(app, emulator, people)
        finally:
            await desk.close()


async def run_bot(n: int, users: int) -> Figures:
    async def drive(app: Application, emulator: Emulator, people: list[FakeUser]) -> Figures:
        for person in people:
            await _drive_into_flow(person)

        async def make_update(i: int) -> FakeUser:
            person = people[i % users]
            await answer(person)
            return person

        await measure(app, emulator, min(100, n), make_update, concurrency=users)
        label = f"eligibility answers, {users} user(s), SQLite"
        return await measured(app, emulator, n, make_update, users, label)

    return await _with_bot(users, drive)


async def main(n: int, users: int, rounds: int) -> None:
    ratios, cpu_ratios, echo_ratios, p99s = [], [], [], []
    script = await record_script()
    for _ in range(rounds):
        echo = await run_echo(n, users)
        print(echo, flush=True)
        bare = await run_bare(n, users, script)
        print(f"{bare}; {bare.rate / echo.rate:.2f} of the echo rate", flush=True)
        bot = await run_bot(n, users)
        print(bot, flush=True)
        ratios.append(bot.rate / bare.rate)
        echo_ratios.append(bot.rate / echo.rate)
        cpu_ratios.append(bare.cpu_per_update / bot.cpu_per_update)
        p99s.append(bot.percentile(99) * 1000)
        print(
            f"bot ÷ bare: {ratios[-1]:.2f} by rate, {cpu_ratios[-1]:.2f} by CPU time per update "
            f"(target ≥ 0.8); bot ÷ echo {echo_ratios[-1]:.2f}; bot p99 {p99s[-1]:.1f} ms",
            flush=True,
        )
    print(json.dumps({
        "bench": "telegram_updates", "ratio": round(statistics.median(ratios), 3),
        "ratio_cpu": round(statistics.median(cpu_ratios), 3),
        "bot_vs_echo": round(statistics.median(echo_ratios), 3),
        "p99_ms": round(statistics.median(p99s), 1), "updates": n, "users": users,
        "rounds": rounds, "target": 0.8,
    }))  # fmt: skip


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    defaults = [2000, 1, 1]
    n, users, rounds = args + defaults[len(args) :]
    asyncio.run(main(n, users, rounds))
