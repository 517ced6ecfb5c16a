"""Certified organisations are reminded of their dates in their language; staff get the overdue."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import date, datetime, time, timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from bot.clock import SHANGHAI, FrozenClock
from bot.config import Settings
from bot.delivery.telegram import TelegramSender, telegram_sender
from bot.desk import Desk
from bot.emulator import Emulator
from bot.main.desk import open_desk
from bot.outbox.worker import Outbox, status_counts
from bot.scheduler.scans import Scans
from storage.models import (
    Certificate,
    Contact,
    Nonconformity,
    Organisation,
    OutboxMessage,
    Reminder,
)

STAFF_CHAT = -100888
ROOT = Path(__file__).resolve().parents[2]


def at(d: date, hh: int = 10) -> datetime:
    return datetime.combine(d, time(hh), SHANGHAI)


class World:
    def __init__(self, desk: Desk, clock: FrozenClock, sender: TelegramSender) -> None:
        self.desk, self.clock, self.sender = desk, clock, sender
        self.scans = Scans(desk)
        self.outbox = Outbox(desk.sessions, {"telegram": sender}, clock, staff_chat_id=STAFF_CHAT)

    async def tick(self, day: date, hh: int = 10) -> None:
        self.clock.set(at(day, hh))
        await self.scans.run_due()
        await self.outbox.drain()

    async def days(self, first: date, last: date) -> None:
        d = first
        while d <= last:
            await self.tick(d)
            d += timedelta(days=1)


@pytest.fixture
async def world(database_url: str, tmp_path: Path, emulator: Emulator) -> AsyncIterator[World]:
    clock = FrozenClock(at(date(2026, 8, 1)))
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=database_url,
        data_dir=tmp_path / "data",
        staff_chat_id=STAFF_CHAT,
    )
    desk = await open_desk(settings, clock)
    sender = telegram_sender(
        "123:TEST", base_url=emulator.base_url, private_interval=0, group_interval=0
    )
    await sender.bot.initialize()
    emulator.user(1, "Staff", chat_type="group", chat_id=STAFF_CHAT)
    try:
        yield World(desk, clock, sender)
    finally:
        await sender.bot.shutdown()
        await desk.close()


async def certified(w: World, emulator: Emulator, *, locale: str, chat: int) -> Certificate:
    emulator.user(chat, "Contact", language_code="en" if locale == "en" else "zh-hans")
    async with w.desk.sessions() as s, s.begin():
        org = Organisation(name="武汉示例有限公司", locale=locale)
        s.add(org)
        await s.flush()
        s.add(Contact(organisation_id=org.id, telegram_chat_id=chat, telegram_user_id=chat,
                      email=f"{chat}@example.test", locale=locale))  # fmt: skip
        cert = Certificate(
            number=f"GGBZ-{chat}",
            organisation_id=org.id,
            holder=org.name,
            standard="GB/T 39604-2020",
            decided_on=date(2026, 7, 10),
            stage2_end_on=date(2026, 6, 15),  # first surveillance due 2027-06-15
            expires_on=date(2029, 7, 9),
        )
        s.add(cert)
    return cert


async def test_reminders_at_90_60_30_7_days_in_the_organisations_language(
    world: World, emulator: Emulator
) -> None:
    w = world
    await certified(w, emulator, locale="zh_CN", chat=801)
    await certified(w, emulator, locale="en", chat=802)
    for day in (date(2027, 3, 17), date(2027, 4, 16), date(2027, 5, 17), date(2027, 6, 8)):
        await w.tick(day - timedelta(days=1))  # nothing the day before
        await w.tick(day)
        await w.tick(day, 16)  # nor twice on the day
    zh = [r.text for r in emulator.delivered(801)]
    en = [r.text for r in emulator.delivered(802)]
    assert len(zh) == len(en) == 4
    assert all("监督审核" in t and "2027-06-15" in t and "GGBZ §5.7.1" in t for t in zh)
    assert all("surveillance audit" in t and "What to do" in t for t in en)
    assert ["还有 90 天" in zh[0], "还有 7 天" in zh[3]] == [True, True]
    # The e-mail copies wait in the outbox (no SMTP sender in this test), one per reminder.
    counts = await status_counts(w.desk.sessions)
    assert counts["queued"] == 8


async def test_done_surveillance_cancels_its_reminders_and_overdue_goes_to_staff(
    world: World, emulator: Emulator
) -> None:
    w = world
    cert = await certified(w, emulator, locale="zh_CN", chat=803)
    await w.tick(date(2027, 3, 17))  # the 90-day reminder
    async with w.desk.sessions() as s, s.begin():
        row = await s.get(Certificate, cert.id)
        assert row is not None
        row.last_surveillance_on = date(2027, 4, 1)  # the audit took place
        s.add(Nonconformity(certificate_id=cert.id or 0, severity="minor",
                            raised_on=date(2027, 4, 1)))  # fmt: skip
    await w.days(date(2027, 4, 2), date(2027, 7, 5))
    texts = [r.text for r in emulator.delivered(803)]
    # One surveillance reminder before the audit, none after; the NC's closure instead.
    assert sum("监督审核" in t for t in texts) == 1
    nc = [t for t in texts if "不符合项关闭" in t]
    # At 90 days (planned late: sent at once), 60 (after the May holidays), 30 and 7.
    assert len(nc) == 4 and all("2027-06-30" in t for t in nc)
    staff = [r.text for r in emulator.delivered(STAFF_CHAT) if "获证组织期限已过" in r.text]
    assert len(staff) == 1 and "2027-06-30" in staff[0]


async def test_suspension_end_and_restoration_after_expiry(
    world: World, emulator: Emulator
) -> None:
    w = world
    cert = await certified(w, emulator, locale="en", chat=804)
    async with w.desk.sessions() as s, s.begin():
        row = await s.get(Certificate, cert.id)
        assert row is not None
        row.status, row.suspended_until = "suspended", date(2026, 12, 31)
    await w.tick(date(2026, 12, 24))
    (text,) = [r.text for r in emulator.delivered(804) if "suspension" in r.text]
    assert "2026-12-31" in text and "withdrawn" in text


def test_cli_plan_prints_the_upcoming_reminders(tmp_path: Path) -> None:
    env = {"DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    run = [sys.executable, "-m", "bot"]
    subprocess.run([*run, "db", "upgrade"], env={**env, "PYTHONPATH": str(ROOT)}, check=True,
                   capture_output=True, cwd=tmp_path)  # fmt: skip
    import sqlite3

    db = sqlite3.connect(tmp_path / "certdesk.db")
    db.execute("INSERT INTO certificate (number, holder, standard, status, decided_on, "
               "stage2_end_on, expires_on, updated_at) VALUES ('GGBZ-9', 'X', 'S', 'valid', "
               "'2036-07-10', '2036-06-15', '2039-07-09', '2026-01-01 00:00:00')")  # fmt: skip
    db.commit()
    db.close()
    out = subprocess.run(
        [*run, "reminders", "plan", "--certificate", "GGBZ-9", "--json"],
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert [r["lead_days"] for r in rows[:5]] == [90, 60, 30, 7, 0]
    assert rows[0]["rule"] == "surveillance.first" and rows[0]["due_on"].startswith("2037-06")
    missing = subprocess.run(
        [*run, "reminders", "plan", "--certificate", "NOPE"],
        env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1


async def test_outbox_rows_carry_their_keys(world: World, emulator: Emulator) -> None:
    w = world
    await certified(w, emulator, locale="zh_CN", chat=805)
    await w.tick(date(2027, 3, 17))
    await w.tick(date(2027, 3, 17), 15)
    from sqlmodel import select

    async with w.desk.sessions() as s:
        keys = [m.idempotency_key for m in (await s.exec(select(OutboxMessage))).all()]
    reminder_keys = [k for k in keys if k.startswith("reminder:")]
    assert len(reminder_keys) == 2  # Telegram and e-mail, once each


# --- change notifications (handlers/telegram/changes.py) ----------------------------------------


async def test_certified_contact_reports_an_accident_and_staff_get_it_urgent(
    world: World, emulator: Emulator
) -> None:
    from bot.emulator import bot_builder, run_app
    from bot.main.app import build_application

    w = world
    w.desk.settings.flood_max_updates = 1000
    user = emulator.user(806, "Contact")
    await certified(w, emulator, locale="zh_CN", chat=806)
    stranger = emulator.user(807, "Stranger")
    app = build_application(
        w.desk,
        bot_builder(emulator),
        modules=["handlers.telegram.common", "handlers.telegram.changes"],
    )
    async with run_app(app):
        await stranger.send("/change")
        assert "只有获证组织的联系人" in (await stranger.next_reply()).text
        await user.send("/change")
        ask = await user.next_reply()
        assert "变更或情况" in ask.text and "重大事故" in ask.buttons
        await user.press("重大事故")
        rule = await user.next_reply()
        assert "及时通报" in rule.text and "§5.7.6" in rule.text  # GGBZ's word, with its source
        await user.send("2027年3月1日车间起火，无人员伤亡，已停产整改。")
        assert "已收到您的变更通报" in (await user.next_reply()).text
        await user.send("/change")
        await user.next_reply()
        await user.press("地址或工作场所变更")
        await user.next_reply()
        await user.send("新地址：武汉市东湖高新区光谷大道1号")
        await user.next_reply()
    await w.outbox.drain()
    staff = [r.text for r in emulator.delivered(STAFF_CHAT)]
    assert len(staff) == 2
    assert "紧急" in staff[0] and "重大事故" in staff[0] and "GGBZ-806" in staff[0]
    assert "地址或工作场所变更" in staff[1] and "光谷大道" in staff[1]


async def test_planning_in_pages_plans_every_certificate_its_own_dates(
    world: World, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pages of two certificates; three share their dates (planned once, stored for each); the
    one with an open nonconformity alone gets its closure reminders."""
    import bot.scheduler.scans as scans_module

    monkeypatch.setattr(scans_module, "PLAN_PAGE", 2)
    w = world
    certs = [await certified(w, emulator, locale="zh_CN", chat=810 + k) for k in range(5)]
    async with w.desk.sessions() as s, s.begin():
        late = await s.get(Certificate, certs[4].id)
        assert late is not None
        late.decided_on, late.expires_on = date(2026, 3, 2), date(2029, 3, 1)
        s.add(Nonconformity(certificate_id=certs[3].id or 0, severity="minor",
                            raised_on=date(2026, 7, 20)))  # fmt: skip
    planned = await w.scans.plan_reminders(force=True)
    assert await w.scans.plan_reminders(force=True) == 0  # nothing twice
    async with w.desk.sessions() as s:
        rows = (await s.exec(select(Reminder))).all()
    per_cert = {c.id: sorted((r.rule_id, r.due_on, r.lead_days) for r in rows
                             if r.certificate_id == c.id) for c in certs}  # fmt: skip
    assert planned == len(rows) and all(per_cert.values())
    assert per_cert[certs[0].id] == per_cert[certs[1].id] == per_cert[certs[2].id]
    nc = [r for r in per_cert[certs[3].id] if r[0].startswith("nc.")]
    assert nc and not [r for c in certs if c is not certs[3] for r in per_cert[c.id]
                       if r[0].startswith("nc.")]  # fmt: skip
    assert per_cert[certs[4].id] != per_cert[certs[0].id]  # its own, earlier dates
