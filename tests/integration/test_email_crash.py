"""SIGKILL the intake at random moments during a 500-letter batch: nothing lost, nothing twice.

The intake runs as its own process (`python -m bot email fetch --once`) against the private
Dovecot and the test database; a seeded RNG picks when to kill it, and it is restarted until a
pass completes. Then every letter must be exactly one case with exactly one acknowledgement,
and the mailbox must hold each letter once, in the processed folder.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import func, select

from bot.clock import FrozenClock
from bot.delivery.smtp import SmtpSender
from bot.outbox.worker import Outbox
from storage.db import session_factory
from storage.models import Case, InboundEmail, OutboxMessage
from tests.fixtures.mail import Mailbox, SmtpSink
from tests.fixtures.mail_corpus import b64, ew, message

pytestmark = pytest.mark.dovecot

LETTERS = 500
SEED = 20260928
MAX_RUNS = 30
KILLS = 8
FINISH_SECONDS = 300.0
DOMAIN = "desk.example.test"
ROOT = Path(__file__).resolve().parents[2]
KINDS = ("投诉", "申诉", "争议")


def batch_of(count: int) -> tuple[list[bytes], set[str], set[str]]:
    """Distinct letters (1 in 25 without a Message-ID); their senders and Message-IDs.

    Also the letters of bench/email_ingest.py.
    """
    letters, senders, ids = [], set(), set()
    start = datetime(2026, 9, 28, 1, 0, tzinfo=UTC)
    for n in range(count):
        sender = f"writer{n}@qq.com"
        headers = [
            ("From", f"{ew(f'写信人{n}', 'gbk')} <{sender}>"),
            ("To", f"certdesk@{DOMAIN}"),
            ("Subject", ew(f"关于第{n}号审核的{KINDS[n % 3]}", "gbk")),
            ("Date", format_datetime(start + timedelta(seconds=n))),
            ("MIME-Version", "1.0"),
        ]
        if n % 25 != 7:
            message_id = f"<letter{n}.{SEED}@qq.com>"
            headers.append(("Message-ID", message_id))
            ids.add(message_id)
        headers += [
            ("Content-Type", "text/plain; charset=gbk"),
            ("Content-Transfer-Encoding", "base64"),
        ]
        body = f"第{n}封来信：对审核结论提出{KINDS[n % 3]}。"
        letters.append(message(headers, b64(body.encode("gbk"))))
        senders.add(sender)
    return letters, senders, ids


def intake_env(database_url: str, data_dir: Path, mailbox: Mailbox) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IMAP_", "SMTP_"))}
    env.update(
        DATABASE_URL=database_url,
        DATA_DIR=str(data_dir),
        IMAP_HOST=mailbox.host,
        IMAP_PORT=str(mailbox.port),
        IMAP_SSL="false",
        IMAP_USER=mailbox.user,
        IMAP_PASSWORD=mailbox.password,
        MAIL_DOMAIN=DOMAIN,
        MAIL_FROM=f"certdesk@{DOMAIN}",
        STAFF_CHAT_ID="-100999",
        PYTHONPATH=str(ROOT),
    )
    return env


def folder_counts(mailbox: Mailbox) -> dict[str, int]:
    with mailbox.client() as client:
        return {
            folder: int(client.select_folder(folder, readonly=True)[b"EXISTS"])
            if client.folder_exists(folder)
            else 0
            for folder in ("INBOX", "Processed", "Quarantine")
        }


async def progressed(
    engine: AsyncEngine, process: subprocess.Popen[bytes], phase: str, target: int
) -> bool:
    """Wait until `target` letters are stored (or processed); False if the process ended first."""
    condition = [] if phase == "stored" else [InboundEmail.status != "stored"]
    while process.poll() is None:
        if await count(engine, InboundEmail, *condition) >= target:
            return True
        await asyncio.sleep(0.001)  # the intake runs in another process: poll its progress
    return False


async def count(engine: AsyncEngine, model: type, *where: object) -> int:
    async with session_factory(engine)() as session:
        query = select(func.count()).select_from(model)
        for condition in where:
            query = query.where(condition)  # type: ignore[arg-type]
        return int((await session.exec(query)).one())


async def test_sigkill_at_random_moments_loses_nothing_and_repeats_nothing(
    engine: AsyncEngine,
    database_url: str,
    data_dir: Path,
    mailbox: Mailbox,
    smtp_server: SmtpSink,
    tmp_path: Path,
) -> None:
    letters, senders, ids = batch_of(LETTERS)
    with mailbox.client() as client:
        client.multiappend("INBOX", letters)
    assert folder_counts(mailbox)["INBOX"] == LETTERS

    # Kill points: after a random number of letters stored (the kill then tends to land
    # before their cases are opened) or processed (it tends to land before the MOVE).
    rng = random.Random(SEED)
    targets = sorted(rng.sample(range(10, LETTERS - 10), KILLS))
    phases = [rng.choice(("stored", "processed")) for _ in targets]
    env = intake_env(database_url, data_dir, mailbox)
    kills, caught_stored, caught_unmoved = 0, 0, 0
    for _ in range(MAX_RUNS):
        process = subprocess.Popen(
            [sys.executable, "-m", "bot", "email", "fetch", "--once"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        if kills < KILLS and await progressed(engine, process, phases[kills], targets[kills]):
            process.kill()
            process.wait()
            assert process.stderr is not None
            process.stderr.close()
            kills += 1
            # What the kill interrupted: a letter stored but not acted upon, or a letter
            # processed but still in the inbox (killed between the commit and the MOVE).
            stored = await count(engine, InboundEmail, InboundEmail.status == "stored")
            done = await count(engine, InboundEmail, InboundEmail.status != "stored")
            moved = folder_counts(mailbox)["Processed"]
            caught_stored += stored > 0
            caught_unmoved += done > moved
            continue
        _, errors = process.communicate(timeout=FINISH_SECONDS)
        assert process.returncode == 0, errors.decode(errors="replace")
        if folder_counts(mailbox)["INBOX"] == 0:
            break
    else:
        pytest.fail(f"the inbox was not drained in {MAX_RUNS} runs")

    print(
        f"\n{kills} kills: {caught_stored} left a letter stored but not acted upon, "
        f"{caught_unmoved} a processed letter not yet moved"
    )
    assert kills == KILLS
    assert caught_stored >= 1 and caught_unmoved >= 1

    # Exactly one case per letter, one acknowledgement per case.
    assert folder_counts(mailbox) == {"INBOX": 0, "Processed": LETTERS, "Quarantine": 0}
    assert await count(engine, InboundEmail) == LETTERS
    assert await count(engine, InboundEmail, InboundEmail.status == "processed") == LETTERS
    assert await count(engine, Case) == LETTERS
    assert await count(engine, OutboxMessage, OutboxMessage.channel == "email") == LETTERS

    # And the acknowledgements reach the 500 writers, each once, each in its own thread.
    clock = FrozenClock(datetime.now(UTC))
    sender = SmtpSender(
        host=smtp_server.host,
        port=smtp_server.port,
        security="none",
        mail_from=f"certdesk@{DOMAIN}",
        mail_domain=DOMAIN,
        clock=clock,
    )
    try:
        stats = await Outbox(session_factory(engine), {"email": sender}, clock).drain(limit=500)
    finally:
        await sender.close()
    assert stats.sent == LETTERS
    received = await smtp_server.wait_for(LETTERS, timeout=30)
    assert sorted(m.rcpt_tos[0] for m in received) == sorted(senders)
    threaded = set()
    for mail in received:
        for line in mail.content.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
            if line.lower().startswith(b"in-reply-to:"):
                threaded.add(line.split(b":", 1)[1].strip().decode())
    assert threaded == ids
