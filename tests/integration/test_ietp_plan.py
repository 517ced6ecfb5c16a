"""IETP progressing (seed 000): the corrective plan submitted and started within 3 months is a
tracked deadline — shown with the status, met by the first evidence on one of the factory's
findings, and put to staff once the day after it passes unmet; a factory in its termination
period is refused by the eligibility check, which says from when it may reapply. The clock is T0
(2026-11-20, 10:00 in Shanghai, a Friday)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlmodel import col, select

from bot.desk import Desk
from bot.emulator import Emulator
from bot.profiles import load_profile
from bot.scheduler.findings_scan import FindingsScan
from bot.services import findings, statuses
from storage.models import Certificate, Contact, Organisation, OutboxMessage
from storage.repo import findings as findings_repo
from storage.unit_of_work import UnitOfWork
from tests.fixtures.telegram_app import STAFF_CHAT, expect, make_desk, running

IETP = load_profile("ietp")
STATUSES = """number,holder,decided_on,status
F-7,Toy Factory G,2026-08-10,progressing
F-8,Toy Factory H,2026-09-01,progressing
F-9,Toy Factory I,2026-07-01,progressing
"""
FINDINGS = """certificate,audit_type,audit_end_on,grade,clause,text,due_on
F-9,initial,2026-06-20,major,IETP 4.2,Overtime above the limit,2026-12-31
"""


async def _show(desk: Desk, number: str) -> dict[str, object]:
    async with UnitOfWork(desk.sessions) as uow:
        return await statuses.show(desk, uow, number, IETP)


async def _staff_alerts(desk: Desk) -> list[OutboxMessage]:
    async with desk.sessions() as s:
        rows = (await s.exec(select(OutboxMessage).order_by(col(OutboxMessage.id)))).all()
    return [r for r in rows if r.idempotency_key.startswith("status-plan:")]


async def test_a_plan_not_started_in_three_months_reaches_staff_once(
    database_url: str, data_dir: Path
) -> None:
    desk = await make_desk(database_url, data_dir, profile="ietp")
    try:
        async with UnitOfWork(desk.sessions) as uow:
            report = await statuses.import_csv(desk, uow, STATUSES, IETP)
        assert report.imported == 3 and report.refused == []
        async with UnitOfWork(desk.sessions) as uow:
            assert (await findings.import_csv(desk, uow, FINDINGS)).imported == 1
        # F-9's factory sent evidence on 2026-08-01 (16:30 UTC: 08-02 in Shanghai).
        async with desk.sessions() as s, s.begin():
            await findings_repo.add_evidence(
                s, finding_id=1, contact_id=None, note="plan", files=[],
                now=datetime(2026, 8, 1, 16, 30, tzinfo=UTC),
            )  # fmt: skip

        f7, f8, f9 = [await _show(desk, n) for n in ("F-7", "F-8", "F-9")]
        # add_months: 2026-08-10 + 3 months = 2026-11-10 (the corresponding day).
        assert (f7["plan_due_on"], f7["plan_started_on"]) == ("2026-11-10", None)
        assert (f8["plan_due_on"], f8["plan_started_on"]) == ("2026-12-01", None)
        assert (f9["plan_due_on"], f9["plan_started_on"]) == ("2026-10-01", "2026-08-02")
        assert "plan_due_on" not in await _certified(desk)

        scan = FindingsScan(desk)
        await scan.run()
        (alert,) = await _staff_alerts(desk)  # F-7 only: F-8 not yet due, F-9 started
        assert alert.recipient == str(STAFF_CHAT) and alert.payload is not None
        text = alert.payload["text"]
        assert "整改计划未按期开始" in text and "F-7" in text and "2026-11-10" in text
        assert "改进中（Progressing）" in text and "3个月内开始按计划整改" in text
        await scan.run(force=True)
        assert len(await _staff_alerts(desk)) == 1  # once
    finally:
        await desk.close()


async def _certified(desk: Desk) -> dict[str, object]:
    """A status without a plan deadline shows none."""
    text = (
        "number,holder,decided_on,status,fee_paid_on\nC-1,Toy Co,2026-10-01,certified,2026-10-01\n"
    )
    async with UnitOfWork(desk.sessions) as uow:
        assert (await statuses.import_csv(desk, uow, text, IETP)).imported == 1
    return await _show(desk, "C-1")


TERMINATED = """number,holder,decided_on,status,validity_months
F-2,Toy Factory B,2026-06-01,terminated,6
"""


async def test_a_factory_in_its_termination_period_is_told_from_when_it_may_reapply(
    database_url: str, data_dir: Path, emulator: Emulator
) -> None:
    desk = await make_desk(database_url, data_dir, profile="ietp")
    try:
        async with UnitOfWork(desk.sessions) as uow:
            assert (await statuses.import_csv(desk, uow, TERMINATED, IETP)).imported == 1
        async with desk.sessions() as s, s.begin():
            org = Organisation(name="Toy Factory B", locale="en")
            s.add(org)
            await s.flush()
            cert = (await s.exec(select(Certificate))).one()
            cert.organisation_id = org.id
            s.add(cert)
            s.add(Contact(organisation_id=org.id, telegram_chat_id=7300, telegram_user_id=7300,
                          locale="en"))  # fmt: skip
        user = emulator.user(7300, "Bo", language_code="en")
        async with running(desk, emulator):
            await user.send("/start")
            await expect(user, "What would you like to do?")
            await user.send("/eligibility")
            await expect(user, "termination period")
            await user.press("el:n:ietp_terminated")  # it says no: its history says otherwise
            refused = await expect(user, "does not meet these conditions")
            # 2026-06-01 + 6 months ends 2026-12-01: a new application from the day after.
            assert "may reapply from 2026-12-02" in refused.text
    finally:
        await desk.close()
