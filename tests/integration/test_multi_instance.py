"""Two bot processes on one PostgreSQL database for a simulated month: every reminder and alert is
delivered exactly once, counted at the Bot API emulator and at the SMTP server.

The same module is the instance: `python -m tests.integration.test_multi_instance CONFIG` runs the
scans and the outbox over the simulated days with its own Desk and a frozen clock it moves.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections import Counter
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.clock import SHANGHAI, FrozenClock
from bot.emulator import Emulator
from tests.fixtures.mail import SmtpSink

STAFF_CHAT = -100555
ESCALATION_TO = "director@example.test"
FIRST, LAST = date(2026, 10, 26), date(2026, 11, 27)  # a simulated month
TICKS = (time(8, 30), time(9, 5), time(14, 0))  # before hours, morning, afternoon
ROOT = Path(__file__).resolve().parents[2]


# --- the instance (a child process) ---------------------------------------------------------------


async def run_instance(config: dict[str, Any]) -> dict[str, int]:
    from bot.config import Settings
    from bot.delivery.smtp import SmtpSender
    from bot.delivery.telegram import telegram_sender
    from bot.main.desk import open_desk
    from bot.outbox.worker import Outbox
    from bot.scheduler.scans import Scans

    clock = FrozenClock(datetime.combine(FIRST, TICKS[0], SHANGHAI))
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=config["database_url"],
        data_dir=Path(config["data_dir"]),
        staff_chat_id=STAFF_CHAT,
        escalation_emails=[ESCALATION_TO],
    )
    desk = await open_desk(settings, clock)
    tg = telegram_sender(
        "123:TEST", base_url=config["telegram"], private_interval=0, group_interval=0
    )
    await tg.bot.initialize()
    smtp = SmtpSender(
        host="127.0.0.1",
        port=config["smtp_port"],
        security="none",
        mail_from=settings.mail_from,
        mail_domain=settings.mail_domain,
        clock=clock,
    )
    outbox = Outbox(
        desk.sessions,
        {"telegram": tg, "email": smtp},
        clock,
        worker_id=config["worker"],
        staff_chat_id=STAFF_CHAT,
    )
    scans = Scans(desk)
    done = Counter[str]()
    loop = asyncio.get_running_loop()
    try:
        # The parent moves both instances' clocks together (real instances share real time):
        # one instant per line on stdin, answered "ok" once this instance has acted on it.
        while (line := (await loop.run_in_executor(None, sys.stdin.readline)).strip()) != "end":
            clock.set(datetime.fromisoformat(line))
            stats = await scans.run_due()
            done["alerts"] += stats.alerts
            done["reminders"] += stats.reminders
            done["digests"] += stats.digests
            done["sent"] += (await outbox.drain(limit=20)).sent
            print("ok", flush=True)
    finally:
        await tg.bot.shutdown()
        await smtp.close()
        await desk.close()
    return dict(done)


if __name__ == "__main__":
    print(json.dumps(asyncio.run(run_instance(json.loads(sys.argv[1])))))
    sys.exit(0)


# --- the test ------------------------------------------------------------------------------------

pytestmark = pytest.mark.postgres


async def seed(database_url: str, data_dir: Path) -> dict[str, int]:
    """Three certified organisations with dates in the month, and complaints crossing it."""
    from bot.config import Settings
    from bot.main.desk import open_desk
    from bot.services.cases import Complainant, open_case
    from storage.models import Certificate, Contact, Nonconformity, Organisation
    from storage.unit_of_work import UnitOfWork

    clock = FrozenClock(datetime.combine(date(2026, 9, 1), time(10), SHANGHAI))
    desk = await open_desk(
        Settings(_env_file=None, database_url=database_url, data_dir=data_dir),  # type: ignore[call-arg]
        clock,
    )
    chats: dict[str, int] = {}
    try:
        async with UnitOfWork(desk.sessions) as uow:
            s = uow.session
            for i, (locale, stage2) in enumerate(
                [
                    ("zh_CN", date(2025, 11, 20)),
                    ("en", date(2025, 12, 1)),
                    ("zh_CN", date(2025, 11, 3)),
                ]
            ):
                org = Organisation(name=f"Org {i}", locale=locale)
                s.add(org)
                await s.flush()
                s.add(Contact(organisation_id=org.id, telegram_user_id=7000 + i,
                              telegram_chat_id=7000 + i, email=f"org{i}@example.test",
                              locale=locale))  # fmt: skip
                cert = Certificate(
                    number=f"GGBZ-{i:04}",
                    organisation_id=org.id,
                    holder=org.name,
                    standard="GB/T 39604-2020",
                    decided_on=stage2 + timedelta(days=20),
                    stage2_end_on=stage2,
                    expires_on=stage2 + timedelta(days=1095),
                )
                s.add(cert)
                await s.flush()
                s.add(Nonconformity(certificate_id=cert.id, severity="minor",
                                    raised_on=date(2026, 9, 1)))  # fmt: skip
                chats[f"org{i}"] = 7000 + i
            for received in (date(2026, 9, 28), date(2026, 10, 12), date(2026, 10, 20)):
                await open_case(
                    desk, uow, kind="complaint", channel="email",
                    complainant=Complainant(name="投诉人", email=f"c{received.day}@example.test"),
                    subject="投诉", description="投诉内容", received_on=received,
                )  # fmt: skip
    finally:
        await desk.close()
    return chats


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)],
                         indirect=True)  # fmt: skip
async def test_two_instances_deliver_everything_exactly_once(
    database_url: str, tmp_path: Path, emulator: Emulator, smtp_server: SmtpSink
) -> None:
    chats = await seed(database_url, tmp_path / "data")
    for name, chat in chats.items():
        emulator.user(chat, name)
    emulator.user(1, "Staff", chat_type="group", chat_id=STAFF_CHAT)

    async def start(worker: str) -> asyncio.subprocess.Process:
        config = {
            "database_url": database_url,
            "data_dir": str(tmp_path / "data"),
            "telegram": emulator.base_url,
            "smtp_port": smtp_server.port,
            "worker": worker,
        }
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.integration.test_multi_instance", json.dumps(config),
            cwd=ROOT, env={**os.environ, "PTB_TIMEDELTA": "true"},
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip

    async def tell(proc: asyncio.subprocess.Process, line: str) -> str:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(f"{line}\n".encode())
        await proc.stdin.drain()
        if line == "end":
            out, err = await proc.communicate()
            assert proc.returncode == 0, err.decode()[-3000:]
            return out.decode().strip().splitlines()[-1]
        answer = (await proc.stdout.readline()).decode().strip()
        if answer != "ok":
            _, err = await proc.communicate()
            raise AssertionError(err.decode()[-3000:])
        return answer

    procs = [await start("a"), await start("b")]
    day = FIRST
    while day <= LAST:
        for tick in TICKS:
            instant = datetime.combine(day, tick, SHANGHAI).isoformat()
            await asyncio.gather(*(tell(p, instant) for p in procs))
        day += timedelta(days=1)
    a, b = [json.loads(r) for r in await asyncio.gather(*(tell(p, "end") for p in procs))]

    from sqlmodel import select

    from bot.outbox.worker import status_counts
    from storage.db import make_engine, session_factory
    from storage.models import OutboxMessage

    engine = make_engine(database_url)
    try:
        sessions = session_factory(engine)
        counts = await status_counts(sessions)
        async with sessions() as s:
            rows = (await s.exec(select(OutboxMessage))).all()
    finally:
        await engine.dispose()
    # The seeding desk has no staff chat: its new-case alerts were kept on the `staff` channel,
    # then routed by the instances to their staff chat; everything went out.
    held = [r for r in rows if r.channel == "staff"]
    assert held and all(r.status == "sent" for r in held)
    assert counts["queued"] == 0
    assert counts["retrying"] == counts["sending"] == counts["failed"] == 0
    rows = [r for r in rows if r.channel != "staff"]

    # Telegram: each queued message reached its chat once; no text twice in one chat.
    tg_rows = [r for r in rows if r.channel == "telegram"]
    delivered = [
        (c.params["chat_id"], c.params["text"]) for c in emulator.calls("sendMessage") if c.ok
    ]
    assert len(delivered) == len(tg_rows)
    assert not [k for k, n in Counter(delivered).items() if n > 1]
    # E-mail: each queued letter arrived once (Message-IDs unique).
    mail_rows = [r for r in rows if r.channel == "email"]
    await smtp_server.wait_for(len(mail_rows))
    assert len(smtp_server.received) == len(mail_rows)
    ids = [m.content.split(b"Message-ID:", 1)[1].split(b"\r\n", 1)[0] for m in smtp_server.received]
    assert len(set(ids)) == len(ids)

    staff = [t for chat, t in delivered if chat == STAFF_CHAT]
    kinds = Counter(t.split(" ", 1)[0] for t in staff)
    assert (
        kinds["⏰"] >= 3 and kinds["🚨"] >= 3 and kinds["📋"] >= 20
    )  # warnings, escalations, digests
    to_orgs = [t for chat, t in delivered if chat in chats.values()]
    assert len(to_orgs) >= 6 and all("依据" in t or "Clause" in t for t in to_orgs)
    # Both instances did part of the work: the exactly-once above held under contention.
    assert a["sent"] > 0 and b["sent"] > 0
    assert a["sent"] + b["sent"] == len(rows)
