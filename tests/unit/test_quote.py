"""Audit days from GGBZ Appendix A, sampled sites, and BQC fees."""

from fractions import Fraction

import pytest

from bot.domain.policy import Profile
from bot.domain.quote import QuoteUnavailable, quote, round_half_day
from bot.profiles import load_profile

GGBZ_ROWS = [
    (10, 2), (25, 3), (45, 4), (65, 5), (85, 6), (125, 7), (175, 8), (275, 9), (425, 10),
    (625, 11), (875, 12), (1175, 13), (1550, 14), (2025, 15), (2675, 16), (3450, 17),
    (4350, 18), (5450, 19), (6800, 20), (8500, 21), (10700, 22),
]  # fmt: skip


@pytest.fixture(scope="module")
def ggbz() -> Profile:
    return load_profile("ggbz")


@pytest.mark.parametrize(("headcount", "days"), GGBZ_ROWS)
def test_table_rows(ggbz: Profile, headcount: int, days: int) -> None:
    assert quote(ggbz, headcount).initial_days == days


def test_profile_points_are_appendix_a(ggbz: Profile) -> None:
    assert ggbz.audit_time.points == ((1, 1.5), *GGBZ_ROWS)


def test_one_person_is_a_day_and_a_half(ggbz: Profile) -> None:
    q = quote(ggbz, 1)
    assert q.initial_days == Fraction(3, 2)
    assert q.to_json()["initial_days"] == 1.5


@pytest.mark.parametrize(
    ("headcount", "days"),
    [
        (4, 1.5),  # 1.5 + 3/18 = 1.667 → 1.5
        (6, 2),  # 1.5 + 5/18 = 1.778 → 2
        (100, 6.5),  # 6 + 15/40 = 6.375 → 6.5
        (95, 6.5),  # 6 + 10/40 = 6.25 → a quarter rounds up
    ],
)
def test_between_rows(ggbz: Profile, headcount: int, days: float) -> None:
    assert quote(ggbz, headcount).to_json()["initial_days"] == days


@pytest.mark.parametrize(
    ("raw", "rounded"),
    [
        ("5.25", "5.5"),
        ("5.2", "5"),
        ("5.3", "5.5"),
        ("5.74", "5.5"),
        ("5.75", "6"),
        ("5", "5"),
        ("5.5", "5.5"),
    ],
)
def test_rounding_to_half_days(raw: str, rounded: str) -> None:
    assert round_half_day(Fraction(raw)) == Fraction(rounded)


def test_quarter_between_rows_rounds_up_without_float_error(ggbz: Profile) -> None:
    # 65 → 5, 85 → 6: 70 people = 5.25 days exactly → 5.5 (a float path gives 5.0 or 5.5 by luck)
    assert quote(ggbz, 70).initial_days == Fraction(11, 2)
    assert quote(ggbz, 69).initial_days == 5  # 5.2 → 5
    assert quote(ggbz, 71).initial_days == Fraction(11, 2)  # 5.3 → 5.5


def test_beyond_the_last_row_follows_the_last_slope(ggbz: Profile) -> None:
    # 8500 → 21, 10700 → 22: one more day per 2200 people
    assert quote(ggbz, 12900).initial_days == 23
    assert quote(ggbz, 11800).initial_days == Fraction(45, 2)
    assert quote(ggbz, 21800).initial_days == 27  # 22 + 11100/2200 = 27.045


def test_surveillance_and_recertification_fractions(ggbz: Profile) -> None:
    q = quote(ggbz, 100)  # initial 6.5
    assert (q.surveillance_days, q.recertification_days) == (2, Fraction(9, 2))  # 2.167, 4.333
    q = quote(ggbz, 10700)  # 22
    assert (q.surveillance_days, q.recertification_days) == (Fraction(15, 2), Fraction(29, 2))


@pytest.mark.parametrize(
    ("sites", "initial", "surveillance", "recertification"),
    [
        (1, 1, 1, 1),
        (2, 2, 1, 2),  # √2 = 1.41; 0.85; 1.13
        (4, 2, 2, 2),  # 2; 1.2; 1.6
        (9, 3, 2, 3),  # 3; 1.8; 2.4
        (25, 5, 3, 4),  # exact: 0.6·5 = 3, 0.8·5 = 4 — no float creep to 4 / 5
        (100, 10, 6, 8),
        (10, 4, 2, 3),  # 3.16; 1.90; 2.53
    ],
)
def test_sites_sampled(
    ggbz: Profile, sites: int, initial: int, surveillance: int, recertification: int
) -> None:
    sampled = quote(ggbz, 50, sites).to_json()["sites_sampled"]
    assert sampled == {
        "initial": initial,
        "surveillance": surveillance,
        "recertification": recertification,
    }


@pytest.mark.parametrize(("headcount", "sites"), [(0, 1), (-5, 1), (10, 0)])
def test_bad_input(ggbz: Profile, headcount: int, sites: int) -> None:
    with pytest.raises(ValueError):
        quote(ggbz, headcount, sites)


def test_json_shape_without_fees(ggbz: Profile) -> None:
    data = quote(ggbz, 30).to_json()
    assert {"initial_days", "surveillance_days", "recertification_days", "sites_sampled"} <= set(
        data
    )
    assert data["fees"] is None
    assert "附录A" in data["clause"]


def test_bqc_fees() -> None:
    data = quote(load_profile("bqc"), 100).to_json()  # 6.5 auditor-days
    fees = data["fees"]
    assert fees["initial"] == {
        "application": 1000,
        "registration": 2000,
        "audit": 19500,
        "total": 22500,
    }
    assert fees["surveillance_per_year"] == {"audit": 6500, "annual_fee": 2000, "total": 8500}
    assert fees["recertification"] == {"audit": 13000, "total": 13000}
    assert fees["currency"] == "CNY" and fees["audit_per_day"] == 3000
    assert fees["extra_category_days"] == [1, 2] and fees["travel_at_cost"] is True
    assert "pre_audit" not in fees


def test_bqc_fee_fractions_use_the_initial_audit_fee() -> None:
    fees = quote(load_profile("bqc"), 1).to_json()["fees"]  # 1.5 days = 4500
    assert fees["initial"]["audit"] == 4500
    assert fees["surveillance_per_year"]["audit"] == 1500
    assert fees["recertification"]["audit"] == 3000


def test_sgc_gives_no_estimate() -> None:
    with pytest.raises(QuoteUnavailable):
        quote(load_profile("sgc"), 10)
