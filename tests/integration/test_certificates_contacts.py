"""Certificates reach their holders: the import makes the holder an organisation with e-mail
contacts, a one-time code links a Telegram contact, reminders go by Telegram and e-mail, a
reminder with nobody to receive it alerts staff and is not "sent", linked contacts report
changes, and a suspension is notified and its end put to staff (2026 calendar)."""

from __future__ import annotations

import email
import email.policy
from collections.abc import AsyncIterator
from datetime import date, datetime, time, timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from bot.clock import SHANGHAI, FrozenClock
from bot.config import Settings
from bot.delivery.smtp import SmtpSender
from bot.delivery.telegram import TelegramSender, telegram_sender
from bot.desk import Desk
from bot.emulator import Emulator, bot_builder, run_app
from bot.main.app import build_application
from bot.main.desk import open_desk
from bot.outbox.worker import Outbox
from bot.scheduler.scans import Scans
from bot.services import contacts
from bot.services.certificates import import_csv
from bot.services.contacts import issue_link_code
from storage.models import ChangeReport, Contact, Organisation, OutboxMessage, Reminder
from storage.unit_of_work import UnitOfWork
from tests.fixtures.mail import SmtpSink

STAFF_CHAT = -100777
HEADER = (
    "number,holder,standard,decided_on,expires_on,stage2_end_on,status,suspended_on,"
    "suspension_months,uscc,contact_emails\n"
)
# First surveillance 12 months after the stage-2 end: Friday 2026-11-20; the 30-day reminder
# goes on Wednesday 2026-10-21 (the 90- and 60-day ones fell before the import).
ROW = (
    "GGBZ-701,武汉示例有限公司,GB/T 39604-2020,2025-12-01,2028-11-30,2025-11-20,,,,{uscc},{mail}\n"
)
USCC = "91110000600037341L"


def at(d: date, hh: int = 10) -> datetime:
    return datetime.combine(d, time(hh), SHANGHAI)


class World:
    def __init__(self, desk: Desk, clock: FrozenClock, tg: TelegramSender, smtp: SmtpSink) -> None:
        self.desk, self.clock, self.smtp = desk, clock, smtp
        self.scans = Scans(desk)
        mail = SmtpSender(host=smtp.host, port=smtp.port, security="none",
                          mail_from="certdesk@desk.example.test", mail_domain="desk.example.test",
                          clock=clock, timeout=5.0)  # fmt: skip
        self.outbox = Outbox(desk.sessions, {"telegram": tg, "email": mail}, clock,
                             staff_chat_id=STAFF_CHAT)  # fmt: skip

    async def tick(self, day: date, hh: int = 10) -> None:
        self.clock.set(at(day, hh))
        await self.scans.run_due()
        await self.outbox.drain()

    async def load(self, tmp_path: Path, text: str, encoding: str = "utf-8") -> None:
        path = tmp_path / "certs.csv"
        path.write_bytes(text.encode(encoding))
        async with UnitOfWork(self.desk.sessions) as uow:
            result = await import_csv(self.desk, uow, path)
        assert result.refused == [], result.refused

    async def code(self, number: str) -> str:
        async with UnitOfWork(self.desk.sessions) as uow:
            return (await issue_link_code(self.desk, uow, number, "王芳")).code


@pytest.fixture
async def world(
    database_url: str, tmp_path: Path, emulator: Emulator, smtp_server: SmtpSink
) -> AsyncIterator[World]:
    clock = FrozenClock(at(date(2026, 10, 12)))
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=database_url,
        data_dir=tmp_path / "data",
        staff_chat_id=STAFF_CHAT,
        flood_max_updates=1000,
    )
    desk = await open_desk(settings, clock)
    tg = telegram_sender("123:TEST", base_url=emulator.base_url, private_interval=0,
                         group_interval=0)  # fmt: skip
    await tg.bot.initialize()
    emulator.user(1, "Staff", chat_type="group", chat_id=STAFF_CHAT)
    try:
        yield World(desk, clock, tg, smtp_server)
    finally:
        await tg.bot.shutdown()
        await desk.close()


def app_for(w: World, emulator: Emulator, *modules: str):  # type: ignore[no-untyped-def]
    return build_application(w.desk, bot_builder(emulator),
                             modules=["handlers.telegram.common", *modules])  # fmt: skip


async def test_linked_contact_gets_the_reminder_on_telegram_and_by_email(
    world: World, emulator: Emulator, tmp_path: Path
) -> None:
    w = world
    # Excel on a Chinese Windows saves GBK: read as such.
    await w.load(tmp_path, HEADER + ROW.format(uscc=USCC, mail="zhang@example.test"), "gbk")
    code = await w.code("ggbz-701")
    user = emulator.user(711, "张伟")
    async with run_app(app_for(w, emulator, "handlers.telegram.certificates")):
        await user.send("/link ABCD-EFGH-JKLM")
        assert "还可尝试 4 次" in (await user.next_reply()).text
        await user.send(f"/link {code.lower()}")
        assert "武汉示例有限公司" in (done := (await user.next_reply()).text) and "GGBZ-701" in done
        await user.send(f"/link {code}")  # single use
        assert "已使用或已过期" in (await user.next_reply()).text
    await w.outbox.drain()
    staff = [r.text for r in emulator.delivered(STAFF_CHAT)]
    assert any("张伟" in s and "711" in s and "绑定码" in s for s in staff)

    await w.tick(date(2026, 10, 21))
    await w.tick(date(2026, 10, 21), 15)  # nor twice on the day
    (tg,) = [r.text for r in emulator.delivered(711) if "监督审核" in r.text]
    assert "GGBZ-701" in tg and "2026-11-20" in tg and "还有 30 天" in tg
    (mail,) = w.smtp.wait_for_sync(1)
    msg = email.message_from_bytes(mail.content, policy=email.policy.default)
    assert mail.rcpt_tos == ["zhang@example.test"]
    assert "GGBZ-701" in str(msg["Subject"]) and "2026-11-20" in str(msg["Subject"])
    async with w.desk.sessions() as s:
        (org,) = (await s.exec(select(Organisation).where(Organisation.uscc == USCC))).all()
        people = (await s.exec(select(Contact).where(Contact.organisation_id == org.id))).all()
        sent = (await s.exec(select(Reminder).where(Reminder.sent_at != None))).all()  # noqa: E711
    assert sorted((c.email or "", c.telegram_user_id or 0) for c in people) == [
        ("", 711),
        ("zhang@example.test", 0),
    ]
    assert [r.lead_days for r in sent] == [30]


async def test_a_reminder_with_no_recipient_alerts_staff_and_is_not_sent(
    world: World, emulator: Emulator, tmp_path: Path
) -> None:
    w = world
    await w.load(tmp_path, HEADER + ROW.format(uscc="", mail=""))
    await w.tick(date(2026, 10, 21))
    await w.tick(date(2026, 10, 21), 15)
    alerts = [r.text for r in emulator.delivered(STAFF_CHAT) if "没有收件人" in r.text]
    assert len(alerts) == 1 and "GGBZ-701" in alerts[0] and "link-code" in alerts[0]
    async with w.desk.sessions() as s:
        rows = (await s.exec(select(Reminder).where(Reminder.send_on == date(2026, 10, 21)))).all()
        mails = (await s.exec(select(OutboxMessage).where(OutboxMessage.channel == "email"))).all()
    assert [(r.sent_at, r.no_recipient_at is not None) for r in rows] == [(None, True)]
    assert mails == []


async def test_linked_contact_reports_a_change_stored_with_ref_and_reporter(
    world: World, emulator: Emulator, tmp_path: Path
) -> None:
    w = world
    await w.load(tmp_path, HEADER + ROW.format(uscc=USCC, mail=""))
    code = await w.code("GGBZ-701")
    user, stranger = emulator.user(721, "李娜"), emulator.user(722, "Stranger")
    w.clock.set(at(date(2026, 10, 14), 9))
    modules = ("handlers.telegram.certificates", "handlers.telegram.changes")
    async with run_app(app_for(w, emulator, *modules)):
        await stranger.send("/change")
        assert "/link" in (await stranger.next_reply()).text
        await user.send(f"/link {code}")
        await user.next_reply()
        await user.send("/change")
        ask = await user.next_reply()
        assert "重大事故" in ask.buttons and "被列入严重违法失信名单" in ask.buttons
        assert len(ask.buttons) == 20
        await user.press("重大事故")
        period = (await user.next_reply()).text
        # GGBZ says 及时 (§5.7.6): no number of days is invented.
        assert "及时通报" in period and "§5.7.6" in period and "3 天" not in period
        await user.send("2026年10月13日车间起火，无人员伤亡，已停产整改。")
        received = (await user.next_reply()).text
        assert "BG-2026-" in received and "2026-10-14 09:00" in received
    await w.outbox.drain()
    async with w.desk.sessions() as s:
        (report,) = (await s.exec(select(ChangeReport))).all()
    assert (report.kind, report.reporter_telegram_user_id, report.reporter_name) == (
        "accident",
        721,
        "李娜",
    )
    assert report.ref in received and report.certificate_numbers == ["GGBZ-701"]
    (alert,) = [r.text for r in emulator.delivered(STAFF_CHAT) if report.ref in r.text]
    assert "紧急" in alert and "重大事故" in alert and "2026-10-14 09:00" in alert
    assert "李娜" in alert and "车间起火" in alert and "及时通报" in alert
    assert "3 天" not in alert and "处理" not in alert  # no deadline invented for staff


async def test_bqc_counts_its_own_reporting_periods(
    world: World, emulator: Emulator, tmp_path: Path
) -> None:
    from bot.profiles import load_profile

    w = world
    w.desk.profile = load_profile("bqc")
    await w.load(tmp_path, HEADER + ROW.format(uscc=USCC, mail=""))
    code = await w.code("GGBZ-701")
    user = emulator.user(731, "Contact", language_code="en")
    async with run_app(app_for(w, emulator, "handlers.telegram.certificates",
                               "handlers.telegram.changes")):  # fmt: skip
        await user.send(f"/link {code}")
        await user.next_reply()
        for button, expected in (
            ("Major accident", "within 3 days of the change or event"),
            ("Change of name", "within 14 days of the change or event"),
            ("Change of legal representative or top management", "promptly (及时; BQC"),
            (
                "Routine report (after a surveillance audit notice)",
                "within 7 days of receiving the surveillance audit notice",
            ),
        ):
            await user.send("/change")
            await user.next_reply()
            await user.press(button)
            assert expected in (await user.next_reply()).text
            await user.send("details")
            await user.next_reply()


async def test_suspension_is_notified_in_writing_and_its_end_put_to_staff(
    world: World, emulator: Emulator, tmp_path: Path
) -> None:
    w = world
    w.clock.set(at(date(2026, 3, 20)))
    row = ("GGBZ-702,襄阳示例有限公司,GB/T 39604-2020,2025-12-01,2028-11-30,2025-11-20,"
           "suspended,2026-03-20,6,,wu@example.test\n")  # fmt: skip
    await w.load(tmp_path, HEADER + row)
    await w.outbox.drain()
    (mail,) = w.smtp.wait_for_sync(1)
    msg = email.message_from_bytes(mail.content, policy=email.policy.default)
    body = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "暂停资格通知书" in str(msg["Subject"])
    assert "2026-03-20" in body and "6 个月" in body and "2026-09-20" in body and "§7.3.4" in body
    await w.load(tmp_path, HEADER + row)  # re-imported unchanged: no second notice
    await w.outbox.drain()
    assert len(w.smtp.received) == 1
    # Ends Sunday 2026-09-20; staff hear on Monday 21st. Withdrawal within 5 working days
    # (GGBZ §7.4(3)): 21, 22, 23, 24 September, then the holiday of 25–27, then Monday 28th.
    await w.tick(date(2026, 9, 21))
    (review,) = [r.text for r in emulator.delivered(STAFF_CHAT) if "暂停期已满" in r.text]
    assert "GGBZ-702" in review and "2026-09-28" in review and "§7.4(3)" in review


# --- link codes: single use, expiring, limited attempts; the lookup ----------------------------


async def contact_id(w: World, user_id: int) -> int:
    async with UnitOfWork(w.desk.sessions) as uow:
        contact, _ = await contacts.telegram_contact(
            uow, user_id=user_id, chat_id=user_id, name="x", locale="zh_CN", now=w.clock.now()
        )
        return contact.id or 0


async def link(w: World, cid: int, code: str) -> contacts.LinkOutcome:
    async with UnitOfWork(w.desk.sessions) as uow:
        return await contacts.link_with_code(w.desk, uow, cid, code)


async def test_five_wrong_codes_lock_the_contact_for_a_day(world: World, tmp_path: Path) -> None:
    w = world
    await w.load(tmp_path, HEADER + ROW.format(uscc=USCC, mail=""))
    code = await w.code("GGBZ-701")
    cid = await contact_id(w, 741)
    outcomes = [await link(w, cid, f"2222-2222-222{n}") for n in range(2, 7)]
    assert [(o.status, o.attempts_left) for o in outcomes] == [
        ("wrong", 4),
        ("wrong", 3),
        ("wrong", 2),
        ("wrong", 1),
        ("locked", 0),
    ]
    # Locked: even the right code is not checked (nor used up) until the window passes.
    assert (await link(w, cid, code)).status == "locked"
    w.clock.set(w.clock.now() + timedelta(hours=24, minutes=1))
    linked = await link(w, cid, code)
    assert (linked.status, linked.holder, linked.numbers) == ("linked", "武汉示例有限公司",
                                                              ("GGBZ-701",))  # fmt: skip
    other = await contact_id(w, 742)
    assert (await link(w, other, code)).status == "wrong"  # single use


async def test_a_code_expires_after_thirty_days(world: World, tmp_path: Path) -> None:
    w = world
    await w.load(tmp_path, HEADER + ROW.format(uscc=USCC, mail=""))
    code = await w.code("GGBZ-701")  # issued 2026-10-12 10:00
    cid = await contact_id(w, 743)
    w.clock.set(at(date(2026, 11, 11), 10))  # 30 days later, to the minute: gone
    assert (await link(w, cid, code)).status == "wrong"
    fresh = await w.code("GGBZ-701")
    assert (await link(w, cid, fresh)).status == "linked"


async def test_lookup_by_number_in_any_case_or_by_holder_marks_overdue(
    world: World, emulator: Emulator, tmp_path: Path
) -> None:
    w = world
    await w.load(tmp_path, HEADER + ROW.format(uscc=USCC, mail=""))
    w.clock.set(at(date(2026, 11, 23), 10))  # the surveillance was due Friday 2026-11-20
    user = emulator.user(751, "周")
    async with run_app(app_for(w, emulator, "handlers.telegram.certificates")):
        for typed in ("ggbz-701", "武汉示例有限公司"):
            await user.send("/certificate")
            await user.next_reply()
            await user.send(typed)
            found = (await user.next_reply()).text
            assert "证书 GGBZ-701" in found and "2026-11-20（已逾期）" in found
