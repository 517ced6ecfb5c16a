"""Audit-time and fee estimate from a profile: pure arithmetic, exact fractions throughout.

Exact `Fraction`s, not floats, so that a value on a quarter (5.25) rounds up as the rule says
instead of sliding to 5.0 through binary error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from itertools import pairwise
from typing import Any

from bot.domain.policy import AuditTime, Fees, Profile


class QuoteUnavailable(ValueError):
    """The profile has no audit-time table, so no estimate can be given."""


@dataclass(frozen=True)
class SitesSampled:
    initial: int
    surveillance: int
    recertification: int


@dataclass(frozen=True)
class Quote:
    profile: str
    headcount: int
    sites: int
    initial_days: Fraction
    surveillance_days: Fraction
    recertification_days: Fraction
    sites_sampled: SitesSampled
    fees: dict[str, Any] | None
    clause: str
    sampling_clause: str
    max_reduction: float
    # What the quote must say so its figures read right (issue 15 §6).
    rounding_clause: str | None = None
    borrowed_from: str | None = None
    site_share: Fraction = Fraction(1, 2)
    site_share_clause: str | None = None
    other_fees: tuple[dict[str, Any], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "initial_days": float(self.initial_days),
            "surveillance_days": float(self.surveillance_days),
            "recertification_days": float(self.recertification_days),
            "sites_sampled": {
                "initial": self.sites_sampled.initial,
                "surveillance": self.sites_sampled.surveillance,
                "recertification": self.sites_sampled.recertification,
            },
            "fees": self.fees,
            "clause": self.clause,
            "sampling_clause": self.sampling_clause,
            "max_reduction": self.max_reduction,
            "rounding_clause": self.rounding_clause,
            "borrowed_from": self.borrowed_from,
            "site_share": str(self.site_share),
            "site_share_clause": self.site_share_clause,
            "other_fees": list(self.other_fees),
            "profile": self.profile,
            "headcount": self.headcount,
            "sites": self.sites,
        }


def exact(value: float | int | str) -> Fraction:
    """A TOML number as written (0.6 → 3/5, not the nearest binary float)."""
    return Fraction(str(value))


def round_half_day(days: Fraction) -> Fraction:
    """Nearest half day, quarters up: 5.2 → 5, 5.25 → 5.5, 5.3 → 5.5 (GGBZ §5.7.4)."""
    return Fraction(math.floor(days * 2 + Fraction(1, 2)), 2)


def interpolate(points: tuple[tuple[int, float], ...], headcount: int) -> Fraction:
    """Unrounded days: linear between points, the last segment's slope beyond the last row."""
    pts = [(Fraction(x), exact(y)) for x, y in points]
    if headcount <= pts[0][0]:
        return pts[0][1]
    for (x0, y0), (x1, y1) in pairwise(pts):
        if headcount <= x1:
            return y0 + (headcount - x0) * (y1 - y0) / (x1 - x0)
    (x0, y0), (x1, y1) = pts[-2], pts[-1]
    return y1 + (headcount - x1) * (y1 - y0) / (x1 - x0)


def sampled(factor: float, sites: int) -> int:
    """ceil(factor·√sites), at least 1, computed exactly: smallest n with n² ≥ factor²·sites."""
    target = exact(factor) ** 2 * sites
    n = math.isqrt(math.floor(target))
    while n * n < target:
        n += 1
    return max(1, n)


def audit_days(table: AuditTime, headcount: int) -> tuple[Fraction, Fraction, Fraction]:
    initial = round_half_day(interpolate(table.points, headcount))
    return (
        initial,
        round_half_day(initial * table.surveillance),
        round_half_day(initial * table.recertification),
    )


def _cny(amount: Fraction) -> int:
    return math.floor(amount + Fraction(1, 2))  # whole yuan, half up


def fee_breakdown(fees: Fees, initial_days: Fraction) -> dict[str, Any]:
    """Initial certification itemised; per-year surveillance; recertification (CNY)."""
    audit = initial_days * fees.audit_per_day_cny
    initial = {
        "application": fees.application_cny,
        "registration": fees.registration_cny,
        "audit": _cny(audit),
    }
    initial["total"] = sum(initial.values())
    surveillance_audit = _cny(audit * Fraction(fees.surveillance_fraction))
    surveillance = {
        "audit": surveillance_audit,
        "annual_fee": fees.annual_cny,
        "total": surveillance_audit + fees.annual_cny,
    }
    recert_audit = _cny(audit * Fraction(fees.recertification_fraction))
    result: dict[str, Any] = {
        "currency": "CNY",
        "audit_per_day": fees.audit_per_day_cny,
        "initial": initial,
        "surveillance_per_year": surveillance,
        "recertification": {"audit": recert_audit, "total": recert_audit},
        "extra_category_days": list(fees.extra_category_days or []) or None,
        "special_category_days": list(fees.special_category_days or []) or None,
        "travel_at_cost": fees.travel_at_cost,
        "clause": fees.clause,
    }
    if fees.pre_audit_fraction is not None:
        result["pre_audit"] = _cny(audit * Fraction(fees.pre_audit_fraction))
    return result


def other_fees(profile: Profile, initial_days: Fraction | None = None) -> list[dict[str, Any]]:
    """The fees besides the schedule: amounts, or a fraction of the initial audit fee (its
    amount only when both the days and a per-day fee are known)."""
    per_day = profile.fees.audit_per_day_cny if profile.fees else None
    out = []
    for fee in profile.other_fees:
        row: dict[str, Any] = {"id": fee.id, "clause": fee.clause, "cny": fee.cny}
        if fee.fraction_of_initial_audit is not None:
            share = Fraction(fee.fraction_of_initial_audit)
            row["fraction_of_initial_audit"] = str(share)
            if initial_days is not None and per_day is not None:
                row["cny"] = _cny(initial_days * per_day * share)
        out.append(row)
    return out


def quote(profile: Profile, headcount: int, sites: int = 1) -> Quote:
    """Audit days for `headcount` effective people, sampled sites of `sites`, and fees."""
    if headcount < 1:
        raise ValueError(f"headcount must be 1 or more, not {headcount}")
    if sites < 1:
        raise ValueError(f"sites must be 1 or more, not {sites}")
    table = profile.audit_time
    if table is None:
        raise QuoteUnavailable(f"profile {profile.body.id!r} has no audit-time table")
    initial, surveillance, recertification = audit_days(table, headcount)
    multi = table.multisite
    return Quote(
        profile=profile.body.id,
        headcount=headcount,
        sites=sites,
        initial_days=initial,
        surveillance_days=surveillance,
        recertification_days=recertification,
        sites_sampled=SitesSampled(
            initial=sampled(multi.initial, sites),
            surveillance=sampled(multi.surveillance, sites),
            recertification=sampled(multi.recertification, sites),
        ),
        fees=fee_breakdown(profile.fees, initial) if profile.fees else None,
        clause=table.clause,
        sampling_clause=multi.clause,
        max_reduction=table.max_reduction,
        rounding_clause=table.rounding_clause,
        borrowed_from=table.borrowed_from,
        site_share=Fraction(multi.site_share),
        site_share_clause=multi.site_share_clause,
        other_fees=tuple(other_fees(profile, initial)),
    )


__all__ = ["Quote", "QuoteUnavailable", "SitesSampled", "other_fees", "quote", "round_half_day"]
