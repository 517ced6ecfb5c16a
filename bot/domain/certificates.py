"""Pure rules of the certificate register: the holder's credit code, the longest validity, the
suspension's length, the one-time link codes, and when a change must be reported."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import date

from stdnum.cn import uscc as _uscc
from stdnum.exceptions import ValidationError as _StdnumError

from bot.domain.deadlines import add_months
from bot.domain.policy import Profile, TimeRule
from bot.domain.policy_certificates import CHANGE_KINDS

# --- 统一社会信用代码 (GB 32100-2015) -------------------------------------------------------------


def check_uscc(text: str) -> str:
    """The code, upper-cased without spaces, when its 18 characters and check digit are right;
    ValueError with the reason otherwise (python-stdnum implements GB 32100's check)."""
    code = re.sub(r"[\s-]", "", text).upper()
    if len(code) != 18:
        raise ValueError(f"unified social credit code {text!r} has {len(code)} characters, not 18")
    try:
        return str(_uscc.validate(code))
    except _StdnumError as exc:
        reason = "wrong check digit" if "checksum" in str(exc).lower() else str(exc).lower()
        raise ValueError(f"unified social credit code {code!r}: {reason}") from None


# --- validity and suspension ------------------------------------------------------------------


def latest_expiry(decided_on: date, validity_months: int) -> date:
    """The last expiry a certificate decided on `decided_on` may carry: the period's end counted
    as the Civil Code counts (art. 201: from the next day; 2026-07-10 + 36 months → 2029-07-10)."""
    return add_months(decided_on, validity_months)


def validity_problem(decided_on: date, expires_on: date, validity_months: int) -> str | None:
    """Why this validity cannot be (GGBZ §6.2.2, BQC §3: at most 3 years), or None."""
    if expires_on <= decided_on:
        return "expires_on is not after decided_on"
    latest = latest_expiry(decided_on, validity_months)
    if expires_on > latest:
        return (
            f"validity longer than {validity_months} months: expires_on {expires_on} is after "
            f"{latest}"
        )
    return None


def suspension_end(start: date, months: int) -> date:
    """The last day of a suspension of `months` from `start` (Civil Code art. 201)."""
    return add_months(start, months)


def suspension_problem(months: int, min_months: int, max_months: int) -> str | None:
    if not min_months <= months <= max_months:
        return f"a suspension lasts {min_months} to {max_months} months, not {months}"
    return None


# --- one-time link codes -----------------------------------------------------------------------

# 12 symbols from 32 (60 bits) drawn with `secrets`: not guessable within LINK_MAX_FAILURES tries.
LINK_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
LINK_LENGTH = 12
LINK_VALID_DAYS = 30  # long enough for a letter to arrive
LINK_MAX_FAILURES = 5  # wrong codes a Telegram user may send in LINK_FAILURE_WINDOW_HOURS
LINK_FAILURE_WINDOW_HOURS = 24


def new_link_code() -> str:
    body = "".join(secrets.choice(LINK_ALPHABET) for _ in range(LINK_LENGTH))
    return "-".join(body[i : i + 4] for i in range(0, LINK_LENGTH, 4))


def normalise_link_code(text: str) -> str | None:
    """The code as typed (any case, spaces or dashes), or None when it cannot be one."""
    body = re.sub(r"[\s-]", "", text).upper()
    if len(body) != LINK_LENGTH or any(ch not in LINK_ALPHABET for ch in body):
        return None
    return "-".join(body[i : i + 4] for i in range(0, LINK_LENGTH, 4))


def link_code_hash(code: str) -> str:
    """Only the hash is stored: a leaked table links nobody."""
    return hashlib.sha256(code.encode()).hexdigest()


# --- change reports -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ChangePeriod:
    """How soon the organisation must report a kind of change under a profile."""

    kind: str
    rule: TimeRule | None  # a counted period (BQC), or None where the body gives no number
    timing: str  # promptly | at_once | counted
    clause: str


ROUTINE = "routine"  # BQC's routine report after a surveillance notice, where a body has one


def change_kinds(profile: Profile) -> tuple[str, ...]:
    """What a contact may report: the seeds' kinds, and the routine report where it exists."""
    if profile.change_report is None:
        return CHANGE_KINDS
    return CHANGE_KINDS + ((ROUTINE,) if profile.change_report.routine_rule else ())


def change_period(profile: Profile, kind: str) -> ChangePeriod:
    """The period for reporting `kind`: the profile's rule, else its word and clause."""
    policy = profile.change_report
    if policy is None or kind not in change_kinds(profile):
        raise ValueError(f"no change report of kind {kind!r} under {profile.body.id}")
    if kind == ROUTINE and policy.routine_rule is not None:
        rule = profile.rules[policy.routine_rule]
        return ChangePeriod(kind, rule, "counted", rule.clause)
    rule_id = policy.periods.get(kind)
    if rule_id is not None:
        rule = profile.rules[rule_id]
        return ChangePeriod(kind, rule, "counted", rule.clause)
    return ChangePeriod(kind, None, policy.timing, policy.clause)


def routine_rule(profile: Profile) -> TimeRule | None:
    """BQC's routine report within a week of a surveillance notice, where the body has one."""
    policy = profile.change_report
    if policy is None or policy.routine_rule is None:
        return None
    return profile.rules[policy.routine_rule]


__all__ = [
    "LINK_MAX_FAILURES",
    "ChangePeriod",
    "change_kinds",
    "change_period",
    "check_uscc",
    "latest_expiry",
    "link_code_hash",
    "new_link_code",
    "normalise_link_code",
    "routine_rule",
    "suspension_end",
    "suspension_problem",
    "validity_problem",
]
