"""Impartiality: who may act on a case (GGBZ §8.6.2 / §8.3, SGC §八), one rule for every action
(assignment, replies, milestones, decisions, extensions) and for every adapter.

Staff are compared by identity, as the staff directory knows them (name, e-mail, its local part,
Telegram id), never by a display name someone can set. A case assigned to someone is acted on by
them; anyone else first takes it over by an assignment, recorded as a hand-over naming who handed
it from whom to whom. Refusals are `CaseRefused` with a catalog key (messages/catalogs/staff.toml).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from bot.domain.refusals import CaseRefused

# Actions on a case; all are checked for impartiality, all but assignment and sorting a letter
# into the case (which any impartial staff member may do) for the assignee too.
ACTIONS = frozenset({"assign", "reply", "milestone", "decision", "extension", "step", "enquiry"})
NOT_ASSIGNEE_ONLY = frozenset({"assign", "enquiry"})


class Handled(Protocol):
    """What a case records of the decision under appeal and of who handles it."""

    @property
    def decided_by(self) -> str | None: ...

    @property
    def audit_team(self) -> Sequence[str] | None: ...

    @property
    def assignee(self) -> str | None: ...


@dataclass(frozen=True)
class Acting:
    """A staff member as the directory knows them.

    `ids`: every identity compared (the directory's name, e-mail, its local part, Telegram id);
    `key`: what `case.assignee` holds for them; `shown`: how texts name them; `known=False` for
    someone not in the directory (only their Telegram id is known: not checkable by name).
    """

    ids: tuple[str, ...]
    key: str
    shown: str
    known: bool = True

    @classmethod
    def unlisted(cls, telegram_id: int, shown: str | None = None) -> Acting:
        return cls((str(telegram_id),), str(telegram_id), shown or str(telegram_id), known=False)


def same_person(a: str, b: str) -> bool:
    return a.strip().casefold().lstrip("@") == b.strip().casefold().lstrip("@")


def _involved(case: Handled) -> bool:
    return bool(case.decided_by or case.audit_team)


def impartiality_conflict(case: Handled, identities: Iterable[str]) -> str | None:
    """Why these identities may not handle the case, as a catalog key; None if they may.

    GGBZ §8.6.2 / §8.3, SGC §八: nobody involved in the audit or the decision under appeal.
    """
    ids = [i for i in identities if i and i.strip()]
    if case.decided_by and any(same_person(i, case.decided_by) for i in ids):
        return "staff.assign_refused_decider"
    if any(same_person(i, member) for i in ids for member in case.audit_team or []):
        return "staff.assign_refused_auditor"
    return None


def is_assignee(case: Handled, who: Acting) -> bool:
    return bool(case.assignee) and any(same_person(case.assignee or "", i) for i in who.ids)


def check_action(
    case: Handled, ref: str, who: Acting, action: str, assignee_shown: str | None = None
) -> None:
    """CaseRefused unless `who` may take `action` on the case.

    Not in the directory: refused where someone must stand aside (nobody can tell whether they
    are that someone). Involved in the decision or the audit: refused. Someone else's case:
    refused until handed over (`assign`), except for the actions anyone impartial may take.
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    if not who.known and _involved(case):
        raise CaseRefused("staff.refused_unverified", ref=ref, who=who.key)
    conflict = impartiality_conflict(case, who.ids)
    if conflict is not None:
        reason = "decider" if conflict.endswith("decider") else "auditor"
        raise CaseRefused(f"staff.refused_{reason}", ref=ref, who=who.shown)
    if action not in NOT_ASSIGNEE_ONLY and case.assignee and not is_assignee(case, who):
        shown = assignee_shown or case.assignee
        raise CaseRefused("staff.refused_not_assignee", ref=ref, who=who.shown, assignee=shown)


def check_assignee(case: Handled, ref: str, to: Acting) -> str | None:
    """CaseRefused unless `to` may handle the case; the assignee it is handed over from, if any.

    Someone not in the directory is refused where someone must stand aside: ask them to take
    it themselves once they are in the directory.
    """
    if not to.known and _involved(case):
        raise CaseRefused("staff.assign_refused_unverified", ref=ref, who=to.shown)
    conflict = impartiality_conflict(case, to.ids)
    if conflict is not None:
        raise CaseRefused(conflict, ref=ref, who=to.shown)
    return case.assignee if case.assignee and not is_assignee(case, to) else None


def check_assignment(case: Handled, ref: str, by: Acting, to: Acting) -> str | None:
    """Both the one assigning and the one assigned must be impartial; the assignee the case is
    handed over from (None for a first assignment, or to whoever has it already)."""
    check_action(case, ref, by, "assign")
    return check_assignee(case, ref, to)


__all__ = [
    "ACTIONS",
    "Acting",
    "Handled",
    "check_action",
    "check_assignee",
    "check_assignment",
    "impartiality_conflict",
    "is_assignee",
    "same_person",
]
