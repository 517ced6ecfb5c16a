"""A profile's rules for change reports and suspensions (the `[change_report]`, `[suspension]`
tables). The periods themselves are `rules.change.*` / `rules.suspension.*` time rules."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from bot.domain.policy_base import KeyedError, Strict

# The kinds of change the seeds list (GGBZ §5.7.6 and 获证组织责任 (4); BQC 获证组织信息通报制度 四
# and 认证规则 §8.9; SGC 六). One list for all bodies: each body's own words cover the same facts.
CHANGE_KINDS: tuple[str, ...] = (
    "name",
    "address",
    "legal_status",
    "ownership",
    "organisation",
    "legal_rep",
    "operations",
    "licences",
    "scope",
    "headcount",
    "products",
    "system",
    "accident",
    "penalty",
    "spot_check",
    "complaint",
    "media",
    "dishonest_list",
    "contact_details",
    "other",
)


class ChangeReportPolicy(Strict):
    """When an organisation must report: a `rules.change.*` period per kind where the body gives
    one; otherwise the body's own word (`timing`) and `clause`, never an invented number."""

    timing: Literal["promptly", "at_once"]
    clause: str = Field(min_length=1)
    # change kind -> rule id (a rule with applies_to = "change_report")
    periods: dict[str, str] = Field(default_factory=dict)
    routine_rule: str | None = None  # the routine report after a surveillance notice (BQC)

    @field_validator("periods")
    @classmethod
    def _known_kinds(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(CHANGE_KINDS))
        if unknown:
            raise KeyedError(f"periods.{unknown[0]}", f"unknown change kind {unknown[0]!r}")
        return value


class SuspensionPolicy(Strict):
    """How long a suspension may last, in whole months (GGBZ §7.3.4 1–6; BQC §15 ≤ 6)."""

    min_months: int = Field(default=1, ge=1)
    max_months: int = Field(gt=0)
    clause: str = Field(min_length=1)

    @model_validator(mode="after")
    def _ordered(self) -> SuspensionPolicy:
        if self.min_months > self.max_months:
            raise KeyedError("min_months", "is more than max_months")
        return self
