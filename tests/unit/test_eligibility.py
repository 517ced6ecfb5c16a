"""Eligibility verdicts: eligible, not eligible (with clauses), eligible from a date."""

from datetime import date

import pytest

from bot.domain.eligibility import Verdict, add_months, questions, verdict
from bot.domain.policy import Profile
from bot.profiles import load_profile

TODAY = date(2026, 6, 15)


def passing(profile: Profile, scheme: str | None = None) -> dict[str, bool | date]:
    """Answers that meet every condition; the system started a year ago."""
    answers: dict[str, bool | date] = {}
    for cond in questions(profile, scheme):
        if cond.kind == "yes_no":
            assert cond.pass_answer is not None
            answers[cond.id] = cond.pass_answer
        else:
            answers[cond.id] = date(2025, 6, 1)
    return answers


@pytest.mark.parametrize(
    ("start", "months", "end"),
    [
        (date(2026, 1, 10), 3, date(2026, 4, 10)),
        (date(2025, 11, 30), 3, date(2026, 2, 28)),
        (date(2024, 2, 29), 12, date(2025, 2, 28)),
        (date(2023, 11, 30), 3, date(2024, 2, 29)),
        (date(2025, 10, 31), 6, date(2026, 4, 30)),
        (date(2025, 12, 15), 1, date(2026, 1, 15)),
    ],
)
def test_add_months_clamps_to_month_end(start: date, months: int, end: date) -> None:
    assert add_months(start, months) == end


def test_ggbz_questions_include_internal_audit_and_review() -> None:
    ids = [c.id for c in questions(load_profile("ggbz"))]
    assert {"internal_audit", "management_review", "running", "dishonest_list"} <= set(ids)
    running = next(c for c in questions(load_profile("ggbz")) if c.id == "running")
    assert running.min_months == 3 and "§5.1.3(6)" in running.clause


def test_bqc_questions_depend_on_scheme() -> None:
    bqc = load_profile("bqc")
    assert "eia" in [c.id for c in questions(bqc, "EMS")]
    assert "eia" not in [c.id for c in questions(bqc, "QMS")]
    assert "hazard_posts" in [c.id for c in questions(bqc, "OHSMS")]
    with pytest.raises(ValueError):
        questions(bqc, "XYZ")


@pytest.mark.parametrize("name", ["ggbz", "bqc", "sgc"])
def test_eligible(name: str) -> None:
    profile = load_profile(name)
    scheme = "QMS" if name == "bqc" else None
    result = verdict(profile, passing(profile, scheme), TODAY, scheme)
    assert result.status == "eligible" and not result.failures


def test_not_eligible_lists_every_failure_with_clause() -> None:
    ggbz = load_profile("ggbz")
    answers = passing(ggbz) | {"internal_audit": False, "dishonest_list": True}
    result = verdict(ggbz, answers, TODAY)
    assert result.status == "not_eligible"
    assert [f.id for f in result.failures] == ["internal_audit", "dishonest_list"]
    assert all(f.clause.startswith("GGBZ §5.1.2") for f in result.failures)
    assert [f.absolute for f in result.failures] == [False, True]
    assert result.absolute and result.eligible_on is None


def test_not_eligible_also_names_a_waiting_period() -> None:
    ggbz = load_profile("ggbz")
    answers = passing(ggbz) | {"running": date(2026, 5, 1), "licences": False}
    result = verdict(ggbz, answers, TODAY)
    assert result.status == "not_eligible"
    running = next(f for f in result.failures if f.id == "running")
    assert running.until == date(2026, 8, 1)


def test_eligible_from_the_day_the_period_is_reached() -> None:
    ggbz = load_profile("ggbz")
    result = verdict(ggbz, passing(ggbz) | {"running": date(2026, 4, 15)}, TODAY)
    assert result.status == "eligible_from"
    assert result.eligible_on == date(2026, 7, 15)
    assert [f.id for f in result.failures] == ["running"]
    # on that day it is eligible
    on_day = verdict(ggbz, passing(ggbz) | {"running": date(2026, 4, 15)}, date(2026, 7, 15))
    assert on_day.status == "eligible"


def test_enms_needs_six_months_at_bqc() -> None:
    bqc = load_profile("bqc")
    started = {"running": date(2026, 2, 28)}
    assert verdict(bqc, passing(bqc, "QMS") | started, TODAY, "QMS").status == "eligible"
    enms = verdict(bqc, passing(bqc, "EnMS") | started, TODAY, "EnMS")
    assert enms.status == "eligible_from" and enms.eligible_on == date(2026, 8, 28)


def test_missing_or_mistyped_answer_is_a_caller_error() -> None:
    ggbz = load_profile("ggbz")
    answers = passing(ggbz)
    del answers["legal_person"]
    with pytest.raises(ValueError, match="legal_person"):
        verdict(ggbz, answers, TODAY)
    with pytest.raises(ValueError, match="running"):
        verdict(ggbz, passing(ggbz) | {"running": True}, TODAY)
    with pytest.raises(ValueError, match="legal_person"):
        verdict(ggbz, passing(ggbz) | {"legal_person": date(2020, 1, 1)}, TODAY)


def test_verdict_round_trips_through_json() -> None:
    ggbz = load_profile("ggbz")
    for answers in (
        passing(ggbz),
        passing(ggbz) | {"running": date(2026, 4, 15)},
        passing(ggbz) | {"suspension_order": True, "running": date(2026, 6, 1)},
    ):
        result = verdict(ggbz, answers, TODAY)
        data = result.to_json()
        assert Verdict.from_json(data) == result
        assert data["status"] in {"eligible", "not_eligible", "eligible_from"}
    assert data["absolute"] is True
    assert data["failures"][0] == {
        "id": "running",
        "clause": data["failures"][0]["clause"],
        "absolute": False,
        "until": "2026-09-01",
    }
