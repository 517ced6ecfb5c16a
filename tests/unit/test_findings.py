"""Findings: each due-date rule of the profiles and every status transition, with dates worked by
hand on the 2026 calendar (Spring Festival 2026-02-15..23 with Sat 02-28 a working day; National
Day 2026-10-01..07)."""

from __future__ import annotations

from datetime import date

import pytest

from bot.domain.calendar import WorkCalendar
from bot.domain.findings import (
    FindingStatus,
    TransitionRefused,
    accept,
    due_for,
    progress,
    raises_suspension_review,
    reject,
    status_on,
    submit,
)
from bot.domain.policy import ProfileError, parse_profile
from bot.profiles import load_profile

CAL = WorkCalendar()
GGBZ = load_profile("ggbz")


@pytest.mark.parametrize(
    ("grade", "audit", "end", "due", "rule"),
    [
        # §5.10.3(1): 6 months after the stage-2 end; 2026-09-30 is a Wednesday.
        ("major", "initial", date(2026, 3, 31), date(2026, 9, 30), "findings.major.initial"),
        # 6 months after 2026-03-20 is Sunday 2026-09-20, a declared working day (调休).
        ("major", "initial", date(2026, 3, 20), date(2026, 9, 20), "findings.major.initial"),
        # §5.10.3(2): 3 months after 2026-07-06 is 2026-10-06, National Day: next working day 10-08.
        (
            "major",
            "surveillance",
            date(2026, 7, 6),
            date(2026, 10, 8),
            "findings.major.surveillance",
        ),
        # §5.10.3(3): 1 month after 01-31 — February has no 31st: its last day, Sat 02-28, a
        # working day in 2026, so it stands.
        (
            "major",
            "recertification",
            date(2026, 1, 31),
            date(2026, 2, 28),
            "findings.major.recertification",
        ),
        # 1 month after 2026-04-01 is 2026-05-01, Labour Day: the holiday ends 05-05, due 05-06.
        (
            "major",
            "recertification",
            date(2026, 4, 1),
            date(2026, 5, 6),
            "findings.major.recertification",
        ),
        # A special audit: §5.10.3 names none, the general 6 months of §5.10.1.
        ("major", "special", date(2026, 5, 15), date(2026, 11, 16), "findings.major"),
        # §5.10.1 minor: 90 days after 2026-09-15 (15 + 31 + 30 + 14) is Monday 2026-12-14.
        ("minor", "surveillance", date(2026, 9, 15), date(2026, 12, 14), "findings.minor"),
        ("minor", "initial", date(2026, 9, 15), date(2026, 12, 14), "findings.minor"),
        # 90 days after 2026-11-18 is Tuesday 2027-02-16 (12 + 31 + 31 + 16).
        ("minor", "recertification", date(2026, 11, 18), date(2027, 2, 16), "findings.minor"),
    ],
)
def test_ggbz_due_dates(grade: str, audit: str, end: date, due: date, rule: str) -> None:
    got = due_for(GGBZ, grade, audit, end, CAL)
    assert got is not None
    assert (got.due_on, got.rule_id) == (due, rule)
    assert got.clause.startswith("GGBZ §5.10")


def test_ggbz_names_the_90_working_days_conflict() -> None:
    assert GGBZ.findings is not None
    minor = GGBZ.findings.period("minor", "surveillance")
    assert minor is not None and minor.unit == "days" and minor.count == 90
    assert minor.note is not None and "§5.12.4(6)" in minor.note and "工作日" in minor.note


def test_16_november_2026_is_a_monday_so_the_special_date_stands() -> None:
    # 2026-05-15 + 6 months = 2026-11-15, a Sunday: rolled to Monday 11-16 (the case above).
    assert not CAL.is_workday(date(2026, 11, 15)) and CAL.is_workday(date(2026, 11, 16))


@pytest.mark.parametrize("name", ["bqc", "sgc"])
def test_bodies_without_a_period_invent_none(name: str) -> None:
    profile = load_profile(name)
    assert profile.findings is not None and profile.findings.periods == ()
    assert due_for(profile, "major", "surveillance", date(2026, 7, 6), CAL) is None


def test_unknown_grade_has_no_period() -> None:
    assert due_for(GGBZ, "zero_tolerance", "initial", date(2026, 3, 31), CAL) is None


def test_overdue_major_raises_the_suspension_review_minor_does_not() -> None:
    assert raises_suspension_review(GGBZ, "major")
    assert not raises_suspension_review(GGBZ, "minor")
    assert GGBZ.findings is not None and "§7.3" in (GGBZ.findings.suspension_review_clause or "")


# --- status ---------------------------------------------------------------------------------

DUE = date(2026, 9, 30)


def test_open_becomes_overdue_the_day_after_its_date() -> None:
    assert status_on("open", DUE, date(2026, 9, 30)) == "open"
    assert status_on("open", DUE, date(2026, 10, 1)) == "overdue"
    # Evidence in hand is not overdue: it waits for the verifier.
    assert status_on("evidence_submitted", DUE, date(2026, 10, 1)) == "evidence_submitted"
    assert status_on("accepted", DUE, date(2026, 10, 1)) == "accepted"


def test_submit_needs_a_file_and_an_open_finding() -> None:
    assert submit("open", 2) == FindingStatus.EVIDENCE_SUBMITTED
    assert submit("overdue", 1) == FindingStatus.EVIDENCE_SUBMITTED  # late evidence is taken
    with pytest.raises(TransitionRefused) as exc:
        submit("open", 0)
    assert exc.value.key == "no_files"
    for status in ("evidence_submitted", "accepted"):
        with pytest.raises(TransitionRefused) as exc:
            submit(status, 1)
        assert exc.value.key == "not_open"


def test_accept_only_submitted_evidence() -> None:
    assert accept("evidence_submitted") == "accepted"
    for status in ("open", "overdue", "accepted"):
        with pytest.raises(TransitionRefused):
            accept(status)


def test_reject_needs_a_reason_and_reopens_or_is_overdue() -> None:
    assert reject("evidence_submitted", "blurred scan", DUE, date(2026, 9, 1)) == "open"
    assert reject("evidence_submitted", "blurred scan", DUE, date(2026, 10, 2)) == "overdue"
    with pytest.raises(TransitionRefused) as exc:
        reject("evidence_submitted", "  ", DUE, date(2026, 9, 1))
    assert exc.value.key == "no_reason"
    with pytest.raises(TransitionRefused):
        reject("open", "why", DUE, date(2026, 9, 1))


def test_progress_counts_accepted_as_closed() -> None:
    p = progress(["accepted", "accepted", "accepted", "open", "evidence_submitted"])
    assert (p.closed, p.total) == (3, 5)


# --- the profile section ------------------------------------------------------------------------


def _with_findings(findings: dict[str, object]) -> dict[str, object]:
    import tomllib

    from bot.profiles import PROFILE_DIR

    data = tomllib.loads((PROFILE_DIR / "ggbz.toml").read_text(encoding="utf-8"))
    return {**data, "findings": findings}


def test_profile_refuses_a_period_for_an_unlisted_grade() -> None:
    bad = {
        "clause": "x",
        "periods": [
            {"id": "f.z", "grade": "zero_tolerance", "count": 1, "unit": "days", "clause": "c"}
        ],
    }
    with pytest.raises(ProfileError) as exc:
        parse_profile(_with_findings(bad), "p.toml")
    assert "findings.periods[f.z].grade" in str(exc.value)


def test_profile_refuses_two_periods_for_one_audit_type() -> None:
    period = {"grade": "minor", "count": 1, "unit": "days", "clause": "c"}
    bad = {"clause": "x", "periods": [{**period, "id": "a"}, {**period, "id": "b"}]}
    with pytest.raises(ProfileError) as exc:
        parse_profile(_with_findings(bad), "p.toml")
    assert "covers this already" in str(exc.value)


def test_profile_suspension_grades_need_their_clause() -> None:
    with pytest.raises(ProfileError) as exc:
        parse_profile(_with_findings({"clause": "x", "suspension_review_grades": ["major"]}), "p")
    assert "suspension_review_clause" in str(exc.value)
