"""Faults while the outbox drains, on real PostgreSQL and a real SMTP server (aiosmtpd):

- the database "restarted" three times while 300 letters go out (every connection of the test's
  own database terminated, new ones refused for 2 s — the shared server itself is not touched);
- the worker process (`certdesk outbox send`) SIGKILLed 4 times while sending 200 letters.

Each letter must arrive, none twice as another letter: a letter sent again after a crash is the
same letter (same Message-ID). The figures are printed for the lead's note.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sys
import time
from collections import Counter
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import func, select

from bot.clock import Clock
from bot.delivery import Sender
from bot.delivery.messages import Outbound
from bot.delivery.smtp import SmtpSender
from bot.outbox.messages import Letter, enqueue
from bot.outbox.worker import Outbox, status_counts
from storage.db import session_factory
from storage.models import OutboxMessage
from tests.fixtures.db import PG_ADMIN_DB, PG_HOST, PG_PORT, PG_USER
from tests.fixtures.mail import SmtpSink

POSTGRES_ONLY = pytest.mark.parametrize(
    "backend", [pytest.param("postgres", marks=pytest.mark.postgres)]
)
REPO = Path(__file__).resolve().parents[2]


def _message_ids(sink: SmtpSink) -> list[str]:
    found = []
    for mail in sink.received:
        head = mail.content.split(b"\r\n\r\n", 1)[0]
        line = next(x for x in head.split(b"\r\n") if x.lower().startswith(b"message-id:"))
        found.append(line.split(b":", 1)[1].strip().decode())
    return found


async def _queue_letters(engine: AsyncEngine, n: int, now_: Clock) -> None:
    async with session_factory(engine)() as s, s.begin():
        for i in range(n):
            letter = Letter(to=f"c{i}@example.cn", subject=f"回执 {i}", text=f"第 {i} 封")
            await enqueue(s, letter, key=f"fault:{i}", now=now_.now())


def _database_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


async def _restart(database: str, down_seconds: float) -> None:
    """What a restart does to us: every connection dropped, none accepted for a while."""
    admin = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database=PG_ADMIN_DB)
    try:
        await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", database
        )
        await asyncio.sleep(down_seconds)  # the outage itself, not a wait for a result
        await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
    finally:
        await admin.close()


class Timed:
    """The real SMTP sender, noting when each letter was accepted (for the delay figure)."""

    channel = "email"

    def __init__(self, inner: SmtpSender) -> None:
        self.inner = inner
        self.accepted: list[float] = []

    async def send(self, message: Outbound) -> str | None:
        result = await self.inner.send(message)
        self.accepted.append(time.monotonic())
        return result


@POSTGRES_ONLY
async def test_database_restarts_while_300_letters_drain(
    engine: AsyncEngine, database_url: str, smtp_server: SmtpSink
) -> None:
    clock = Clock()
    n = 300
    await _queue_letters(engine, n, clock)
    smtp = SmtpSender(
        host=smtp_server.host,
        port=smtp_server.port,
        security="none",
        mail_from="desk@desk.example.test",
        mail_domain="desk.example.test",
        clock=clock,
    )
    timed = Timed(smtp)
    senders: dict[str, Sender] = {"email": timed}
    outbox = Outbox(session_factory(engine), senders, clock, concurrency=4)
    start = time.monotonic()
    done = asyncio.Event()

    async def scheduler() -> None:  # as the real scheduler: drain, on error try again
        while not done.is_set():
            with contextlib.suppress(Exception):  # the database is away: the next pass tries
                await outbox.drain()
            await asyncio.sleep(0.2)

    running = asyncio.create_task(scheduler())
    restarts = 0
    try:
        for at in (50, 150, 250):
            await smtp_server.wait_for(at, timeout=60)
            await _restart(_database_of(database_url), down_seconds=2.0)
            restarts += 1
        await smtp_server.wait_for(n, timeout=90)
        while (await status_counts(outbox.sessions))["sent"] < n:
            await asyncio.sleep(0.1)
    finally:
        done.set()
        await running
        await smtp.close()
    ids = _message_ids(smtp_server)
    duplicates = sum(c - 1 for c in Counter(ids).values())
    longest = max(timed.accepted) - start
    print(
        f"\nPostgreSQL restarted {restarts}×: {len(set(ids))}/{n} letters delivered, "
        f"{duplicates} duplicates, longest delay {longest:.1f} s after the start"
    )
    assert len(ids) == n and len(set(ids)) == n  # each exactly once
    assert longest <= 60
    counts = await status_counts(outbox.sessions)
    assert counts["sent"] == n and counts["sending"] == counts["failed"] == 0


async def _worker(
    database_url: str, smtp: SmtpSink, tmp: Path, *once: str
) -> asyncio.subprocess.Process:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(REPO),
        "DATABASE_URL": database_url,
        "SMTP_HOST": smtp.host,
        "SMTP_PORT": str(smtp.port),
        "SMTP_SECURITY": "none",
        "MAIL_DOMAIN": "desk.example.test",
        "MAIL_FROM": "desk@desk.example.test",
        "OUTBOX_LEASE_SECONDS": "2",
        "LOG_LEVEL": "WARNING",
        # The same clock as this test: under `faketime` the worker must see the letters as due.
        **{k: v for k, v in os.environ.items() if k == "LD_PRELOAD" or k.startswith("FAKETIME")},
    }
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "outbox", "send", *once,
        cwd=tmp, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


@POSTGRES_ONLY
async def test_the_worker_killed_4_times_while_sending_loses_and_doubles_nothing(
    engine: AsyncEngine, database_url: str, smtp_server: SmtpSink, tmp_path: Path
) -> None:
    n, kills = 200, 4
    clock = Clock()
    await _queue_letters(engine, n, clock)
    rng = random.Random(7)
    start = time.monotonic()
    for _ in range(kills):
        proc = await _worker(database_url, smtp_server, tmp_path)
        try:
            # Killed mid-drain: once it has sent a few more letters, at a random moment after.
            seen = len(smtp_server.received)
            await smtp_server.wait_for(seen + rng.randint(5, 30), timeout=60)
        finally:  # killed whatever happens: a stray worker would take other tests' messages
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
    proc = await _worker(database_url, smtp_server, tmp_path)  # the last one runs to the end
    try:
        async with session_factory(engine)() as s:
            while True:
                query = select(func.count()).select_from(OutboxMessage)
                sent = (await s.exec(query.where(OutboxMessage.status == "sent"))).one()
                await s.rollback()  # a fresh snapshot each time
                if sent == n:
                    break
                await asyncio.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()[-2000:]
    longest = time.monotonic() - start
    ids = _message_ids(smtp_server)
    again = len(ids) - len(set(ids))
    print(
        f"\nworker SIGKILLed {kills}×: {len(set(ids))}/{n} letters delivered, "
        f"{again} sent again after a kill as the same letter (same Message-ID), "
        f"0 duplicate letters, all within {longest:.1f} s"
    )
    assert len(set(ids)) == n  # no loss
    assert again <= kills  # at most the one letter in flight per kill, and as the same letter
    assert (await status_counts(session_factory(engine)))["sent"] == n
