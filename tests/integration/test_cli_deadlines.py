"""`certdesk deadlines --notified/--about/--serious` (issue 15 §2, §4), in-process."""

from __future__ import annotations

import json

import pytest

from bot.main.cli import main


def _rows(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, str]:
    assert main(["deadlines", *args, "--json"]) == 0
    return {row["rule"]: row["due"] for row in json.loads(capsys.readouterr().out)}


def test_appeal_window_from_the_notice(capsys: pytest.CaptureFixture[str]) -> None:
    common = ("--kind", "appeal", "--received", "2026-10-22", "--decided", "2026-09-18")
    # SGC §八1.3(4): 10 working days from the notice of Mon 12 Oct end Mon 26 Oct.
    sgc = _rows(capsys, "--profile", "sgc", *common, "--notified", "2026-10-12")
    assert sgc["appeal.filing_window"] == "2026-10-26"
    # Without the notice date SGC's window cannot be counted: it is not listed.
    assert "appeal.filing_window" not in _rows(capsys, "--profile", "sgc", *common)
    # GGBZ §8.6.1 counts from the decision whatever the notice: 3 months after 18 Sep.
    ggbz = _rows(capsys, "--profile", "ggbz", *common, "--notified", "2026-10-12")
    assert ggbz["appeal.filing_window"] == "2026-12-18"


def test_sgc_complaint_by_whom_and_serious(capsys: pytest.CaptureFixture[str]) -> None:
    common = ("--profile", "sgc", "--kind", "complaint", "--received", "2026-01-31")
    org = _rows(capsys, *common, "--about", "organisation", "--serious")
    assert org == {
        "complaint.about_organisation": "2026-02-28",
        "complaint.written_result": "2026-03-31",
        "complaint.serious_report": "2026-02-13",
    }
    staff = _rows(capsys, *common, "--about", "staff")
    assert staff == {
        "complaint.investigation": "2026-03-02",
        "complaint.written_result": "2026-03-31",
    }
