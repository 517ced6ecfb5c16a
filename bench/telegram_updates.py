"""Eligibility answers through the emulator: updates/s and latency p50/p99 of the full bot
(guard, persistence, SQLite writes, rate limiter) next to a bare echo bot through the same
emulator, and a bare bot making the same Bot API calls through the same HTTP transport (PTB's
HTTPXRequest). The figure is bot ÷ bare (target ≥ 0.8), printed last as one JSON line with the
p99 handling latency; bot ÷ echo is shown too.

    python bench/telegram_updates.py [N=2000] [USERS=1] [ROUNDS=1]

Everything (emulator, bot, benchmark) shares one event loop, so the rate is set by CPU time:
each line also shows the process CPU time per update, steadier than the rate on a busy
machine. With ROUNDS > 1, echo and bot runs alternate and the median ratio is printed too.

What an eligibility answer costs beyond an echo: one more HTTP call (answerCallbackQuery,
sent concurrently with the next question), PTB's dispatch through the guard group and a
persistent ConversationHandler (its idle timeout a note in memory, handlers.telegram.flows
.IdleFlows), and one transaction (update-id record + answer [+ conversation state]) committed in
one call to the writer (storage.writer).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.ext import (
    AIORateLimiter,
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
from bot.emulator import Emulator, FakeUser, bot_builder, run_app
from bot.main.app import build_application
from bot.main.desk import open_desk
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


# What the bare bot below shows: a question as long as the eligibility flow's, with its keyboard.
_QUESTION = (
    "第 3/12 题\n\n认证范围所需的行政许可、资质证书是否都已取得且在有效期内？（不需要的请答“是”）"
)


def _question_keyboard(n: int) -> InlineKeyboardMarkup:
    row = [
        InlineKeyboardButton(t, callback_data=f"el:{v}:q{n}") for t, v in (("是", "y"), ("否", "n"))
    ]
    return InlineKeyboardMarkup([row, [InlineKeyboardButton("返回", callback_data="el:back")]])


async def _bare_press(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    chat = update.effective_chat
    assert update.callback_query is not None and chat is not None
    n = len(update.callback_query.data or "")  # any next question will do
    await asyncio.gather(
        update.callback_query.answer(),
        context.bot.send_message(chat.id, _QUESTION, reply_markup=_question_keyboard(n)),
    )


async def _bare_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.effective_chat is not None
    await context.bot.send_message(
        update.effective_chat.id, _QUESTION, reply_markup=_question_keyboard(0)
    )


async def run_bare(n: int, users: int) -> Figures:
    """No logic, the same Telegram calls per answer as the eligibility flow (answerCallbackQuery
    beside a sendMessage with the next question and its keyboard; HTML defaults, rate limiter):
    the most the full bot can reach through this emulator."""
    async with Emulator() as emulator:
        people = [emulator.user(30_000 + k) for k in range(users)]
        app = (
            bot_builder(emulator)
            .defaults(Defaults(parse_mode=ParseMode.HTML))
            .rate_limiter(AIORateLimiter(overall_max_rate=10**6))
            .build()
        )
        app.add_handler(CallbackQueryHandler(_bare_press))
        app.add_handler(MessageHandler(filters.TEXT, _bare_text))
        async with run_app(app):
            for person in people:
                await person.send("/start")
                await person.next_reply()

            async def make_update(i: int) -> FakeUser:
                person = people[i % users]
                last = person.replies[-1]
                await person.press(last.keyboard[0][0]["callback_data"], message_id=last.message_id)
                return person

            await measure(app, emulator, min(100, n), make_update, concurrency=users)
            label = f"bare bot, same Telegram calls as an answer, {users} user(s)"
            return await measured(app, emulator, n, make_update, users, label)


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
                    return await measured(app, emulator, n, make_update, users, label)
        finally:
            await desk.close()


async def main(n: int, users: int, rounds: int) -> None:
    ratios, cpu_ratios, echo_ratios, p99s = [], [], [], []
    for _ in range(rounds):
        echo = await run_echo(n, users)
        print(echo, flush=True)
        bare = await run_bare(n, users)
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
