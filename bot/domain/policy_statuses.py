"""The `[statuses]` section of a policy profile: a programme whose outcome is one of several
statuses, each with its own validity (IETP, seed 000), instead of one certificate validity.

Each status says whether it is a valid certificate, the validity periods staff may choose from,
whether it is only for a factory certified before, and — for a termination — the shortest period
during which a new application is refused. A fee may have to be paid before a certificate is
issued.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from bot.domain.policy_base import KeyedError, Strict


class StatusRule(Strict):
    id: str = Field(pattern=r"^[a-z_]+$")
    certificate: bool  # a valid certificate (else "not certified", said plainly)
    validity_months: tuple[int, ...] = ()  # staff choose one; () with min_months
    min_months: int | None = Field(default=None, gt=0)  # at least (a termination period)
    requires_prior_certification: bool = False
    refuses_reapplication: bool = False  # while the status lasts
    plan_start_months: int | None = Field(default=None, gt=0)  # corrective plan started within
    follow_up_audit: bool = False  # a follow-up audit may be scheduled
    clause: str = Field(min_length=1)
    note: str | None = None

    @model_validator(mode="after")
    def _one_period(self) -> StatusRule:
        if bool(self.validity_months) == (self.min_months is not None):
            raise KeyedError("validity_months", "give validity_months or min_months, not both")
        if any(m <= 0 for m in self.validity_months):
            raise KeyedError("validity_months", "months must be positive")
        return self


class StatusModel(Strict):
    statuses: tuple[StatusRule, ...] = Field(min_length=1)
    fee_usd: int | None = Field(default=None, gt=0)  # paid before a certificate is issued
    fee_clause: str | None = Field(default=None, min_length=1)
    clause: str = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> StatusModel:
        ids = [s.id for s in self.statuses]
        if len(set(ids)) != len(ids):
            raise KeyedError("statuses", "duplicate status id")
        if self.fee_usd is not None and self.fee_clause is None:
            raise KeyedError("fee_clause", "missing (a fee is set)")
        return self

    def get(self, status_id: str) -> StatusRule | None:
        return next((s for s in self.statuses if s.id == status_id), None)


__all__ = ["StatusModel", "StatusRule"]
