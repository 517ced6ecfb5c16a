"""10,000 reminders through the outbox to the Telegram emulator enforcing a rate cap.

Prints the achieved rate / the cap (target ≥ 0.9), what the emulator refused (429) and lost
(target 0). The emulator runs in its own process (as Telegram would), the outbox workers here,
on a throwaway PostgreSQL database dropped at the end. Prints figures; asserts nothing.

    python bench/outbox_drain.py [--messages 10000] [--cap 1000 | --cap 30,200,1000]
                                 [--workers 2] [--lanes 8] [--no-sync-commit]

`--workers` outbox workers share one sender (one HTTP pool, one limiter), each sending on
`--lanes` chats at once; `--instances` such groups each have their own engine and sender, as
separate instances would (the holder of the PostgreSQL advisory lock sends Telegram messages).
Also printed: the workers' and the emulator's CPU per message; the figure last, as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from bot.clock import Clock
from bot.delivery.telegram import telegram_sender
from bot.outbox.worker import Outbox, status_counts
from storage.db import make_engine, session_factory, upgrade_async
from storage.models import OutboxMessage

FIRST_CHAT = 1_000_000
PG = "postgresql://postgres@127.0.0.1:5432"

# The emulator process: serves until stdin closes, then prints what it accepted.
EMULATOR = """
import asyncio, json, sys, time
from bot.emulator import Emulator

async def main(n, cap, first_chat):
    async with Emulator() as emu:
        emu.rate_limit(per_second=cap, per_chat_per_second=1)
        for i in range(n):
            emu.user(first_chat + i)
        print(emu.port, flush=True)
        cpu = time.process_time()
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        ok = [c for c in emu.calls("sendMessage") if c.ok]
        stamps = sorted(c.at for c in ok)
        print(json.dumps({
            "accepted": len(ok),
            "chats": len({c.params["chat_id"] for c in ok}),
            "rejected": emu.rejected,
            "first": stamps[0] if stamps else 0,
            "last": stamps[-1] if stamps else 0,
            "cpu": time.process_time() - cpu,
        }))

asyncio.run(main(*map(int, sys.argv[1:4])))
"""


async def fill(url: str, n: int) -> None:
    engine = make_engine(url)
    now = datetime.now(UTC)
    rows = [
        {
            "idempotency_key": f"bench:{i}",
            "channel": "telegram",
            "recipient": str(FIRST_CHAT + i),
            "payload": {"text": f"🔔 证书 <b>B-{i}</b>：监督审核应在 2027-06-15 前完成。"},
            "status": "queued",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for i in range(n)
    ]
    async with session_factory(engine)() as session, session.begin():
        for i in range(0, n, 1000):
            await session.exec(OutboxMessage.__table__.insert().values(rows[i : i + 1000]))  # type: ignore[call-overload]
    await engine.dispose()


async def main(
    n: int, cap: int, workers: int, lanes: int, durable: bool = True, instances: int = 1
) -> dict[str, float]:
    name = f"certdesk_bench_{int(time.time())}"
    admin = await asyncpg.connect(f"{PG}/test")
    await admin.execute(f'CREATE DATABASE "{name}"')
    if not durable:
        # Commit without waiting for the WAL flush: shows what the disk's fsync costs.
        await admin.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
    url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    emu = await asyncio.create_subprocess_exec(
        sys.executable, "-c", EMULATOR, str(n), str(cap), str(FIRST_CHAT),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[1],
    )  # fmt: skip
    try:
        await upgrade_async(url)
        await fill(url, n)
        assert emu.stdout is not None and emu.stdin is not None
        port = int((await emu.stdout.readline()).decode())
        senders, engines, outboxes = [], [], []
        for k in range(instances):  # each its own engine, HTTP pool and limiter
            sender = telegram_sender(
                "123:BENCH",
                base_url=f"http://127.0.0.1:{port}/bot",
                per_second=cap,
                connections=workers * lanes,
            )
            await sender.bot.initialize()
            engine = make_engine(url, pool_size=workers + 2)
            sessions = session_factory(engine)
            senders.append(sender)
            engines.append(engine)
            outboxes += [
                Outbox(
                    sessions,
                    {"telegram": sender},
                    Clock(),
                    worker_id=f"i{k}w{i}",
                    concurrency=lanes,
                )
                for i in range(workers)
            ]
        start, cpu = time.perf_counter(), time.process_time()
        results = await asyncio.gather(*(o.drain(limit=100) for o in outboxes))
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu
        counts = await status_counts(session_factory(engines[0]))
        for engine in engines:
            await engine.dispose()
        for sender in senders:
            await sender.bot.shutdown()
        emu.stdin.close()
        stats = json.loads((await emu.stdout.readline()).decode())
        await emu.wait()
    finally:
        if emu.returncode is None:
            emu.kill()
            await emu.wait()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    sent = sum(r.sent for r in results)
    rate = sent / elapsed
    window = stats["last"] - stats["first"]
    lost = n - stats["chats"]
    mode = "" if durable else ", synchronous_commit=off"
    print(f"outbox drain: {n} reminders, {instances} instance(s) × {workers} workers × {lanes} "
          f"lanes, cap {cap}/s{mode}")  # fmt: skip
    print(f"  sent {sent} in {elapsed:.2f} s = {rate:,.0f}/s; achieved/cap = {rate / cap:.2f}; "
          f"worker CPU {cpu / max(sent, 1) * 1000:.2f} ms/message")  # fmt: skip
    emu_cpu = stats["cpu"] / max(stats["accepted"], 1) * 1000
    print(f"  at the emulator: {stats['accepted']} accepted over {window:.2f} s, "
          f"{stats['rejected']} refused with 429; emulator CPU {emu_cpu:.2f} ms/msg")  # fmt: skip
    print(f"  outbox: {counts}; lost = {lost}; duplicates = {stats['accepted'] - stats['chats']}")
    retried = sum(r.retried for r in results)
    if retried:
        print(f"  retried {retried}: {sorted(set(e for r in results for e in r.errors))[:3]}")
    figure = {"n": n, "cap": cap, "rate": rate, "ratio": rate / cap, "refused": stats["rejected"],
              "lost": lost, "dup": stats["accepted"] - stats["chats"],
              "cpu": cpu / max(sent, 1) * 1000}  # fmt: skip
    print(json.dumps({"bench": "outbox_drain", "instances": instances, **{
        k: round(v, 3) if isinstance(v, float) else v for k, v in figure.items()}}))  # fmt: skip
    return figure


async def table(caps: list[int], n: int, workers: int, lanes: int, durable: bool) -> None:
    rows = [await main(min(n, 50 * cap), cap, workers, lanes, durable) for cap in caps]
    print(f"\n{'cap/s':>6} {'messages':>8} {'sent/s':>7} {'sent/cap':>8} {'429':>4} "
          f"{'lost':>4} {'dup':>4} {'CPU ms/msg':>10}")  # fmt: skip
    for r in rows:
        print(f"{r['cap']:>6} {r['n']:>8} {r['rate']:>7.0f} {r['ratio']:>8.2f} {r['refused']:>4} "
              f"{r['lost']:>4} {r['dup']:>4} {r['cpu']:>10.2f}")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument(
        "--cap", default="1000", help="messages per second; several (30,200,1000) print a table"
    )
    parser.add_argument("--workers", type=int, default=2, help="outbox workers (instances)")
    parser.add_argument("--lanes", type=int, default=8, help="concurrent sends per worker")
    parser.add_argument(
        "--instances", type=int, default=1,
        help="instances, each its own engine and sender (limiter); one sends Telegram (lock)",
    )  # fmt: skip
    parser.add_argument(
        "--no-sync-commit", action="store_true", help="PostgreSQL synchronous_commit=off"
    )
    args = parser.parse_args()
    caps = [int(c) for c in args.cap.split(",")]
    durable = not args.no_sync_commit
    if len(caps) == 1:
        asyncio.run(main(args.messages, caps[0], args.workers, args.lanes, durable, args.instances))
    else:  # a table; each cap's run is kept under a minute (at most 50 s of messages)
        asyncio.run(table(caps, args.messages, args.workers, args.lanes, durable))
