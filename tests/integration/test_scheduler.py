"""Time travel: staff are warned before a case deadline and escalated to after it, on the right
working days, through the real outbox to the Bot API emulator and an SMTP server."""

from __future__ import annotations

import asyncio
import os
import select
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from email import message_from_bytes
from email.policy import default
from pathlib import Path
from time import monotonic
from time import time as wall_time

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.clock import SHANGHAI, FrozenClock
from bot.config import Settings
from bot.delivery.smtp import SmtpSender
from bot.delivery.telegram import TelegramSender, telegram_sender
from bot.desk import Desk
from bot.emulator import Emulator
from bot.main.desk import open_desk
from bot.outbox.worker import Outbox, status_counts
from bot.scheduler.calendar_watch import CalendarWatch
from bot.scheduler.jobs import shutdown, start_scheduler
from bot.scheduler.scans import Scans
from bot.scheduler.steady import Watchdog
from bot.services.cases import Complainant, open_case
from storage.models import Deadline, OutboxMessage
from storage.repo.outbox import enqueue
from storage.unit_of_work import UnitOfWork
from tests.fixtures.mail import SmtpSink

STAFF_CHAT = -1009001
ESCALATION_TO = "director@example.test"
ROOT = Path(__file__).resolve().parents[2]


def at(d: date, hh: int, mm: int = 0) -> datetime:
    return datetime.combine(d, time(hh, mm), SHANGHAI)


@dataclass
class World:
    desk: Desk
    clock: FrozenClock
    scans: Scans
    outbox: Outbox
    emulator: Emulator
    sender: TelegramSender


async def make_world(
    database_url: str, tmp_path: Path, emulator: Emulator, start: datetime, **settings: object
) -> World:
    clock = FrozenClock(start)
    desk = await open_desk(
        Settings(
            _env_file=None,  # type: ignore[call-arg]
            database_url=database_url,
            data_dir=tmp_path / "data",
            staff_chat_id=STAFF_CHAT,
            escalation_emails=[ESCALATION_TO],
            **settings,
        ),
        clock,
    )
    emulator.user(9001, "Staff", chat_type="group", chat_id=STAFF_CHAT)
    # Pacing is tested in test_delivery_telegram; here it would only slow time travel down.
    sender = telegram_sender(
        "123:TEST", base_url=emulator.base_url, private_interval=0, group_interval=0
    )
    await sender.bot.initialize()
    outbox = Outbox(desk.sessions, {"telegram": sender}, clock, staff_chat_id=STAFF_CHAT)
    return World(desk, clock, Scans(desk), outbox, emulator, sender)


@pytest.fixture
async def world(database_url: str, tmp_path: Path, emulator: Emulator) -> AsyncIterator[World]:
    w = await make_world(database_url, tmp_path, emulator, at(date(2026, 9, 28), 10))
    try:
        yield w
    finally:
        await w.sender.bot.shutdown()
        await w.desk.close()


async def open_complaint(w: World, received: date) -> str:
    async with UnitOfWork(w.desk.sessions) as uow:
        opened = await open_case(
            w.desk,
            uow,
            kind="complaint",
            channel="email",
            complainant=Complainant(name="王女士", email="wang@example.test"),
            subject="审核员态度问题",
            description="审核过程中审核员态度恶劣。",
            received_on=received,
        )
    return opened.ref


def staff_texts(w: World) -> list[str]:
    return [r.text for r in w.emulator.delivered(STAFF_CHAT)]


async def travel(
    w: World, first: date, last: date, hours: tuple[int, ...]
) -> dict[date, list[str]]:
    """Tick the scans and the outbox at `hours` of every day; what staff got, by day."""
    seen = len(staff_texts(w))
    by_day: dict[date, list[str]] = {}
    day = first
    while day <= last:
        for hh in hours:
            w.clock.set(at(day, hh))
            await w.scans.deadline_alerts()
            await w.outbox.drain()
        texts = staff_texts(w)
        if len(texts) > seen:
            by_day[day] = texts[seen:]
            seen = len(texts)
        day += timedelta(days=1)
    return by_day


def alerts_only(by_day: dict[date, list[str]], ref: str) -> dict[date, list[str]]:
    marks = ("期限提醒", "今日到期", "期限已逾期", "仍然逾期")
    out = {
        d: [t for t in ts if ref in t and any(m in t for m in marks)] for d, ts in by_day.items()
    }
    return {d: ts for d, ts in out.items() if ts}


async def test_complaint_across_national_day_warns_then_escalates(
    world: World, smtp_server: SmtpSink
) -> None:
    w = world
    s = w.desk.settings
    w.outbox.senders = {
        **w.outbox.senders,
        "email": SmtpSender(host=smtp_server.host, port=smtp_server.port, security="none",
                            mail_from=s.mail_from, mail_domain=s.mail_domain, clock=w.clock),
    }  # fmt: skip
    ref = await open_complaint(w, date(2026, 9, 28))
    # 30 working days after 2026-09-28 skip the National Day break: due Friday 2026-11-13.
    by_day = alerts_only(
        await travel(w, date(2026, 9, 28), date(2026, 11, 18), (8, 9, 14, 23)), ref
    )
    investigation = {d: [t for t in ts if "投诉调查完成" in t] for d, ts in by_day.items()}
    investigation = {d: ts for d, ts in investigation.items() if ts}
    assert list(investigation) == [
        date(2026, 11, 10),  # 3 working days before
        date(2026, 11, 13),  # the morning of the due day
        date(2026, 11, 16),  # escalation: Monday, the first working day after the breach
        date(2026, 11, 17),  # still overdue, each working morning
        date(2026, 11, 18),
    ]
    assert all(len(ts) == 1 for ts in investigation.values())
    assert "期限提醒" in investigation[date(2026, 11, 10)][0]
    assert "2026-11-13" in investigation[date(2026, 11, 10)][0]
    assert "期限已逾期" in investigation[date(2026, 11, 16)][0]
    assert "GGBZ §8.5.3" in investigation[date(2026, 11, 16)][0]
    # The escalation e-mails went to ESCALATION_EMAILS: at breach and each overdue morning.
    # (The complainant's acknowledgement is the other e-mail.)
    await smtp_server.wait_for(4)
    escalations = [m for m in smtp_server.received if m.rcpt_tos == [ESCALATION_TO]]
    assert len(escalations) == 3


async def test_breach_found_at_night_is_sent_at_nine(world: World) -> None:
    w = world
    ref = await open_complaint(w, date(2026, 9, 28))
    w.clock.set(at(date(2026, 11, 15), 23))  # Sunday night, already breached
    assert await w.scans.deadline_alerts() == 0
    w.clock.set(at(date(2026, 11, 16), 8, 59))
    assert await w.scans.deadline_alerts() == 0
    w.clock.set(at(date(2026, 11, 16), 9, 0))
    assert await w.scans.deadline_alerts() >= 1
    await w.outbox.drain()
    assert any(ref in t and "期限已逾期" in t for t in staff_texts(w))


async def test_restart_sends_nothing_twice(world: World, tmp_path: Path) -> None:
    w = world
    await open_complaint(w, date(2026, 9, 28))
    w.clock.set(at(date(2026, 11, 16), 10))
    first = await w.scans.deadline_alerts()
    await w.outbox.drain()
    # A new instance (fresh memory, same database) at the same instant: nothing more.
    again = Scans(w.desk)
    assert first >= 1 and await again.deadline_alerts() == 0
    assert (await again.run_due()).alerts == 0
    await w.outbox.drain()
    texts = staff_texts(w)
    assert len(texts) == len(set(texts))


async def test_daily_digest_lists_due_overdue_and_provisional(world: World) -> None:
    w = world
    ref = await open_complaint(w, date(2026, 9, 28))
    late = await open_complaint(w, date(2026, 12, 15))  # 60 days → 2027: provisional
    w.clock.set(at(date(2026, 11, 16), 9, 5))
    assert await w.scans.daily_digest() == 1
    assert await w.scans.daily_digest() == 0  # once a day
    assert await Scans(w.desk).daily_digest() == 1  # another instance composes…
    await w.outbox.drain()
    digests = [t for t in staff_texts(w) if t.startswith("📋")]
    assert len(digests) == 1  # …but the day's digest is queued once
    text = digests[0]
    assert "已逾期" in text and ref in text
    assert late in text and "2027" in text and "CALENDAR_OVERRIDES" in text


async def test_override_file_with_the_year_recomputes_and_tells_staff(
    world: World, tmp_path: Path
) -> None:
    w = world
    await open_complaint(w, date(2026, 12, 15))
    async with w.desk.sessions() as session:
        from sqlmodel import select

        rows = (await session.exec(select(Deadline).where(Deadline.provisional))).all()
    assert rows, "a 2027 deadline is provisional before the schedule is known"
    overrides = tmp_path / "holidays.toml"
    w.desk.settings.calendar_overrides = overrides
    watch = CalendarWatch(w.desk)
    # The deployer adds 2027 with Spring Festival rest days reaching the due date.
    due = rows[0].due_on
    rest = [date(2027, 1, 1)] + [due + timedelta(days=i) for i in range(0, 3)]
    overrides.write_text("[2027]\nrest = [" + ", ".join(f'"{d}"' for d in rest) + "]\nwork = []\n")
    result = await watch.check()
    assert result is not None and result.moved
    assert result.moved[0].old == due and result.moved[0].new > due
    await w.outbox.drain()
    told = [t for t in staff_texts(w) if t.startswith("📅")]
    assert len(told) == 1 and f"{due} → {result.moved[0].new}" in told[0]
    assert "投诉调查完成" in told[0]
    assert await watch.check() is not None  # nothing provisional left: nothing told again
    await w.outbox.drain()
    assert len([t for t in staff_texts(w) if t.startswith("📅")]) == 1


async def test_start_scheduler_runs_scans_and_drains_the_outbox(world: World) -> None:
    w = world
    await open_complaint(w, date(2026, 9, 28))
    w.clock.set(at(date(2026, 11, 16), 10))
    scheduler = start_scheduler(w.desk, w.outbox, scan_seconds=3600, drain_seconds=0.05)
    try:
        assert isinstance(scheduler, AsyncIOScheduler)
        assert str(scheduler.timezone) == "Asia/Shanghai"
        for job in scheduler.get_jobs():
            assert job.misfire_grace_time is None and job.coalesce
        assert await w.emulator.wait_for(
            lambda: any("期限已逾期" in t for t in staff_texts(w)), timeout=10
        )
    finally:
        await shutdown(scheduler)
        await asyncio.sleep(0)  # let the scheduler's wake-up task end on this loop


async def test_smtp_down_for_a_while_then_back_delivers_each_escalation_once(
    world: World,
) -> None:
    from aiosmtpd.controller import Controller

    from tests.fixtures.mail import HOST, free_port

    w, port = world, free_port()
    sink = SmtpSink(HOST, port)
    s = w.desk.settings
    smtp = SmtpSender(host=HOST, port=port, security="none", mail_from=s.mail_from,
                      mail_domain=s.mail_domain, clock=w.clock, timeout=2)  # fmt: skip
    w.outbox.senders = {**w.outbox.senders, "email": smtp}
    refs = [await open_complaint(w, date(2026, 9, 28)) for _ in range(3)]
    w.clock.set(at(date(2026, 11, 16), 10))
    assert await w.scans.deadline_alerts() == 3  # one escalation per case
    for _ in range(3):  # the server is down: every attempt fails, nothing is lost
        stats = await w.outbox.drain()
        assert stats.sent == 0 or all("SMTP" in e for e in stats.errors)
        w.clock.advance(minutes=20)
    controller = Controller(sink, hostname=HOST, port=port)
    controller.start()
    try:
        w.clock.advance(hours=3)  # past the longest backoff so far
        await w.outbox.drain()
        mails = await sink.wait_for(6)  # three acknowledgements, three escalations
    finally:
        controller.stop()
        await smtp.close()
    escalations = [m for m in mails if m.rcpt_tos == [ESCALATION_TO]]
    assert len(escalations) == 3 and len(sink.received) == 6
    subjects = [message_from_bytes(m.content, policy=default)["Subject"] for m in escalations]
    assert sorted(r for r in refs for subj in subjects if r in subj) == sorted(refs)
    counts = await status_counts(w.outbox.sessions)
    assert counts["failed"] == 0 and counts["queued"] == 0


async def test_recomputed_dates_are_kept_for_staff_when_no_staff_chat_is_set(
    world: World, tmp_path: Path
) -> None:
    w = world
    await open_complaint(w, date(2026, 12, 15))
    async with w.desk.sessions() as session:
        from sqlmodel import select

        row = (await session.exec(select(Deadline).where(Deadline.provisional))).first()
    assert row is not None
    w.desk.settings.staff_chat_id = None
    overrides = tmp_path / "holidays.toml"
    w.desk.settings.calendar_overrides = overrides
    watch = CalendarWatch(w.desk)
    rest = [date(2027, 1, 1)] + [row.due_on + timedelta(days=i) for i in range(0, 3)]
    overrides.write_text("[2027]\nrest = [" + ", ".join(f'"{d}"' for d in rest) + "]\nwork = []\n")
    result = await watch.check()
    assert result is not None and result.moved
    async with w.desk.sessions() as session:
        from sqlmodel import select

        kept = (
            await session.exec(select(OutboxMessage).where(OutboxMessage.channel == "staff"))
        ).all()
    moved = result.moved[0]
    assert [m for m in kept if f"{moved.old} → <b>{moved.new}</b>" in m.payload["text"]]


# --- wall-clock steps and stalls --------------------------------------------------------------

LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")

# A service process: the real scheduler on a SQLite desk, printing the wall clock at each drain.
STEP_CHILD = """
import asyncio, sys, time
from bot.config import Settings
from bot.main.desk import open_desk
from bot.outbox.worker import Outbox
from bot.scheduler.jobs import shutdown, start_scheduler
from storage.db import upgrade_async

async def main(url, data):
    await upgrade_async(url)
    desk = await open_desk(Settings(_env_file=None, database_url=url, data_dir=data))
    outbox = Outbox(desk.sessions, {}, desk.clock)
    drain = outbox.drain
    async def counted():
        print("drain", time.time(), flush=True)
        return await drain()
    outbox.drain = counted
    scheduler = start_scheduler(desk, outbox, drain_seconds=0.2, watch_seconds=0.5)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    await shutdown(scheduler)
    await desk.close()

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def _drains(child: subprocess.Popen[str], n: int, timeout: float) -> list[float]:
    """The wall-clock times of the child's next `n` drains; fails after `timeout` seconds."""
    assert child.stdout is not None
    seen: list[float] = []
    deadline = monotonic() + timeout
    while len(seen) < n:
        left = deadline - monotonic()
        ready, _, _ = select.select([child.stdout], [], [], max(left, 0))
        assert ready, f"only {len(seen)} of {n} drains within {timeout} s"
        line = child.stdout.readline()
        assert line, "the service exited"
        if line.startswith("drain "):
            seen.append(float(line.split()[1]))
    return seen


def test_a_real_backward_clock_step_does_not_stall_the_outbox(tmp_path: Path) -> None:
    """libfaketime steps the service's wall clock back 1 hour (its monotonic clock runs on):
    the outbox is drained on, every 0.2 s, not an hour later."""
    assert LIBFAKETIME.exists(), "install faketime (make system-deps) for this test"
    offset = tmp_path / "faketime"
    offset.write_text("+0\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAKETIME")}
    env.update(
        LD_PRELOAD=str(LIBFAKETIME),
        FAKETIME_TIMESTAMP_FILE=str(offset),
        FAKETIME_NO_CACHE="1",
        FAKETIME_DONT_FAKE_MONOTONIC="1",
        PYTHONPATH=str(ROOT),
    )
    url = f"sqlite+aiosqlite:///{tmp_path / 'step.db'}"
    child = subprocess.Popen(
        [sys.executable, "-c", STEP_CHILD, url, str(tmp_path / "data")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        before = _drains(child, 3, timeout=60)
        offset.write_text("-3600\n")  # the step
        after = _drains(child, 10, timeout=15)
        assert after[-1] < before[-1] - 3000  # the child did see the clock go back
    finally:
        assert child.stdin is not None
        child.stdin.write("\n")
        child.stdin.flush()
        _, err = child.communicate(timeout=30)
    assert child.returncode == 0, err
    assert "the wall clock stepped back by 3600 s" in err


async def test_a_step_back_moves_the_jobs_and_the_messages_queued_before_it(
    world: World,
) -> None:
    """With the injectable wall clock: a message queued just before a step back of 1 hour (due
    an hour ahead on the new timeline) is delivered at once, and the jobs' next runs move back."""
    w = world
    async with w.desk.sessions() as session, session.begin():
        await enqueue(
            session,
            channel="telegram",
            recipient=str(STAFF_CHAT),
            payload={"text": "queued before the step"},
            idempotency_key="before-step",
            now=w.clock.now() + timedelta(minutes=59),  # the old timeline
        )
    shift = [0.0]
    scheduler = start_scheduler(
        w.desk,
        w.outbox,
        drain_seconds=0.05,
        watch_seconds=3600,
        wall=lambda: wall_time() + shift[0],
    )
    try:
        job = scheduler.get_job("scans")
        assert job is not None
        planned = job.next_run_time
        shift[0] = -3600.0
        assert scheduler.follow_steps() == pytest.approx(-3600.0, abs=1)
        assert job.next_run_time is not None and planned is not None
        moved = scheduler.get_job("scans")
        assert moved is not None and moved.next_run_time < planned - timedelta(minutes=59)
        assert await w.emulator.wait_for(
            lambda: "queued before the step" in staff_texts(w), timeout=10
        )
        assert scheduler.follow_steps() == 0.0  # one step, moved once
    finally:
        await shutdown(scheduler)


async def test_a_job_left_on_the_old_timeline_is_started_at_the_next_look(world: World) -> None:
    """A step between two clock reads of one scheduling round leaves the outbox job an hour
    away with no step left to see: the watchdog's next look starts it, and only it."""
    w = world
    scheduler = start_scheduler(w.desk, w.outbox, drain_seconds=0.05, watch_seconds=3600)
    try:
        assert await scheduler.wait_for(lambda: "outbox" in scheduler.last_start, timeout=10)
        parked = datetime.now(scheduler.timezone) + timedelta(hours=1)
        job = scheduler.get_job("outbox")
        assert job is not None
        job.modify(next_run_time=parked)  # what the torn round leaves behind
        assert await scheduler.wait_for(lambda: not scheduler.running_since, timeout=10)
        parked_at = monotonic()
        watchdog = Watchdog(w.desk, scheduler)
        assert await watchdog.check() == []  # not stalled: 60 s have not passed
        assert await scheduler.wait_for(
            lambda: scheduler.last_start["outbox"] > parked_at, timeout=10
        )
        job = scheduler.get_job("outbox")
        assert job is not None and job.next_run_time < parked - timedelta(minutes=59)
        assert scheduler.keep_pace() == []  # the scans (every 60 s) were never moved
    finally:
        await shutdown(scheduler)


async def test_a_stalled_job_is_reported_to_staff_once_and_started_again(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """With the injectable clocks: 4 hours pass with no job started (every 1 hour
    expected): each is logged as an error, staff are told once, and the jobs start again."""
    w = world
    ahead = [0.0]
    scheduler = start_scheduler(
        w.desk,
        w.outbox,
        scan_seconds=3600,
        drain_seconds=3600,
        calendar_seconds=3600,
        watch_seconds=3600,
        monotonic=lambda: monotonic() + ahead[0],
        wall=lambda: wall_time() + ahead[0],  # time passes on both clocks: no step
    )
    try:
        assert await scheduler.wait_for(lambda: len(scheduler.last_start) == 3, timeout=10)
        assert await scheduler.wait_for(lambda: not scheduler.running_since, timeout=10)
        watchdog = Watchdog(w.desk, scheduler)
        assert await watchdog.check() == []
        ahead[0] = 4 * 3600.0
        kicked_at = monotonic() + ahead[0]
        assert sorted(await watchdog.check()) == ["calendar", "outbox", "scans"]
        await watchdog.check()  # stalled still, or running again: told once either way
        errors = [
            r for r in caplog.records if r.levelname == "ERROR" and "not started" in r.getMessage()
        ]
        assert len(errors) == 3
        # The kick: the outbox job runs again, and delivers the staff alerts.
        assert await w.emulator.wait_for(
            lambda: sum("定时任务" in t for t in staff_texts(w)) == 3, timeout=10
        )
        assert any("“outbox”已 240 分钟未运行" in t for t in staff_texts(w))
        assert await scheduler.wait_for(
            lambda: (
                all(v >= kicked_at for v in scheduler.last_start.values())
                and not scheduler.running_since
            ),
            timeout=10,
        )
        assert await watchdog.check() == []
        assert not watchdog.reported
    finally:
        await shutdown(scheduler)
