"""IETP certificates (issue 12 item 4; seed 000) on SQLite and PostgreSQL: the import takes a status
and its validity, refuses what the status model forbids by line, and a terminated factory is
refused a new status until its termination period ends. The clock is T0 (2026-11-20)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlmodel import select

from bot.clock import FrozenClock
from bot.desk import Desk
from bot.emulator import Emulator
from bot.main.cli import main
from bot.profiles import load_profile
from bot.services import statuses
from storage.models import Certificate
from storage.unit_of_work import UnitOfWork
from tests.fixtures.telegram_app import expect, make_desk, running

IETP = load_profile("ietp")
CSV = """number,holder,decided_on,status,validity_months,fee_paid_on
F-1,Toy Factory A,2025-10-01,certified,,2025-09-20
F-2,Toy Factory B,2026-06-01,terminated,6,
F-3,Toy Factory C,2026-05-01,remediation,12,2026-05-01
F-4,Toy Factory D,2026-05-01,certified,,
F-5,Toy Factory E,2026-05-01,probation,9,2026-05-01
F-1,Toy Factory A,2026-10-02,remediation,9,2026-10-02
F-6,Toy Factory F,2026-11-01,assessed,,
"""


async def _import(desk: Desk, text: str) -> statuses.StatusImport:
    async with UnitOfWork(desk.sessions) as uow:
        return await statuses.import_csv(desk, uow, text, IETP)


async def _show(desk: Desk, number: str) -> dict[str, object]:
    async with UnitOfWork(desk.sessions) as uow:
        return await statuses.show(desk, uow, number, IETP)


async def test_status_import_show_and_termination_period(bot_desk: Desk) -> None:
    report = await _import(bot_desk, CSV)
    assert report.imported == 4
    reasons = {r["line"]: r["reason"] for r in report.refused}
    assert set(reasons) == {4, 5, 6}
    assert "only for a factory certified before" in reasons[4]
    assert "US$800" in reasons[5]
    assert "12 months (staff choose), not 9" in reasons[6]

    # F-1: certified for 12 months (ended 2026-10-01), then remediation for 9 after it.
    assert await _show(bot_desk, "F-1") == {
        "number": "F-1",
        "holder": "Toy Factory A",
        "status": "remediation",
        "valid": True,
        "certification": True,
        "expires_on": "2027-07-02",
        "clause": IETP.statuses.get("remediation").clause,  # type: ignore[union-attr]
    }
    assessed = await _show(bot_desk, "F-6")
    assert (assessed["status"], assessed["valid"], assessed["certification"]) == (
        "assessed", False, False,
    )  # fmt: skip
    assert assessed["expires_on"] == "2027-09-01"  # 10 months
    terminated = await _show(bot_desk, "F-2")
    assert terminated["status"] == "terminated" and terminated["valid"] is False
    assert (terminated["expires_on"], terminated["reapply_from"]) == ("2026-12-01", "2026-12-02")
    async with bot_desk.sessions() as s:
        rows = {c.number: c.status for c in (await s.exec(select(Certificate))).all()}
    assert rows == {"F-1": "valid", "F-2": "withdrawn", "F-6": "withdrawn"}

    # A new application within the termination period is refused, and says until when.
    again = "number,holder,decided_on,status\nF-2,Toy Factory B,2026-11-20,assessed\n"
    report = await _import(bot_desk, again)
    assert report.imported == 0
    assert report.refused == [
        {"line": 2, "reason": "terminated: a new application is accepted from 2026-12-02"}
    ]
    async with UnitOfWork(bot_desk.sessions) as uow:
        assert await statuses.may_reapply(bot_desk, uow, "F-2", IETP) is not None
    assert isinstance(bot_desk.clock, FrozenClock)
    bot_desk.clock.set(datetime(2026, 12, 2, 2, 0, tzinfo=UTC))
    later = again.replace("2026-11-20", "2026-12-02")
    assert (await _import(bot_desk, later)).imported == 1
    shown = await _show(bot_desk, "F-2")
    assert shown["status"] == "assessed" and "reapply_from" not in shown


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_cli_certificates_import_and_show_with_the_ietp_profile(
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    path = tmp_path / "ietp.csv"
    path.write_text(CSV, encoding="utf-8")
    assert main(["certificates", "import", str(path), "--profile", "ietp", "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["imported"] == 4 and [r["line"] for r in out["refused"]] == [4, 5, 6]
    assert main(["certificates", "show", "F-1", "--profile", "ietp", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert {"status", "valid", "expires_on"} <= set(shown)
    assert main(["certificates", "show", "NOPE", "--profile", "ietp"]) == 2
    # Under a profile without a status model the same file is an ordinary import: its rows
    # (no expires_on column) are refused by line, nothing is imported.
    capsys.readouterr()
    assert main(["certificates", "import", str(path), "--profile", "ggbz", "--json"]) == 1
    plain = json.loads(capsys.readouterr().out)
    assert plain["imported"] == 0 and plain["refused"]


async def test_lookup_on_telegram_says_which_statuses_are_not_certification(
    database_url: str, data_dir: Path, emulator: Emulator
) -> None:
    desk = await make_desk(database_url, data_dir, profile="ietp")
    try:
        await _import(desk, CSV)
        user = emulator.user(7200, "Wu", language_code="en")
        async with running(desk, emulator):
            await user.send("/start")
            await expect(user, "Please choose a language")
            await user.press("English")
            await expect(user, "What would you like to do?")
            for number, fragments in (
                ("F-1", ("Remediation", "a valid certificate", "2027-07-02")),
                ("F-6", ("Assessed", "this is not certification", "2027-09-01")),
                ("F-2", ("Terminated", "not certification", "may reapply from 2026-12-02")),
            ):
                await user.send("/certificate")
                await expect(user, "number")
                await user.send(number)
                await expect(user, *fragments)
    finally:
        await desk.close()
