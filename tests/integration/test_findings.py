"""Findings with their corrective actions (issue 12), on SQLite and PostgreSQL: the import refuses
bad rows by line and dates the good ones from the profile; the certified organisation's contact
sees them on Telegram and sends evidence; staff reject (the contact is told and sends again),
then accept (closed, "1 of 3"); the scan reminds before each date and puts an overdue major
finding to staff as a suspension review (GGBZ §5.10.4, §7.3).

The clock is T0, Friday 2026-11-20 10:00 in Shanghai."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.clock import FrozenClock
from bot.desk import Desk
from bot.emulator import Emulator
from bot.main.cli import main
from bot.scheduler.findings_scan import FindingsScan
from bot.scheduler.scans import Scans
from bot.services import findings
from storage.models import (
    Certificate,
    Contact,
    Finding,
    FindingEvidence,
    FindingEvidenceFile,
    Organisation,
    OutboxMessage,
)
from storage.unit_of_work import UnitOfWork
from tests.fixtures.telegram_app import STAFF_CHAT, STAFF_ID, expect, make_desk, running
from tests.integration.test_telegram_documents import PDF, PNG, outbox_for

CSV = """certificate,audit_type,audit_end_on,grade,clause,text
GGBZ-830,surveillance,2026-09-15,minor,GB/T 39604 §7.2,Training records of the night shift missing
GGBZ-830,surveillance,2026-08-19,major,GB/T 39604 §8.1.2,Fire exits blocked in workshop 2
GGBZ-999,surveillance,2026-08-19,major,§8.1,Unknown certificate
GGBZ-830,surveillance,2026-13-01,minor,§8.1,Bad date
GGBZ-830,surveillance,2026-09-01,critical,§8.1,Bad grade
GGBZ-830,recertification,2026-11-02,major,GB/T 39604 §5.4,No worker consultation records
"""


async def certified(desk: Desk, user_id: int, *, locale: str = "en") -> None:
    """A contact of a certified organisation, as the certificate import and link leave one."""
    async with desk.sessions() as s, s.begin():
        org = Organisation(name="Wuhan Example Ltd", locale=locale)
        s.add(org)
        await s.flush()
        s.add(Contact(organisation_id=org.id, telegram_chat_id=user_id, telegram_user_id=user_id,
                      locale=locale))  # fmt: skip
        s.add(
            Certificate(
                number=f"GGBZ-{user_id}",
                organisation_id=org.id,
                holder=org.name,
                standard="GB/T 39604-2020",
                decided_on=date(2025, 7, 10),
                stage2_end_on=date(2025, 6, 15),
                expires_on=date(2028, 7, 9),
            )
        )


async def imported(desk: Desk) -> findings.ImportReport:
    async with UnitOfWork(desk.sessions) as uow:
        return await findings.import_csv(desk, uow, CSV)


async def test_import_refuses_by_line_and_dates_from_the_profile(bot_desk: Desk) -> None:
    await certified(bot_desk, 830)
    report = await imported(bot_desk)
    assert report.to_json() == {
        "imported": 3,
        "refused": [
            {"line": 4, "reason": "unknown certificate 'GGBZ-999'"},
            {"line": 5, "reason": "audit_end_on '2026-13-01' is not a date (YYYY-MM-DD)"},
            {"line": 6, "reason": "grade 'critical' is not one of minor, major"},
        ],
    }
    async with UnitOfWork(bot_desk.sessions) as uow:
        rows = [r.to_json() for r in await findings.listed(bot_desk, uow, "GGBZ-830")]
        progress = await findings.progress(uow, 1)
    got = [(r["grade"], r["audit_type"], r["due"], r["rule"], r["status"]) for r in rows]
    assert got == [
        # §5.10.3(2): 3 months after 2026-08-19 is Thursday 11-19 — past at T0 (11-20).
        ("major", "surveillance", date(2026, 11, 19), "findings.major.surveillance", "overdue"),
        # §5.10.3(3): 1 month after 2026-11-02 is Wednesday 12-02.
        ("major", "recertification", date(2026, 12, 2), "findings.major.recertification", "open"),
        # §5.10.1: 90 days after 2026-09-15 is Monday 12-14.
        ("minor", "surveillance", date(2026, 12, 14), "findings.minor", "open"),
    ]
    assert rows[0]["clause"] == "GB/T 39604 §8.1.2"
    assert (progress.closed, progress.total) == (0, 3)
    with pytest.raises(LookupError):
        async with UnitOfWork(bot_desk.sessions) as uow:
            await findings.listed(bot_desk, uow, "GGBZ-999")


async def test_a_body_without_a_period_needs_the_date_given(bot_desk: Desk) -> None:
    from bot.profiles import load_profile

    await certified(bot_desk, 831)
    text = (
        "certificate,audit_type,audit_end_on,grade,clause,text,due_on\n"
        "GGBZ-831,surveillance,2026-09-15,minor,§8.1,Agreed date,2026-10-30\n"
        "GGBZ-831,surveillance,2026-09-15,minor,§8.1,No date,\n"
    )
    async with UnitOfWork(bot_desk.sessions) as uow:
        report = await findings.import_csv(bot_desk, uow, text, load_profile("bqc"))
        rows = await findings.listed(bot_desk, uow)
    assert report.imported == 1
    assert report.refused[0].line == 3 and "due_on is needed" in report.refused[0].reason
    assert (rows[0].due, rows[0].rule) == (date(2026, 10, 30), "set")


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_cli_import_and_list_json(
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tests.fixtures.db import run_isolated

    async def seed() -> None:
        desk = await make_desk(database_url, tmp_path / "data")
        try:
            await certified(desk, 830)
        finally:
            await desk.close()

    run_isolated(seed)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    path = tmp_path / "findings.csv"
    path.write_text(CSV, encoding="utf-8")
    assert main(["findings", "import", str(path), "--profile", "ggbz", "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["imported"] == 3 and [r["line"] for r in out["refused"]] == [4, 5, 6]
    assert main(["findings", "list", "--certificate", "GGBZ-830", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {k for k in rows[0]} >= {
        "certificate", "grade", "audit_type", "audit_end_on", "due", "rule", "clause", "status",
    }  # fmt: skip
    assert [r["due"] for r in rows] == ["2026-11-19", "2026-12-02", "2026-12-14"]
    assert main(["findings", "list", "--certificate", "NOPE"]) == 2


async def _reminders(s: AsyncSession) -> list[OutboxMessage]:
    rows = (await s.exec(select(OutboxMessage).order_by(col(OutboxMessage.id)))).all()
    return [r for r in rows if r.recipient == "830" and "finding-reminder" in r.idempotency_key]


async def _staff_texts(desk: Desk) -> list[str]:
    async with desk.sessions() as s:
        rows = (await s.exec(select(OutboxMessage))).all()
    # A text, or a document's caption (evidence files are sent as documents).
    return [
        r.payload.get("text") or r.payload.get("caption") or ""
        for r in rows
        if r.payload is not None and r.recipient == str(STAFF_CHAT)
    ]


async def test_contact_sends_evidence_staff_reject_then_accept(
    bot_desk: Desk, emulator: Emulator, data_dir: Path
) -> None:
    user = emulator.user(830, "Ann", language_code="en")
    other = emulator.user(840, "Eve", language_code="en")
    staff = emulator.user(STAFF_ID, "Mei", chat_type="supergroup", chat_id=STAFF_CHAT)
    intruder = emulator.user(61, "Eve", chat_type="supergroup", chat_id=STAFF_CHAT)
    await certified(bot_desk, 830)
    await certified(bot_desk, 840)
    await imported(bot_desk)
    async with running(bot_desk, emulator) as app:
        outbox = outbox_for(bot_desk, app)
        await user.send("/start")  # a known contact: straight to the menu
        await expect(user, "What would you like to do?")
        await user.press("🛠 Corrective actions")
        listing = await expect(user, "Findings to correct (3)")
        assert "Fire exits blocked" in listing.text and "Due: 2026-11-19" in listing.text
        assert "overdue" in listing.text and "GB/T 39604 §7.2" in listing.text
        assert [b for b in listing.buttons] == ["1", "2", "3", "Main menu"]

        # Another organisation's contact guessing the id is refused as for a missing one.
        await other.send("/findings")
        await expect(other, "no findings for you to correct")

        minor_id = 1  # the first row of the import, listed last (latest due date)
        await user.press(f"fa:{minor_id}")
        detail = await expect(user, "Upload the evidence")
        assert "Training records" in detail.text and "2026-12-14" in detail.text
        assert "§5.10.1" in detail.text  # the deadline rule's clause
        await user.press("✅ Submit")
        await expect(user, "at least one evidence file")
        await user.upload(b"MZ\x90\x00" + b"\x00" * 100, "fake.pdf", "application/pdf")
        await expect(user, "refused: by its content")
        await user.upload(PDF, "training.pdf", "application/pdf")
        await expect(user, "Received training.pdf (1 file(s)")
        await user.upload_photo(PNG)
        await expect(user, "(2 file(s)")
        await user.send("Night shift trained on 2026-11-18, records attached")
        await expect(user, "2 evidence file(s) submitted")
        await outbox.drain()
        # Each evidence file reaches the staff chat as a document, with the finding's button.
        sent = [r for r in staff.replies if "整改证据待验证" in r.text]
        assert [r.method for r in sent] == ["sendDocument", "sendDocument"]
        assert sent[0].file is not None and sent[0].file.content == PDF
        assert sent[1].file is not None and sent[1].file.content == PNG
        assert "1/2" in sent[0].text and "training.pdf" in sent[0].text
        assert "2/2" in sent[1].text and all("Night shift" in r.text for r in sent)
        assert all(r.buttons == ["✅ 验证通过"] for r in sent)

        # Staff reject with a reason, from the staff chat: the contact is told; open again.
        async with UnitOfWork(bot_desk.sessions) as uow:
            with pytest.raises(findings.Refusal):
                await findings.review(bot_desk, uow, minor_id, accept=False, reason=" ", by="Mei")
        await staff.send(f"/finding_reject {minor_id}")
        await expect(staff, "/finding_reject 编号 理由")  # staff texts: DEFAULT_LOCALE
        await intruder.send(f"/finding_reject {minor_id} I say no")  # not staff: not taken
        await staff.send(f"/finding_reject {minor_id} No signatures")
        await expect(staff, f"已驳回不符合项 #{minor_id} 的证据：No signatures")
        async with bot_desk.sessions() as s:
            row = await s.get(Finding, minor_id)
        assert row is not None and (row.status, row.reason) == ("open", "No signatures")
        await outbox.drain()
        told = await expect(user, "was rejected: No signatures")
        assert "send new evidence by 2026-12-14" in told.text

        # It is on the list again, with the reason; new evidence goes in.
        await user.send("/findings")
        again = await expect(user, "Findings to correct (3)")
        assert "Last evidence rejected: No signatures" in again.text
        await user.press(f"fa:{minor_id}")
        await expect(user, "Upload the evidence")
        await user.upload(PDF + b"signed", "signed.pdf", "application/pdf")
        await expect(user, "Received signed.pdf")
        await user.press("✅ Submit")
        await expect(user, "1 evidence file(s) submitted")
        await outbox.drain()
        prompts = [r for r in staff.replies if "整改证据待验证" in r.text]
        assert len(prompts) == 3 and prompts[-1].buttons == ["✅ 验证通过"]
        assert prompts[-1].method == "sendDocument" and "signed.pdf" in prompts[-1].text
        await intruder.press(f"sf:a:{minor_id}", message_id=prompts[-1].message_id)
        async with bot_desk.sessions() as s:
            assert (await s.get(Finding, minor_id)).status == "evidence_submitted"  # type: ignore[union-attr]
        await staff.press(f"sf:a:{minor_id}", message_id=prompts[-1].message_id)
        done = await expect(staff, f"已验证通过不符合项 #{minor_id}")
        assert done.method == "editMessageCaption" and "signed.pdf" in done.text
        await outbox.drain()
        closed = await expect(user, "was accepted; the finding is closed")
        assert "Progress: 1 of 3 findings closed" in closed.text

        await user.send("/findings")
        left = await expect(user, "Findings to correct (2)")
        assert "Training records" not in left.text

    async with bot_desk.sessions() as s:
        evidence = (await s.exec(select(FindingEvidence))).all()
        files = (await s.exec(select(FindingEvidenceFile))).all()
        row = await s.get(Finding, minor_id)
    assert [(e.verdict, e.reason) for e in evidence] == [
        ("rejected", "No signatures"),
        ("accepted", None),
    ]
    assert len(files) == 3
    assert row is not None and row.closed_on == date(2026, 11, 20) and row.reason is None


async def test_scan_reminds_and_puts_an_overdue_major_to_staff(
    database_url: str, data_dir: Path
) -> None:
    desk = await make_desk(database_url, data_dir)
    try:
        await certified(desk, 830)
        await imported(desk)
        await Scans(desk).run_due()  # the tick the scheduler runs includes this scan
        scan = FindingsScan(desk)
        staff = await _staff_texts(desk)
        overdue = [t for t in staff if "不符合项逾期" in t]
        review = [t for t in staff if "暂停评审" in t]
        assert len(overdue) == 1 and "2026-11-19" in overdue[0]
        assert len(review) == 1 and "§7.3.1(1)" in review[0] and "GGBZ-830" in review[0]
        async with desk.sessions() as s:
            org = await _reminders(s)
            major = await s.get(Finding, 2)
        # The recertification major (12-02): its 14-day reminder day passed, it goes out today.
        assert [m.payload["text"].count("2026-12-02") for m in org] == [1]
        assert major is not None and major.status == "overdue"

        # A second pass, and another instance: nothing again.
        await scan.run(force=True)
        await FindingsScan(desk).run()
        assert len(await _staff_texts(desk)) == len(staff)

        # Monday 2026-11-30: 14 days before the minor's 12-14.
        assert isinstance(desk.clock, FrozenClock)
        desk.clock.set(datetime(2026, 11, 30, 2, 0, tzinfo=UTC))
        await FindingsScan(desk).run()
        async with desk.sessions() as s:
            org = await _reminders(s)
        texts = sorted(m.payload["text"] for m in org[1:])
        # The minor's 14-day reminder, and the recertification major's 3-day one (its day,
        # Sunday 11-29, passed with nobody at work: sent on the next pass).
        assert "2026-12-02" in texts[0] and "(2 days left)" in texts[0]
        assert "2026-12-14" in texts[1] and "(14 days left)" in texts[1]
        assert len(org) == 3
    finally:
        await desk.close()


async def test_no_contact_to_remind_is_a_staff_alert(database_url: str, data_dir: Path) -> None:
    desk = await make_desk(database_url, data_dir)
    try:
        await certified(desk, 850)
        async with desk.sessions() as s, s.begin():
            contact = (await s.exec(select(Contact))).one()
            await s.delete(contact)
        async with UnitOfWork(desk.sessions) as uow:
            lines = CSV.replace("GGBZ-830", "GGBZ-850").splitlines()
            # The recertification major: its reminder is due today.
            await findings.import_csv(desk, uow, f"{lines[0]}\n{lines[6]}\n")
        await FindingsScan(desk).run()
        assert any("没有联系人" in t for t in await _staff_texts(desk))
    finally:
        await desk.close()
