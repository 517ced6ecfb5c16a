"""Policy profiles: a certification body's rules as validated data (bot/profiles/*.toml).

A profile is refused on load with one line, `FILE: KEY: reason`, so a deployer can fix their own
profile without reading a traceback. Every period, condition and checklist item carries the
clause it comes from; the clauses live in the TOML files, not here.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from bot.domain.policy_base import KeyedError, ProfileError, Strict
from bot.domain.policy_cases import ROUTES, CasePolicy, Contact, Kind, NextStep
from bot.domain.policy_certificates import ChangeReportPolicy, SuspensionPolicy
from bot.domain.policy_findings import FindingsPolicy
from bot.domain.policy_quote import AuditTime, Fees, Multisite, OtherFee
from bot.domain.policy_statuses import StatusModel

Unit = Literal["days", "working_days", "months", "years"]

CASE_KINDS: frozenset[str] = frozenset(("appeal", "complaint", "dispute"))
# What starts a case clock: the letter's receipt; the decision appealed (GGBZ §8.6.1 counts from
# the day it was made); the day the appellant received its notice (BQC §19.1, SGC §八1.3(4));
# the day our outcome was sent (SGC §八1.7, §八2.6(4): the complainant's next window).
CASE_EVENTS: frozenset[str] = frozenset(("received", "decided", "notified", "outcome_sent"))
# The dates a filing window counts from (the complainant's time to file, not ours to act).
FILING_EVENTS: frozenset[str] = frozenset(("decided", "notified"))
# Whom a complaint is about (SGC §八2.4 applicant/certified organisation, §八2.5 staff).
COMPLAINT_ABOUT: frozenset[str] = frozenset(("body", "staff", "organisation"))
# Rules a staff member starts by hand (not on every case of a kind), e.g. SGC §八2.4 reports.
MANUAL_CASE_TARGETS: frozenset[str] = frozenset(("serious_complaint",))
CERTIFICATE_TARGETS: frozenset[str] = frozenset(
    ("certificate", "nonconformity", "suspension", "change_report")
)
# What starts a certificate clock: the certification decision, audit ends, expiry, notices.
CERTIFICATE_EVENTS: frozenset[str] = frozenset(
    (
        "decision",
        "stage1_end",
        "stage2_end",
        "audit_end",
        "last_surveillance",
        "expiry",
        "spot_check_notice",
        "verified",
        "suspended",
        "changed",
        "surveillance_notice",
    )
)
MILESTONES: frozenset[str] = frozenset(
    ("work_group_formed", "investigation_done", "decision_made", "answer_sent")
)


class TimeRule(Strict):
    """One period: `count` `unit` after (or before) the event named in `from`.

    Case rules use `applies_to` appeal|complaint|dispute and `from` received|decided;
    certificate rules use `applies_to` certificate|nonconformity|suspension|change_report.
    """

    id: str = ""  # filled from the table key on load
    applies_to: str
    count: int = Field(gt=0)
    unit: Unit
    from_: str = Field(alias="from")
    direction: Literal["after", "before"] = "after"
    clause: str = Field(min_length=1)
    closed_by: str | None = None  # the milestone that meets this deadline
    # Complaint rules only: the rule applies to complaints about these (None: every complaint).
    about: tuple[str, ...] | None = None
    # Who must approve an extension (BQC §19.2, SGC §八1.7, §八2.6(5)); None: no extension.
    extension_approver: str | None = Field(default=None, min_length=1)
    # For staff and deployers (why a bound was chosen); never shown to a complainant or applicant.
    note: str | None = None


class Body(Strict):
    id: str = Field(pattern=r"^[a-z0-9_-]+$")
    name_zh: str = Field(min_length=1)
    name_en: str = Field(min_length=1)
    standard: str = Field(min_length=1)
    schemes: tuple[str, ...] = Field(min_length=1)
    contact: Contact = Contact()

    @field_validator("schemes")
    @classmethod
    def _unique_schemes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("schemes repeat")
        return value


class CalendarPolicy(Strict):
    roll_to_workday: bool = True
    clause: str = Field(default="《民法典》第二百零三条", min_length=1)


class CertificatePolicy(Strict):
    validity_months: int = Field(gt=0)
    reminder_days_before: tuple[int, ...] = (90, 60, 30, 7)
    clause: str = Field(min_length=1)
    note: str | None = None  # for staff and deployers

    @field_validator("reminder_days_before")
    @classmethod
    def _positive_descending(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(d <= 0 for d in value) or list(value) != sorted(set(value), reverse=True):
            raise ValueError("must be distinct positive day counts, largest first")
        return value


class Condition(Strict):
    """One eligibility condition: a yes/no question, or since when the system has run."""

    id: str = Field(pattern=r"^[a-z0-9_]+$")
    kind: Literal["yes_no", "running_since"]
    pass_answer: bool | None = None  # yes_no: the answer that meets the condition
    min_months: int | None = Field(default=None, gt=0)  # running_since
    min_months_by_scheme: dict[str, int] = Field(default_factory=dict)
    absolute: bool = False  # a refusal no rectification or waiting can cure
    schemes: tuple[str, ...] | None = None  # only for these schemes
    clause: str = Field(min_length=1)
    note: str | None = None  # for staff and deployers, never in an applicant's text

    @model_validator(mode="after")
    def _fields_fit_kind(self) -> Condition:
        if self.kind == "yes_no":
            if self.pass_answer is None:
                raise KeyedError("pass_answer", "missing (needed for kind yes_no)")
            if self.min_months is not None or self.min_months_by_scheme:
                raise KeyedError("min_months", "only for kind running_since")
        else:
            if self.min_months is None:
                raise KeyedError("min_months", "missing (needed for kind running_since)")
            if self.pass_answer is not None:
                raise KeyedError("pass_answer", "only for kind yes_no")
            if any(m <= 0 for m in self.min_months_by_scheme.values()):
                raise KeyedError("min_months_by_scheme", "months must be positive")
        return self

    def applies(self, scheme: str | None) -> bool:
        return self.schemes is None or (scheme is not None and scheme in self.schemes)

    def months_for(self, scheme: str | None) -> int:
        assert self.min_months is not None
        return self.min_months_by_scheme.get(scheme or "", self.min_months)


class Document(Strict):
    id: str = Field(pattern=r"^[a-z0-9_]+$")
    clause: str = Field(min_length=1)
    note: str | None = None  # for staff and deployers, never in an applicant's text
    schemes: tuple[str, ...] | None = None

    def applies(self, scheme: str | None) -> bool:
        return self.schemes is None or (scheme is not None and scheme in self.schemes)


class Profile(Strict):
    body: Body
    calendar: CalendarPolicy = CalendarPolicy()
    rules: dict[str, TimeRule]
    certificate: CertificatePolicy
    cases: CasePolicy
    eligibility: tuple[Condition, ...] = Field(min_length=1)
    documents: tuple[Document, ...] = Field(min_length=1)
    audit_time: AuditTime | None = None
    fees: Fees | None = None
    other_fees: tuple[OtherFee, ...] = ()
    change_report: ChangeReportPolicy | None = None
    suspension: SuspensionPolicy | None = None
    findings: FindingsPolicy | None = None  # corrective actions per finding (issue 12)
    statuses: StatusModel | None = None  # a status model instead of one validity (IETP)
    # The clause saying the programme issues no certificate (ICS): lookups say so, plainly.
    not_a_certificate: str | None = Field(default=None, min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _rule_ids_from_keys(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("rules"), dict):
            flat: dict[str, Any] = {}
            for rule_id, table in _flatten_rules(data["rules"]):
                if isinstance(table, dict):
                    if "id" in table and table["id"] != rule_id:
                        raise KeyedError(f"rules.{rule_id}.id", "must equal the table key")
                    table = {**table, "id": rule_id}
                flat[rule_id] = table
            data = {**data, "rules": flat}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Profile:
        for rule_id, rule in self.rules.items():
            _check_rule(rule_id, rule)
        for kind, step in self.cases.next_steps.items():
            if step.window is not None:
                opened = self.rules.get(step.window)
                key = f"cases.next_steps.{kind}.window"
                if opened is None:
                    raise KeyedError(key, f"no rule {step.window!r}")
                if opened.from_ != "outcome_sent":
                    raise KeyedError(key, f"{step.window!r} does not count from outcome_sent")
        _unique("eligibility", [c.id for c in self.eligibility])
        _unique("documents", [d.id for d in self.documents])
        schemes = set(self.body.schemes)
        for section, items in (("eligibility", self.eligibility), ("documents", self.documents)):
            for item in items:
                if item.schemes is not None and not set(item.schemes) <= schemes:
                    unknown = sorted(set(item.schemes) - schemes)
                    raise KeyedError(f"{section}[{item.id}].schemes", f"unknown scheme {unknown}")
        _check_change_rules(self)
        for cond in self.eligibility:
            if not set(cond.min_months_by_scheme) <= schemes:
                unknown = sorted(set(cond.min_months_by_scheme) - schemes)
                key = f"eligibility[{cond.id}].min_months_by_scheme"
                raise KeyedError(key, f"unknown scheme {unknown}")
        return self

    def rule(self, rule_id: str) -> TimeRule:
        return self.rules[rule_id]

    def case_rules(self, kind: str) -> list[TimeRule]:
        return [r for r in self.rules.values() if r.applies_to == kind]

    def conditions(self, scheme: str | None = None) -> list[Condition]:
        return [c for c in self.eligibility if c.applies(scheme)]

    def checklist(self, scheme: str | None = None) -> list[Document]:
        return [d for d in self.documents if d.applies(scheme)]


def _flatten_rules(tables: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """`[rules.appeal.work_group]` and `[rules."appeal.work_group"]` both name one rule.

    A table holding only tables is a namespace; a table with any plain value is a rule.
    """
    out: list[tuple[str, Any]] = []
    for key, value in tables.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
            out.extend(_flatten_rules(value, f"{name}."))
        else:
            out.append((name, value))
    return out


def _check_rule(rule_id: str, rule: TimeRule) -> None:
    key = f"rules.{rule_id}"
    if not re.fullmatch(r"[a-z0-9_]+(\.[a-z0-9_]+)*", rule_id):
        raise KeyedError(key, "rule ids are lower-case dotted names")
    target = rule.applies_to
    if target in CASE_KINDS or target in MANUAL_CASE_TARGETS:
        events = CASE_EVENTS
    elif target in CERTIFICATE_TARGETS:
        events = CERTIFICATE_EVENTS
    else:
        known = sorted(CASE_KINDS | MANUAL_CASE_TARGETS | CERTIFICATE_TARGETS)
        raise KeyedError(f"{key}.applies_to", f"unknown {target!r} (known: {', '.join(known)})")
    if rule.from_ not in events:
        raise KeyedError(f"{key}.from", f"unknown event {rule.from_!r} for {target}")
    if rule.closed_by is not None and rule.closed_by not in MILESTONES:
        milestones = ", ".join(sorted(MILESTONES))
        raise KeyedError(f"{key}.closed_by", f"unknown milestone {rule.closed_by!r} ({milestones})")
    if rule.about is not None:
        if target != "complaint":
            raise KeyedError(f"{key}.about", "only complaint rules depend on whom they are about")
        if not rule.about or not set(rule.about) <= COMPLAINT_ABOUT:
            parties = ", ".join(sorted(COMPLAINT_ABOUT))
            raise KeyedError(f"{key}.about", f"a non-empty list of {parties}")
    if rule.direction == "before" and target in CASE_KINDS:
        raise KeyedError(f"{key}.direction", "case periods run after their event")


def _check_change_rules(profile: Profile) -> None:
    policy = profile.change_report
    if policy is None:
        return
    named = [(f"periods.{k}", r) for k, r in policy.periods.items()]
    named += [("routine_rule", policy.routine_rule)] if policy.routine_rule else []
    for key, rule_id in named:
        rule = profile.rules.get(rule_id)
        if rule is None or rule.applies_to != "change_report":
            raise KeyedError(f"change_report.{key}", f"no change_report rule {rule_id!r}")


def _unique(section: str, ids: list[str]) -> None:
    seen: set[str] = set()
    for item_id in ids:
        if item_id in seen:
            raise KeyedError(f"{section}[{item_id}].id", "duplicate id")
        seen.add(item_id)


# --- validation ---------------------------------------------------------------------------


def parse_profile(data: dict[str, Any], shown: str) -> Profile:
    """A profile from its parsed TOML; refused as `ProfileError(shown, key, reason)`."""
    try:
        return Profile.model_validate(data)
    except ValidationError as exc:
        key, reason = _describe(exc, data)
        raise ProfileError(shown, key, reason) from None


def _describe(exc: ValidationError, data: dict[str, Any]) -> tuple[str, str]:
    """The first error as (dotted key, reason); list items are named by their id."""
    err = exc.errors()[0]
    parts: list[str] = []
    node: Any = data
    for part in err["loc"]:
        if isinstance(part, int):
            item = node[part] if isinstance(node, list) and part < len(node) else None
            label = item.get("id") if isinstance(item, dict) else None
            parts[-1] += f"[{label or part}]"
            node = item
        else:
            parts.append(str(part))
            node = node.get(part) if isinstance(node, dict) else None
    cause = (err.get("ctx") or {}).get("error")
    if isinstance(cause, KeyedError):
        parts.append(cause.key)
        reason = cause.reason
    elif err["type"] == "extra_forbidden":
        reason = "unknown key"
    elif err["type"] == "missing":
        reason = "missing"
    else:
        reason = err["msg"].removeprefix("Value error, ")
        if err["type"] not in ("value_error", "assertion_error"):
            reason += f" (got {err['input']!r})"
    more = exc.error_count() - 1
    if more:
        reason += f" (+{more} more)"
    return ".".join(parts) or "profile", reason


__all__ = [
    "CASE_EVENTS",
    "CASE_KINDS",
    "CERTIFICATE_EVENTS",
    "CERTIFICATE_TARGETS",
    "COMPLAINT_ABOUT",
    "FILING_EVENTS",
    "MILESTONES",
    "ROUTES",
    "AuditTime",
    "Body",
    "CalendarPolicy",
    "CasePolicy",
    "CertificatePolicy",
    "Condition",
    "Contact",
    "Document",
    "Fees",
    "Kind",
    "Multisite",
    "NextStep",
    "OtherFee",
    "Profile",
    "ProfileError",
    "TimeRule",
    "Unit",
    "parse_profile",
]
