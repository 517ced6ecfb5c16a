"""The audit-time table, multi-site sampling and the fee schedule of a policy profile."""

from __future__ import annotations

from fractions import Fraction
from itertools import pairwise

from pydantic import Field, field_validator

from bot.domain.policy_base import Strict


def _fraction(text: str) -> Fraction:
    try:
        value = Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"{text!r} is not a fraction like '1/3'") from None
    if not 0 < value <= 1:
        raise ValueError(f"{text!r} must be more than 0 and at most 1")
    return value


class Multisite(Strict):
    """Sampled similar sites: ceil(factor · √X) per audit type."""

    initial: float = Field(default=1.0, gt=0)
    surveillance: float = Field(default=0.6, gt=0)
    recertification: float = Field(default=0.8, gt=0)
    clause: str = Field(min_length=1)
    # Each sampled site gets at least this share of its own single-site time (GGBZ §5.4.3.3).
    site_share: str = "1/2"
    site_share_clause: str | None = Field(default=None, min_length=1)


class AuditTime(Strict):
    """Initial audit days by effective headcount: [upper headcount, days] points."""

    clause: str = Field(min_length=1)
    # Whose table this is, when the body publishes none of its own (BQC borrows GGBZ's).
    borrowed_from: str | None = Field(default=None, min_length=1)
    # The clauses that prescribe 1/3 and 2/3 rounded to the nearest half day (GGBZ §5.7.4, §5.8.5).
    rounding_clause: str | None = Field(default=None, min_length=1)
    points: tuple[tuple[int, float], ...] = Field(min_length=2)
    surveillance_fraction: str = "1/3"
    recertification_fraction: str = "2/3"
    max_reduction: float = Field(default=0.30, ge=0, lt=1)
    multisite: Multisite

    @field_validator("points")
    @classmethod
    def _increasing(cls, value: tuple[tuple[int, float], ...]) -> tuple[tuple[int, float], ...]:
        if value[0][0] < 1 or any(days <= 0 for _, days in value):
            raise ValueError("headcounts start at 1 or more and days are positive")
        for (x0, y0), (x1, y1) in pairwise(value):
            if x1 <= x0:
                raise ValueError(f"headcounts must be strictly increasing ({x0} then {x1})")
            if y1 < y0:
                raise ValueError(f"days must not decrease ({y0} then {y1})")
        return value

    @field_validator("surveillance_fraction", "recertification_fraction")
    @classmethod
    def _is_fraction(cls, value: str) -> str:
        _fraction(value)
        return value

    @property
    def surveillance(self) -> Fraction:
        return _fraction(self.surveillance_fraction)

    @property
    def recertification(self) -> Fraction:
        return _fraction(self.recertification_fraction)


class OtherFee(Strict):
    """A fee besides the schedule's: a fixed amount, or a fraction of the initial audit fee."""

    id: str = Field(pattern=r"^[a-z0-9_]+$")
    cny: int | None = Field(default=None, ge=0)
    fraction_of_initial_audit: str | None = None
    clause: str = Field(min_length=1)

    @field_validator("fraction_of_initial_audit")
    @classmethod
    def _is_fraction(cls, value: str | None) -> str | None:
        if value is not None:
            _fraction(value)
        return value


class Fees(Strict):
    """A fee schedule in CNY; audit fees are auditor-days × audit_per_day_cny."""

    clause: str = Field(min_length=1)
    application_cny: int = Field(ge=0)
    registration_cny: int = Field(ge=0)
    audit_per_day_cny: int = Field(gt=0)
    annual_cny: int = Field(default=0, ge=0)  # per year, incl. mark use where the body says so
    surveillance_fraction: str = "1/3"  # of the initial audit fee, per surveillance audit
    recertification_fraction: str = "2/3"  # of the initial audit fee
    pre_audit_fraction: str | None = None  # optional pre-audit, of the initial audit fee
    extra_category_days: tuple[float, float] | None = None
    special_category_days: tuple[float, float] | None = None
    travel_at_cost: bool = True

    @field_validator("surveillance_fraction", "recertification_fraction", "pre_audit_fraction")
    @classmethod
    def _is_fraction(cls, value: str | None) -> str | None:
        if value is not None:
            _fraction(value)
        return value
