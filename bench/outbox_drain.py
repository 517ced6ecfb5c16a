"""Telegram messages through the outbox of two instances, each its own OS process, at the real cap.

The emulator (its own process, as Telegram) enforces 30 messages a second per token, 1 a second
per chat and 20 a minute per group. `--chats` recipients get `--per-chat` messages each (in a
shuffled order, so the 1-a-second per chat matters), while `--alerts` staff alerts about as many
different cases arrive at the staff group over the first `--alert-seconds`. Two instances (two
processes, each its own engine, HTTP pool and 30/s limiter) drain one throwaway PostgreSQL
database; the holder of the advisory lock sends. `--kill-holder-after S` SIGKILLs the sending
process after S seconds: the other takes over. `--replies N`: every instance also answers N
updates as the interactive bot does (PTB's rate-limiter hook on the same limiter, ~10 a second,
each to a chat of its own), so the outbox's holder and the other instance's replies both spend the
token's 30 a second. The instances share it in PostgreSQL (storage.repo.send_budget) as
`certdesk run` does; `--no-shared` gives each only its own limiter, as before.

Prints the achieved rate ÷ cap, the 429s, losses and duplicates (every message must arrive
exactly once, every alert's text once in the group, every row `sent`), the staff group's most
messages in any rolling minute (≤ 20); the figure last as JSON. Wrong work → "ok": false, exit 1.

    python bench/outbox_drain.py [--cap 30] [--chats 300] [--per-chat 4] [--alerts 150]
                                 [--instances 2] [--lanes 16] [--kill-holder-after S]
                                 [--replies N] [--no-shared]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import signal
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from bot.outbox.worker import status_counts
from storage.db import make_engine, session_factory, upgrade_async
from storage.models import OutboxMessage
from storage.sql import table_of

ROOT = Path(__file__).resolve().parents[1]
FIRST_CHAT = 1_000_000
GROUP = -100_999
GROUP_LIMIT = 20
PG = "postgresql://postgres@127.0.0.1:5432"

# The emulator process: serves until stdin closes, then prints what it accepted.
EMULATOR = """
import asyncio, json, sys, time
from bot.emulator import Emulator

async def main(chats, cap, first_chat, group, replies):
    async with Emulator() as emu:
        emu.rate_limit(per_second=cap, per_chat_per_second=1, per_group_per_minute=20)
        for i in range(chats + replies):
            emu.user(first_chat + i)
        emu.user(1, "Staff", chat_type="group", chat_id=group)
        print(emu.port, flush=True)
        cpu = time.process_time()
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        ok = [c for c in emu.calls("sendMessage") if c.ok]
        print(json.dumps({
            "sent": [[c.params["chat_id"], c.params["text"], c.at] for c in ok],
            "rejected": emu.rejected,
            "group_rejected": emu.group_rejected,
            "group_max": emu.busiest_minute(group),
            "cpu": time.process_time() - cpu,
        }))

asyncio.run(main(*map(int, sys.argv[1:6])))
"""

# One instance: drains until stdin closes; says "held" once it sends Telegram messages.
INSTANCE = """
import asyncio, json, sys, time
from telegram.ext import ExtBot
from bot.clock import Clock
from bot.delivery.telegram import telegram_sender
from bot.delivery.telegram_pace import budget_scope
from bot.delivery.telegram_limits import SharedRateLimiter
from bot.outbox.worker import Outbox
from storage.db import make_engine, session_factory
from storage.repo.send_budget import send_budget

async def answer(bot, chats, done):
    # Replies to updates, ~10 a second, each chat once; a refused one (429) is counted.
    async def one(chat):
        try:
            await bot.send_message(chat, f"r{chat}")
        except Exception:
            done["replies_refused"] += 1
        else:
            done["replies"] += 1
    tasks = []
    for chat in chats:
        tasks.append(asyncio.create_task(one(chat)))
        await asyncio.sleep(0.1)
    await asyncio.gather(*tasks)

async def main(url, port, cap, lanes, name, group, shared, first_reply, replies):
    engine = make_engine(url, pool_size=4)
    base = f"http://127.0.0.1:{port}/bot"
    budget = send_budget(engine, budget_scope("123:BENCH")) if shared else None
    sender = telegram_sender(
        "123:BENCH", base_url=base, per_second=cap, connections=lanes, shared=budget
    )
    await sender.bot.initialize()
    bot = ExtBot("123:BENCH", base_url=base, rate_limiter=SharedRateLimiter(sender.limiter))
    await bot.initialize()
    done = {"replies": 0, "replies_refused": 0}
    chats = range(first_reply, first_reply + replies)
    answering = asyncio.create_task(answer(bot, chats, done))
    outbox = Outbox(
        session_factory(engine), {"telegram": sender}, Clock(), worker_id=name,
        concurrency=lanes, staff_chat_id=group,
    )
    stop = asyncio.ensure_future(asyncio.get_running_loop().run_in_executor(None, sys.stdin.read))
    total = {"sent": 0, "digested": 0, "retried": 0, "failed": 0}
    cpu, said = time.process_time(), False
    while not stop.done():
        if not said and await outbox.sender_lock.held():
            print("held", flush=True)
            said = True
        stats = await outbox.drain(limit=100)
        for key in total:
            total[key] += getattr(stats, key)
        if stats.handled == 0:
            await asyncio.wait([stop], timeout=0.1)
    await answering
    await outbox.close()
    await sender.close()
    await sender.bot.shutdown()
    await bot.shutdown()
    await engine.dispose()
    print(json.dumps({"name": name, **total, **done, "cpu": time.process_time() - cpu}), flush=True)

asyncio.run(main(sys.argv[1], *map(int, sys.argv[2:5]), sys.argv[5], *map(int, sys.argv[6:])))
"""


def _row(key: str, chat: int, text: str, now: datetime, lane: str = "main") -> dict[str, object]:
    return {
        "idempotency_key": key, "channel": "telegram", "recipient": str(chat),
        "payload": {"text": text}, "lane": lane, "coalesced": 0, "status": "queued",
        "attempts": 0, "next_attempt_at": now, "created_at": now,
    }  # fmt: skip


def alert_text(j: int) -> str:
    return f"🔔 新投诉 <b>ALERT-{j}</b>：来自 sender{j}@example.cn，关于案件 TS-{j}，请处理。"


async def insert(url: str, rows: list[dict[str, object]]) -> None:
    engine = make_engine(url)
    try:
        async with session_factory(engine)() as session, session.begin():
            table = table_of(OutboxMessage)
            for i in range(0, len(rows), 1000):
                await session.exec(table.insert().values(rows[i : i + 1000]))  # type: ignore[call-overload]
    finally:
        await engine.dispose()


async def spawn(code: str, *args: object) -> asyncio.subprocess.Process:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, *map(str, args), stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, cwd=ROOT, env=env,
    )  # fmt: skip


async def main(args: argparse.Namespace) -> bool:
    def kill(
        holder: list[asyncio.subprocess.Process], start: float
    ) -> asyncio.subprocess.Process | None:
        """SIGKILL the sending process once --kill-holder-after seconds have passed."""
        after = args.kill_holder_after
        if after is None or not holder or time.perf_counter() - start < after:
            return None
        holder[0].send_signal(signal.SIGKILL)
        return holder[0]

    cap, chats, per_chat, alerts = args.cap, args.chats, args.per_chat, args.alerts
    name = f"certdesk_bench_{int(time.time())}_{os.getpid()}"
    admin = await asyncpg.connect(f"{PG}/test")
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    procs: list[asyncio.subprocess.Process] = []
    try:
        await upgrade_async(url)
        now = datetime.now(UTC)
        private = [(FIRST_CHAT + c, k) for k in range(per_chat) for c in range(chats)]
        random.Random(14).shuffle(private)
        await insert(url, [_row(f"m{c}:{k}", c, f"m{c}:{k}", now) for c, k in private])
        emu = await spawn(EMULATOR, chats, cap, FIRST_CHAT, GROUP, args.replies * args.instances)
        procs.append(emu)
        assert emu.stdout is not None and emu.stdin is not None
        port = int((await emu.stdout.readline()).decode())
        first_reply = FIRST_CHAT + chats
        instances = []
        for k in range(args.instances):
            first = first_reply + k * args.replies
            instance = [url, port, cap, args.lanes, f"i{k}", GROUP, int(args.shared), first]
            instances.append(await spawn(INSTANCE, *instance, args.replies))
        procs += instances
        holder: list[asyncio.subprocess.Process] = []

        async def watch(proc: asyncio.subprocess.Process) -> None:
            assert proc.stdout is not None
            if (await proc.stdout.readline()).strip() == b"held":
                holder.append(proc)

        watchers = [asyncio.create_task(watch(p)) for p in instances]
        start = time.perf_counter()
        # The staff alerts arrive in a burst spread over --alert-seconds, while the rest drains.
        killed = None
        for j in range(alerts):
            due = start + args.alert_seconds * j / max(alerts, 1)
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            text = alert_text(j)
            await insert(url, [_row(f"alert-{j}", GROUP, text, datetime.now(UTC), "staff")])
            killed = killed or kill(holder, start)
        engine = make_engine(url)
        counts: dict[str, int] = {}
        while True:  # until nothing waits (a killed holder's claims wait out their lease)
            counts = await status_counts(session_factory(engine))
            killed = killed or kill(holder, start)
            if counts["queued"] + counts["sending"] + counts["retrying"] == 0:
                break
            await asyncio.sleep(0.2)
        elapsed = time.perf_counter() - start
        await engine.dispose()
        for w in watchers:
            w.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
        results = []
        for proc in instances:
            assert proc.stdin is not None and proc.stdout is not None
            if proc is killed:
                await proc.wait()
                continue
            proc.stdin.close()
            line = b"held"
            while not line.startswith(b"{"):  # a late "held" (it took over) comes first
                line = (await proc.stdout.readline()).strip()
            results.append(json.loads(line.decode()))
            await proc.wait()
        emu.stdin.close()
        stats = json.loads((await emu.stdout.read()).decode())  # to the end: one long line
        await emu.wait()
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()

    # The work, checked: every message once, every alert's text once in the group.
    got = Counter(text for chat, text, _ in stats["sent"] if chat != GROUP and text[0] == "m")
    replies = sum(1 for chat, text, _ in stats["sent"] if text[0] == "r")
    replies_refused = sum(r["replies_refused"] for r in results)
    expected = {f"m{c}:{k}" for c, k in private}
    lost = len(expected - set(got))
    dup = sum(n - 1 for n in got.values()) + len(set(got) - expected)
    group_text = "\n".join(text for chat, text, _ in stats["sent"] if chat == GROUP)
    seen = Counter(int(m) for m in re.findall(r"ALERT-(\d+)</b>", group_text))
    lost_alerts = sum(1 for j in range(alerts) if seen[j] == 0)
    dup_alerts = sum(n - 1 for n in seen.values() if n > 1)
    group_messages = sum(1 for chat, _, _ in stats["sent"] if chat == GROUP)
    # The rate the cap binds: from the first send to the last message to a person (the group's
    # last ones wait for its 20 a minute, not for the cap); every message in that span counts.
    stamps = sorted(at for _, _, at in stats["sent"])
    end = max((at for chat, _, at in stats["sent"] if chat != GROUP), default=0.0)
    span = [at for at in stamps if at <= end]
    window = span[-1] - span[0] if len(span) > 1 else 0.0
    rate = (len(span) - 1) / window if window else 0.0
    in_flight = args.lanes if killed is not None else 0  # a kill may repeat what was in flight
    ok = (
        lost == 0 and lost_alerts == 0 and dup + dup_alerts <= in_flight
        and stats["group_max"] <= GROUP_LIMIT and counts["failed"] == 0
        and counts["sent"] == len(expected) + alerts
        and replies + replies_refused == args.replies * args.instances
    )  # fmt: skip
    cpu = sum(r["cpu"] for r in results)
    load = os.getloadavg()
    print(f"outbox drain: {len(expected)} messages to {chats} chats ({per_chat} each) + {alerts} "
          f"staff alerts over {args.alert_seconds:g} s; {args.instances} instance processes × "
          f"{args.lanes} lanes; cap {cap}/s; {args.replies} replies per instance; "
          f"{'shared budget' if args.shared else 'own limiters'}; "
          f"load {load[0]:.2f} {load[1]:.2f}")  # fmt: skip
    print(f"  at the emulator: {len(span)} messages over {window:.2f} s = {rate:.1f}/s; "
          f"achieved/cap = {rate / cap:.3f}; 429s {stats['rejected']} "
          f"(group {stats['group_rejected']})")  # fmt: skip
    for r in results:
        print(f"  instance {r['name']}: sent {r['sent']} rows ({r['digested']} in digests), "
              f"retried {r['retried']}, CPU {r['cpu']:.2f} s")  # fmt: skip
    if killed is not None:
        print(f"  the sending process was SIGKILLed at {args.kill_holder_after:g} s; "
              f"all done after {elapsed:.1f} s")  # fmt: skip
    print(f"  lost {lost} (+{lost_alerts} alerts), duplicates {dup} (+{dup_alerts} alerts); "
          f"staff group: {group_messages} messages for {alerts} alerts, at most "
          f"{stats['group_max']} in a rolling minute (limit {GROUP_LIMIT})")  # fmt: skip
    if args.replies:
        print(f"  replies: {replies} sent, {replies_refused} refused (429)")
    print(f"  rows: {counts}")
    figure = {
        "bench": "outbox_drain", "ratio": round(rate / cap, 3), "cap": cap,
        "rate": round(rate, 2), "messages": len(stamps), "refused": stats["rejected"],
        "lost": lost + lost_alerts, "dup": dup + dup_alerts, "group_max_per_minute":
        stats["group_max"], "group_messages": group_messages, "alerts": alerts,
        "instances": args.instances, "killed": killed is not None, "replies": replies,
        "replies_refused": replies_refused, "shared": args.shared,
        "cpu_ms_per_message": round(cpu / max(len(stamps), 1) * 1000, 3),
        "load": round(load[0], 2), "ok": ok,
    }  # fmt: skip
    print(json.dumps(figure))
    return ok


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cap", type=int, default=30, help="messages per second per token")
    parser.add_argument("--chats", type=int, default=300)
    parser.add_argument("--per-chat", type=int, default=4)
    parser.add_argument("--alerts", type=int, default=150)
    parser.add_argument("--alert-seconds", type=float, default=30.0)
    parser.add_argument("--instances", type=int, default=2, help="processes, one sends")
    parser.add_argument("--lanes", type=int, default=16, help="concurrent sends per instance")
    parser.add_argument("--kill-holder-after", type=float, default=None)
    parser.add_argument("--replies", type=int, default=0, help="replies sent by each instance")
    parser.add_argument(
        "--no-shared", dest="shared", action="store_false", help="each its own limiter only"
    )
    sys.exit(0 if asyncio.run(main(parser.parse_args())) else 1)
