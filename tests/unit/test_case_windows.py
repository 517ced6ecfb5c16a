"""Which day each clock counts from (issue 15 §2, §4): the decision, its notice, our outcome;
SGC complaints by whom they are about; serious complaints. Hand-worked on the 2026 schedule
(Mid-Autumn Fri 25 Sep; National Day 1-7 Oct, make-up workdays Sun 20 Sep and Sat 10 Oct;
Spring Festival 15-23 Feb, make-up workdays Sat 14 and Sat 28 Feb)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from bot.domain import cases as rules
from bot.domain.calendar import WorkCalendar
from bot.domain.cases import CaseRefused
from bot.domain.deadlines import ComputedDeadline, case_deadlines
from bot.domain.policy import Profile, ProfileError, parse_profile
from bot.profiles import load_profile

CAL = WorkCalendar()
GGBZ, BQC, SGC = load_profile("ggbz"), load_profile("bqc"), load_profile("sgc")


def _due(profile: Profile, kind: str, received: date, **dates: object) -> dict[str, date]:
    computed = case_deadlines(profile.rules.values(), kind, received, None, CAL, **dates)  # type: ignore[arg-type]
    return {d.rule: d.due for d in computed}


def _appeal(
    profile: Profile, received: date, decided: date, notified: date | None
) -> list[ComputedDeadline]:
    computed = case_deadlines(
        profile.rules.values(), "appeal", received, decided, CAL, notified=notified
    )
    return rules.filing_windows(profile, computed)


# --- §2 appeal windows ----------------------------------------------------------------------------


def test_sgc_appeal_counts_from_the_notice_received_not_the_decision() -> None:
    # Decision Fri 18 Sep; its notice arrives 12 working days later: Sun 20 (make-up), 21-24,
    # 28-30, 8, 9, Sat 10 (make-up), Mon 12 Oct. Ten working days from then: 13-16, 19-23, 26.
    decided, notified = date(2026, 9, 18), date(2026, 10, 12)
    filed = date(2026, 10, 22)  # 8 working days after the notice: in time
    windows = _appeal(SGC, filed, decided, notified)
    assert [(w.rule, w.due) for w in windows] == [("appeal.filing_window", date(2026, 10, 26))]
    assert not rules.out_of_time(filed, windows)
    assert rules.out_of_time(
        date(2026, 10, 27), _appeal(SGC, date(2026, 10, 27), decided, notified)
    )
    # Counted from the decision it would have ended on Fri 9 Oct, before the notice came.
    assert rules.deadline_start(SGC, "appeal.filing_window", filed, decided, notified) == notified


def test_bqc_appeal_counts_15_days_from_the_notice() -> None:
    # Notice received Sun 20 Sep: 15 days end Mon 5 Oct, in the National Day break: Thu 8 Oct.
    windows = _appeal(BQC, date(2026, 10, 8), date(2026, 9, 10), date(2026, 9, 20))
    assert [w.due for w in windows] == [date(2026, 10, 8)]
    assert not rules.out_of_time(date(2026, 10, 8), windows)


def test_ggbz_appeal_counts_from_the_day_the_decision_was_made() -> None:
    # GGBZ §8.6.1: three months after the decision of Mon 1 Jun, whenever the notice came.
    windows = _appeal(GGBZ, date(2026, 9, 2), date(2026, 6, 1), date(2026, 7, 15))
    assert [w.due for w in windows] == [date(2026, 9, 1)]
    assert rules.out_of_time(date(2026, 9, 2), windows)


def test_a_window_whose_date_is_not_known_is_unchecked() -> None:
    received = date(2026, 9, 28)
    none = case_deadlines(SGC.rules.values(), "appeal", received, None, CAL)
    assert [r.id for r in rules.unchecked_windows(SGC, "appeal", none)] == ["appeal.filing_window"]
    # The decision alone does not start SGC's window: the notice date is still needed.
    decided_only = case_deadlines(SGC.rules.values(), "appeal", received, date(2026, 9, 1), CAL)
    assert [r.from_ for r in rules.unchecked_windows(SGC, "appeal", decided_only)] == ["notified"]
    # GGBZ's counts from the decision: known, so checked.
    ggbz = case_deadlines(GGBZ.rules.values(), "appeal", received, date(2026, 9, 1), CAL)
    assert rules.unchecked_windows(GGBZ, "appeal", ggbz) == []
    # Complaints have no filing window at all.
    assert rules.unchecked_windows(SGC, "complaint", []) == []


def test_receipt_day_is_the_shanghai_day_of_the_internaldate() -> None:
    # 17:30 UTC on 30 Sep is 01:30 on 1 Oct in Shanghai.
    assert rules.receipt_day(datetime(2026, 9, 30, 17, 30, tzinfo=UTC)) == date(2026, 10, 1)
    assert rules.receipt_day(
        datetime(2026, 9, 30, 23, 59, tzinfo=timezone(timedelta(hours=8)))
    ) == date(2026, 9, 30)
    with pytest.raises(ValueError):
        rules.receipt_day(datetime(2026, 9, 30, 12, 0))


# --- §3 windows our outcome opens; extensions ---------------------------------------------


def test_sgc_outcome_opens_10_working_days_for_the_next_step() -> None:
    # Outcome sent Wed 30 Sep: 8, 9, Sat 10 (make-up), 12-16, 19, 20 Oct.
    sent = date(2026, 9, 30)
    appeal = _due(SGC, "appeal", date(2026, 8, 3), outcome_sent=sent)
    assert appeal["appeal.second_level"] == date(2026, 10, 20)
    complaint = _due(SGC, "complaint", date(2026, 8, 3), outcome_sent=sent)
    assert complaint["complaint.appeal_window"] == date(2026, 10, 20)
    # Before the outcome is sent there is no such window.
    assert "appeal.second_level" not in _due(SGC, "appeal", date(2026, 8, 3))
    assert [r.id for r in rules.followup_windows(SGC, "appeal")] == ["appeal.second_level"]
    assert SGC.cases.next_steps["appeal"].window == "appeal.second_level"
    assert GGBZ.cases.next_steps["complaint"].route == "regulator"
    assert BQC.cases.next_steps["appeal"].route == "accreditation_then_courts"


def test_extension_needs_the_named_approver() -> None:
    due, later = date(2026, 11, 27), date(2026, 12, 28)
    role = rules.check_extension(SGC, "appeal.decision", "R-1", due, later, "王主任")
    assert role == "技术委员会主任"
    assert (
        rules.check_extension(BQC, "appeal.decision", "R-1", due, later, "李")
        == "顾问委员会主任委员"
    )
    with pytest.raises(CaseRefused) as no_one:
        rules.check_extension(SGC, "appeal.decision", "R-1", due, later, "  ")
    assert no_one.value.key == "cases.extension_needs_approver"
    assert no_one.value.args_["role"] == "技术委员会主任"
    with pytest.raises(CaseRefused) as not_allowed:
        rules.check_extension(GGBZ, "appeal.decision", "R-1", due, later, "王")
    assert not_allowed.value.key == "cases.extension_not_allowed"
    with pytest.raises(CaseRefused) as earlier:
        rules.check_extension(SGC, "appeal.decision", "R-1", due, due, "王")
    assert earlier.value.key == "cases.extension_not_later"


# --- §4 SGC complaints ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("about", "expected"),
    [
        # 1 month after Sat 31 Jan is Sat 28 Feb, a make-up workday: kept (§八2.4).
        ("organisation", {"complaint.about_organisation": date(2026, 2, 28)}),
        # 30 days after 31 Jan is Mon 2 Mar (§八2.5).
        ("staff", {"complaint.investigation": date(2026, 3, 2)}),
        ("body", {"complaint.investigation": date(2026, 3, 2)}),
        # Not known yet (an e-mailed complaint): both, so staff see the earlier one.
        (
            None,
            {
                "complaint.about_organisation": date(2026, 2, 28),
                "complaint.investigation": date(2026, 3, 2),
            },
        ),
    ],
)
def test_sgc_complaint_periods_by_whom_it_is_about(
    about: str | None, expected: dict[str, date]
) -> None:
    found = _due(SGC, "complaint", date(2026, 1, 31), about=about)
    # 2 months overall (§八2.6(1)): Tue 31 Mar.
    assert found == expected | {"complaint.written_result": date(2026, 3, 31)}


def test_a_serious_sgc_complaint_starts_the_report_to_the_accreditation_body() -> None:
    # 10 working days after Sat 31 Jan: 2-6, 9-13 Feb (Sat 14 would be the 11th).
    found = _due(SGC, "complaint", date(2026, 1, 31), about="organisation", serious=True)
    assert found["complaint.serious_report"] == date(2026, 2, 13)
    assert "complaint.serious_report" not in _due(SGC, "complaint", date(2026, 1, 31))
    # Only complaints can be serious.
    assert "complaint.serious_report" not in _due(SGC, "appeal", date(2026, 1, 31), serious=True)
    assert SGC.cases.serious_clause and "§八2.4" in SGC.cases.serious_clause


def test_complaint_about_maps_the_chat_answer() -> None:
    assert rules.complaint_about("certified") == "organisation"
    assert rules.complaint_about("staff") == "staff"
    assert rules.complaint_about(None) is None
    assert rules.complaint_about("weather") is None


def test_about_is_refused_outside_complaints_and_for_unknown_parties() -> None:
    import tomllib
    from pathlib import Path

    import bot.profiles as shipped

    data = tomllib.loads((Path(shipped.__file__).parent / "sgc.toml").read_text("utf-8"))
    data["rules"]["appeal"]["decision"]["about"] = ["staff"]
    with pytest.raises(ProfileError, match=r"rules.appeal.decision.about"):
        parse_profile(data, "sgc.toml")
    data = tomllib.loads((Path(shipped.__file__).parent / "sgc.toml").read_text("utf-8"))
    data["rules"]["complaint"]["investigation"]["about"] = ["neighbours"]
    with pytest.raises(ProfileError, match=r"rules.complaint.investigation.about"):
        parse_profile(data, "sgc.toml")
    data = tomllib.loads((Path(shipped.__file__).parent / "sgc.toml").read_text("utf-8"))
    data["cases"]["next_steps"]["appeal"]["window"] = "appeal.decision"
    with pytest.raises(ProfileError, match=r"does not count from outcome_sent"):
        parse_profile(data, "sgc.toml")
