"""Reminder planning of a large certificate register: seconds, the longest single transaction
(on SQLite the whole database's write lock) and peak memory, on SQLite and PostgreSQL.

    python bench/reminders_plan.py [--certificates 100000] [--db sqlite|postgresql|both]

The register is loaded straight into the tables; then the scheduler's `plan_reminders` runs as
it does daily and at every start. A second run plans nothing new (checked), so the figure is
honest about repeated planning too. Targets: under 30 s for 100,000 certificates, no
transaction longer than a second, memory flat (peak RSS reported beside the baseline).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import asyncpg
from sqlalchemy import event, insert
from sqlalchemy.engine import Engine

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.clock import FrozenClock
from bot.config import Settings
from bot.main.desk import open_desk
from bot.scheduler.scans import Scans
from storage.db import upgrade_async
from storage.models import Certificate

T0 = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
PG = "postgresql://postgres@127.0.0.1:5432"


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def register(n: int) -> list[dict[str, object]]:
    """Certificates decided over the last three years, so every one has dates ahead."""
    start = date(2024, 1, 1)
    out: list[dict[str, object]] = []
    for i in range(n):
        decided = start + timedelta(days=i % 1000)
        out.append(
            {
                "number": f"B-{i:07}",
                "holder": f"基准公司 {i}",
                "standard": "GB/T 39604",
                "status": "valid",
                "decided_on": decided,
                "stage2_end_on": decided - timedelta(days=20),
                "expires_on": decided + timedelta(days=3 * 365),
                "updated_at": T0,
            }
        )
    return out


class Transactions:
    """The longest time between BEGIN and COMMIT on any connection."""

    def __init__(self) -> None:
        self.longest = 0.0
        self.count = 0
        self._began: dict[int, float] = {}
        event.listen(Engine, "begin", self._begin)
        event.listen(Engine, "commit", self._commit)

    def _begin(self, conn: object) -> None:
        self._began[id(conn)] = time.perf_counter()

    def _commit(self, conn: object) -> None:
        began = self._began.pop(id(conn), None)
        if began is not None:
            self.count += 1
            self.longest = max(self.longest, time.perf_counter() - began)


async def run(url: str, n: int) -> dict[str, object]:
    await upgrade_async(url)
    settings = Settings(_env_file=None, database_url=url)  # type: ignore[call-arg]
    desk = await open_desk(settings, FrozenClock(T0))
    try:
        rows = register(n)
        async with desk.sessions() as session, session.begin():
            for i in range(0, n, 4_000):
                await session.exec(insert(Certificate).values(rows[i : i + 4_000]))  # type: ignore[call-overload]
        del rows
        base = rss_mb()
        tx = Transactions()
        scans = Scans(desk)
        t = time.perf_counter()
        planned = await scans.plan_reminders(force=True)
        seconds = time.perf_counter() - t
        longest, commits = tx.longest, tx.count
        again = await scans.plan_reminders(force=True)
        assert planned >= n, f"only {planned} reminders planned for {n} certificates"
        assert again == 0, f"a second planning added {again}"
        return {
            "certificates": n,
            "planned": planned,
            "seconds": round(seconds, 2),
            "longest_transaction_s": round(longest, 3),
            "transactions": commits,
            "rss_before_mb": round(base),
            "rss_peak_mb": round(rss_mb()),
        }
    finally:
        await desk.close()


async def main(n: int, which: str) -> None:
    results: dict[str, dict[str, object]] = {}
    if which in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            results["sqlite"] = await run(f"sqlite+aiosqlite:///{tmp}/bench.db", n)
            print("sqlite:", results["sqlite"])
    if which in ("postgresql", "both"):
        name = f"certdesk_bench_plan_{int(time.time())}"
        admin = await asyncpg.connect(f"{PG}/test")
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
            results["postgresql"] = await run(url, n)
            print("postgresql:", results["postgresql"])
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()
    worst = max(r["seconds"] for r in results.values())  # type: ignore[type-var]
    print(json.dumps({"bench": "reminders_plan", "certificates": n, "seconds": worst, **results}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--certificates", type=int, default=100_000)
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    args = parser.parse_args()
    asyncio.run(main(args.certificates, args.db))
