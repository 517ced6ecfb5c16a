"""What staff move an application through, after the checklist (bot.domain.applications):
acceptance of the application (GGBZ §5.1.4, §5.2.4; BQC: 是否受理认证申请), the audits, and the
certification decision (GGBZ §5.12.1; BQC: 由技术委员会主任做出认证授予与否的决定).

The checklist drives draft → documents complete → under review; staff take it on from there.
Certified is reached only by issuing the certificate. A refusal or a request for more
information needs the reason the applicant reads. The certification decision is a decider's,
never an audit team member's (GGBZ §5.12.1 认证决定人员…不得为审核组成员).
"""

from __future__ import annotations

from collections.abc import Iterable

from bot.domain.applications import (
    ACCEPTED,
    CERTIFIED,
    DECISION,
    MORE_INFO,
    NOT_ACCEPTED,
    STAGE1,
    STAGE2,
    UNDER_REVIEW,
)
from bot.domain.cases import same_person
from bot.domain.staff import Role

STAFF_MOVES: dict[str, tuple[str, ...]] = {
    UNDER_REVIEW: (ACCEPTED, MORE_INFO, NOT_ACCEPTED),
    ACCEPTED: (STAGE1,),
    STAGE1: (STAGE2,),
    STAGE2: (DECISION,),
    DECISION: (NOT_ACCEPTED,),  # granting is issuing the certificate
}
NEEDS_REASON = frozenset({MORE_INFO, NOT_ACCEPTED})
AUDIT_STAGES = frozenset({STAGE1, STAGE2})  # moving there records the audit team


class MoveRefused(Exception):
    """A move the rules refuse: `key` names the catalog text saying why."""

    def __init__(self, key: str, **args: object) -> None:
        super().__init__(key)
        self.key, self.args_ = key, args


def moves_from(stage: str) -> tuple[str, ...]:
    return STAFF_MOVES.get(stage, ())


def is_certification_decision(stage: str, target: str) -> bool:
    return stage == DECISION and target in (CERTIFIED, NOT_ACCEPTED)


def role_for(stage: str, target: str) -> Role:
    return Role.DECIDER if is_certification_decision(stage, target) else Role.STAFF


def audit_conflict(identities: Iterable[str], audit_team: Iterable[str]) -> str | None:
    """The audit team member these identities match; None when they match nobody."""
    team = list(audit_team)
    for who in identities:
        for member in team:
            if who.strip() and same_person(who, member):
                return member
    return None


def check_move(
    ref: str,
    stage: str,
    target: str,
    reason: str | None,
    identities: Iterable[str],
    audit_team: Iterable[str],
) -> None:
    if target not in moves_from(stage) and not (stage == DECISION and target == CERTIFIED):
        raise MoveRefused("console.app_move_not_allowed", ref=ref)
    if target in NEEDS_REASON and not (reason or "").strip():
        raise MoveRefused("console.app_move_no_reason", ref=ref)
    if is_certification_decision(stage, target):
        member = audit_conflict(identities, audit_team)
        if member is not None:
            raise MoveRefused("console.app_decider_audited", ref=ref, who=member)


__all__ = [
    "AUDIT_STAGES",
    "NEEDS_REASON",
    "STAFF_MOVES",
    "MoveRefused",
    "audit_conflict",
    "check_move",
    "is_certification_decision",
    "moves_from",
    "role_for",
]
