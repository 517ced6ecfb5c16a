"""Pure register rules: credit codes, the longest validity, suspension lengths, link codes,
change-report periods and major nonconformities by audit type (2026 calendar)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from bot.domain.calendar import WorkCalendar
from bot.domain.certificates import (
    change_kinds,
    change_period,
    check_uscc,
    latest_expiry,
    link_code_hash,
    new_link_code,
    normalise_link_code,
    routine_rule,
    suspension_end,
    suspension_problem,
    validity_problem,
)
from bot.domain.policy import ProfileError
from bot.domain.policy_certificates import CHANGE_KINDS
from bot.domain.reminders import CertificateFacts, OpenNonconformity, schedule
from bot.profiles import load_profile

GGBZ, BQC, SGC = load_profile("ggbz"), load_profile("bqc"), load_profile("sgc")


def test_credit_code_length_characters_and_check_digit() -> None:
    assert check_uscc("9111 0000 6000 3734 1l") == "91110000600037341L"
    with pytest.raises(ValueError, match="17 characters, not 18"):
        check_uscc("91110000600037341")
    with pytest.raises(ValueError, match="check digit"):
        check_uscc("91110000600037341M")
    with pytest.raises(ValueError, match="unified social credit code"):
        check_uscc("9111000060003734IL")  # I is not in GB 32100's character set


def test_validity_is_at_most_three_years_counted_as_the_civil_code_counts() -> None:
    assert latest_expiry(date(2026, 7, 10), 36) == date(2029, 7, 10)
    assert validity_problem(date(2026, 7, 10), date(2029, 7, 9), 36) is None
    assert validity_problem(date(2026, 7, 10), date(2029, 7, 10), 36) is None
    too_long = validity_problem(date(2026, 7, 10), date(2029, 7, 11), 36)
    assert too_long is not None and "longer than 36 months" in too_long
    assert latest_expiry(date(2024, 2, 29), 36) == date(2027, 2, 28)  # no 29 February in 2027
    assert validity_problem(date(2026, 7, 10), date(2026, 7, 10), 36) == (
        "expires_on is not after decided_on"
    )


def test_suspension_lasts_one_to_six_months() -> None:
    assert GGBZ.suspension is not None and BQC.suspension is not None
    assert (GGBZ.suspension.min_months, GGBZ.suspension.max_months) == (1, 6)
    assert BQC.suspension.max_months == 6 and "§15.2" in BQC.suspension.clause
    assert suspension_end(date(2026, 8, 31), 6) == date(2027, 2, 28)
    assert suspension_end(date(2026, 3, 31), 1) == date(2026, 4, 30)
    assert suspension_problem(6, 1, 6) is None
    assert suspension_problem(7, 1, 6) == "a suspension lasts 1 to 6 months, not 7"
    assert suspension_problem(0, 1, 6) is not None


def test_link_codes_are_random_normalised_and_stored_hashed() -> None:
    codes = {new_link_code() for _ in range(200)}
    assert len(codes) == 200
    code = codes.pop()
    assert len(code) == 14 and code.count("-") == 2
    assert normalise_link_code(code.lower().replace("-", " ")) == code
    assert normalise_link_code("ABCD-EFGH-IJK0") is None  # I and 0 are never drawn
    assert normalise_link_code("short") is None
    assert len(link_code_hash(code)) == 64 and link_code_hash(code) != code


def test_change_periods_are_each_bodys_own() -> None:
    accident = change_period(BQC, "accident")
    assert accident.rule is not None and (accident.rule.count, accident.rule.unit) == (3, "days")
    name = change_period(BQC, "name")
    assert name.rule is not None and name.rule.count == 14 and "二周" in name.clause
    legal_rep = change_period(BQC, "legal_rep")
    assert legal_rep.rule is None and legal_rep.timing == "promptly"
    routine = routine_rule(BQC)
    assert routine is not None and (routine.count, routine.from_) == (7, "surveillance_notice")
    assert change_period(BQC, "routine").rule == routine  # one week after a surveillance notice
    assert change_kinds(BQC)[-1] == "routine" and "routine" not in change_kinds(GGBZ)
    # GGBZ says 及时, SGC 第一时间: no number is invented for either.
    for kind in CHANGE_KINDS:
        assert change_period(GGBZ, kind).rule is None
        assert change_period(GGBZ, kind).timing == "promptly"
        assert change_period(SGC, kind).timing == "at_once"
    assert "§5.7.6" in change_period(GGBZ, "accident").clause
    assert routine_rule(GGBZ) is None
    assert len(CHANGE_KINDS) >= 15


def test_a_change_period_naming_no_change_rule_is_refused(tmp_path: Path) -> None:
    from bot.profiles import PROFILE_DIR

    text = (PROFILE_DIR / "bqc.toml").read_text(encoding="utf-8")
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace('name = "change.name_address"', 'name = "nc.minor"'), "utf-8")
    with pytest.raises(ProfileError, match=r"change_report\.periods\.name"):
        load_profile(str(bad))


def test_major_nonconformity_period_follows_the_audit_that_found_it() -> None:
    cert = CertificateFacts(1, "N", "H", "valid", date(2025, 7, 10), date(2028, 7, 9))
    raised = date(2026, 4, 30)
    ncs = [
        OpenNonconformity(1, "major", raised, "initial"),
        OpenNonconformity(2, "major", raised, "surveillance"),
        OpenNonconformity(3, "major", raised, "recertification"),
        OpenNonconformity(4, "major", raised),
        OpenNonconformity(5, "minor", raised, "surveillance"),
    ]
    items = schedule(GGBZ, cert, ncs, WorkCalendar(), date(2026, 5, 1))
    due = {i.rule_id: (i.due_on, i.clause) for i in items if i.topic == "nonconformity"}
    assert due["nc.major_verify.initial:1"][0] == date(2026, 10, 30)  # 6 months after stage 2
    assert due["nc.major_verify.surveillance:2"][0] == date(2026, 7, 30)  # 3 months
    # 1 month: Saturday 2026-05-30, so the next working day, Monday 1 June.
    assert due["nc.major_verify.recertification:3"][0] == date(2026, 6, 1)
    assert "§5.10.3(3)" in due["nc.major_verify.recertification:3"][1]
    assert due["nc.major:4"][0] == date(2026, 10, 30)  # audit type unknown: the general rule
    assert due["nc.minor:5"][0] == date(2026, 7, 29)  # 90 days
