"""The IETP status model (seed 000): validity per status, valid certificate or not, the statuses
only for a factory certified before, the US$800 fee, and the termination period that refuses a
new application. Dates worked by hand (Civil Code arts. 201-202)."""

from __future__ import annotations

from datetime import date

import pytest

from bot.domain.statuses import PastStatus, StatusRefused, grant, is_certificate, reapply_from
from bot.profiles import load_profile

IETP = load_profile("ietp")
MODEL = IETP.statuses
assert MODEL is not None
D = date(2026, 3, 10)
CERTIFIED_BEFORE = [PastStatus("certified", date(2025, 3, 1), date(2026, 3, 1))]


@pytest.mark.parametrize(
    ("status", "months", "ends", "valid"),
    [
        ("certified", None, date(2027, 3, 10), True),  # 12 months
        ("progressing", None, date(2026, 9, 10), False),  # 6 months
        ("assessed", None, date(2027, 1, 10), False),  # 10 months: March + 10 is January
        ("terminated", None, date(2026, 9, 10), False),  # at least 6 months
        ("terminated", 9, date(2026, 12, 10), False),
    ],
)
def test_validity_per_status(status: str, months: int | None, ends: date, valid: bool) -> None:
    g = grant(MODEL, status, months, D, [], fee_paid=True)
    assert (g.ends_on, g.certificate) == (ends, valid)


def test_month_end_clamps_to_the_last_day() -> None:
    g = grant(MODEL, "progressing", None, date(2026, 8, 31), [], fee_paid=False)
    assert g.ends_on == date(2027, 2, 28)  # 6 months after 08-31: February has no 31st


def test_remediation_needs_9_or_12_chosen_and_a_prior_certificate() -> None:
    assert grant(MODEL, "remediation", 9, D, CERTIFIED_BEFORE, fee_paid=True).ends_on == date(
        2026, 12, 10
    )
    assert grant(MODEL, "remediation", 12, D, CERTIFIED_BEFORE, fee_paid=True).validity_months == 12
    for months in (None, 6, 10):
        with pytest.raises(StatusRefused) as exc:
            grant(MODEL, "remediation", months, D, CERTIFIED_BEFORE, fee_paid=True)
        assert exc.value.key == "validity" and "9 or 12" in str(exc.value)
    with pytest.raises(StatusRefused) as exc:
        grant(MODEL, "remediation", 12, D, [], fee_paid=True)
    assert exc.value.key == "no_prior"


def test_probation_only_after_a_certificate_not_after_an_assessment() -> None:
    assessed = [PastStatus("assessed", date(2025, 3, 1), date(2026, 1, 1))]
    with pytest.raises(StatusRefused) as exc:
        grant(MODEL, "probation", None, D, assessed, fee_paid=True)
    assert exc.value.key == "no_prior"
    # A certificate decided later than this one is no history of it.
    later = [PastStatus("certified", date(2026, 4, 1), date(2027, 4, 1))]
    with pytest.raises(StatusRefused):
        grant(MODEL, "probation", None, D, later, fee_paid=True)
    assert grant(MODEL, "probation", None, D, CERTIFIED_BEFORE, fee_paid=True).certificate


def test_a_certificate_is_issued_only_once_the_fee_is_paid() -> None:
    with pytest.raises(StatusRefused) as exc:
        grant(MODEL, "certified", None, D, [], fee_paid=False)
    assert exc.value.key == "fee_unpaid" and "US$800" in str(exc.value)
    # Not-certified statuses have no certificate to pay for.
    assert not grant(MODEL, "assessed", None, D, [], fee_paid=False).certificate


def test_termination_shorter_than_6_months_and_unknown_status_are_refused() -> None:
    with pytest.raises(StatusRefused) as exc:
        grant(MODEL, "terminated", 5, D, [], fee_paid=False)
    assert exc.value.key == "too_short"
    with pytest.raises(StatusRefused) as exc:
        grant(MODEL, "valid", None, D, [], fee_paid=True)
    assert exc.value.key == "unknown_status"


def test_only_certificate_statuses_are_valid_and_only_until_they_end() -> None:
    assert is_certificate(MODEL, "certified", date(2027, 3, 10), date(2027, 3, 10))
    assert not is_certificate(MODEL, "certified", date(2027, 3, 10), date(2027, 3, 11))
    for status in ("progressing", "assessed", "terminated"):
        assert not is_certificate(MODEL, status, date(2027, 3, 10), date(2026, 6, 1))


def test_reapplication_refused_until_the_termination_period_ends() -> None:
    history = [PastStatus("terminated", D, date(2026, 9, 10))]
    assert reapply_from(MODEL, history, date(2026, 6, 1)) == date(2026, 9, 11)
    assert reapply_from(MODEL, history, date(2026, 9, 10)) == date(2026, 9, 11)
    assert reapply_from(MODEL, history, date(2026, 9, 11)) is None
    assert reapply_from(MODEL, CERTIFIED_BEFORE, date(2026, 6, 1)) is None


def test_every_status_cites_seed_000() -> None:
    assert all(s.clause.startswith("IETP 第5步") for s in MODEL.statuses)
    progressing = MODEL.get("progressing")
    assert progressing is not None and progressing.plan_start_months == 3
    assessed = MODEL.get("assessed")
    assert assessed is not None and assessed.follow_up_audit


def test_no_new_status_while_a_termination_runs() -> None:
    history = [PastStatus("terminated", D, date(2026, 9, 10))]
    with pytest.raises(StatusRefused) as exc:
        grant(MODEL, "assessed", None, date(2026, 9, 10), history, fee_paid=False)
    assert exc.value.key == "terminated" and "from 2026-09-11" in str(exc.value)
    assert grant(MODEL, "assessed", None, date(2026, 9, 11), history, fee_paid=False).ends_on == (
        date(2027, 7, 11)
    )
