"""Accepting or refusing a case from the console (受理 / 不予受理), with the written notice.

The rules are bot.domain.case_decisions'; the actor is a directory member, checked for
impartiality as on every case action (bot.services.case_desk). A refusal closes the case and
every deadline still open on it; an acceptance moves a new case to "in progress".

One path for every body: where the profile gives the acceptance decision its own clause (SGC
§八1.4, `acceptance_clause`), an appeal's decision is that clause's step
(bot.services.cases.steps.acceptance_told: status "accepted", the notice citing the clause),
after the same checks (role, impartiality, grounds and reason, taken once).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot.desk import Desk
from bot.domain import case_decisions as rules
from bot.domain.cases import CaseRefused, Status
from bot.domain.staff import may
from bot.services import case_acting, staff
from bot.services.case_desk import locked_case
from bot.services.cases import kind_name
from bot.services.cases.events import append
from bot.services.cases.steps import ACCEPTANCE_DECIDED, acceptance_told
from bot.services.notices import notify_complainant
from messages.render import t
from storage.models import CaseEvent, OutboxMessage, StaffMember
from storage.repo import cases as repo
from storage.unit_of_work import UnitOfWork


def decision_types(events: Sequence[CaseEvent]) -> list[str]:
    """The decisions taken on a case, in the console's words (accepted / refused), whichever
    path recorded them."""
    out = []
    for e in events:
        if e.type in rules.DECISIONS:
            out.append(e.type)
        elif e.type == ACCEPTANCE_DECIDED:
            out.append(rules.ACCEPTED if (e.data or {}).get("accepted") else rules.REFUSED)
    return out


def decided(events: Sequence[CaseEvent]) -> bool:
    return bool(decision_types(events))


@dataclass(frozen=True)
class Decided:
    event: CaseEvent
    notice: OutboxMessage | None  # None: the complainant has no channel to be told on


async def decide(
    desk: Desk,
    uow: UnitOfWork,
    ref: str,
    actor: StaffMember,
    *,
    accept: bool,
    grounds: str | None = None,
    reason: str | None = None,
) -> Decided:
    """Accept or refuse case `ref` as `actor`; CaseRefused says why not (LookupError: no case)."""
    case = await locked_case(uow, ref)
    needed = rules.role_to_decide(case.kind)
    if not may(actor.role, needed):
        role = t(f"console.role_{needed.value}", desk.settings.default_locale)
        raise CaseRefused("console.decision_needs_role", ref=case.ref, role=role)
    await case_acting.check(uow, case, case_acting.acting_member(actor), "decision")
    assert case.id is not None
    earlier = await repo.events_of(uow.session, case.id)
    reason = (reason or "").strip() or None
    rules.check_decision(
        ref=case.ref,
        closed=case.closed_at is not None,
        decided_before=decision_types(earlier),
        accept=accept,
        grounds=None if accept else grounds,
        reason=reason,
        out_of_time=case.out_of_time,
    )
    if case.kind == "appeal" and desk.profile.cases.acceptance_clause is not None:
        event, told = await acceptance_told(
            desk, uow, case, staff.actor_of(actor), accepted=accept, reason=reason or "",
            grounds=None if accept else grounds,
        )  # fmt: skip
        return Decided(event, told)
    now = desk.clock.now()
    decision = rules.ACCEPTED if accept else rules.REFUSED
    closed: list[str] = []
    if accept:
        if case.status == Status.RECEIVED:
            case.status = Status.IN_PROGRESS
    else:
        done = await repo.close_deadlines(uow.session, case.id, None, rules.REFUSED, now)
        closed = [d.rule_id for d in done]
        case.closed_at, case.status = now, Status.CLOSED
    uow.session.add(case)
    event = await append(
        uow.session,
        case,
        actor=staff.actor_of(actor),
        type=decision,
        now=now,
        data={
            "grounds": None if accept else grounds,
            "reason": reason,
            "out_of_time": case.out_of_time,
            "closed": closed,
        },
    )
    loc = case.locale
    kind = kind_name(case.kind, loc)
    if accept:
        text_key = "console.notice_accepted_late" if case.out_of_time else "console.notice_accepted"
        args: dict[str, object] = {"kind": kind, "ref": case.ref, "reason": reason or ""}
    else:
        text_key = "console.notice_refused"
        why = t(f"console.grounds_{grounds}", loc)
        args = {"kind": kind, "ref": case.ref, "grounds": why, "reason": reason or ""}
    notice = await notify_complainant(
        desk,
        uow,
        case,
        key=f"case:{case.ref}:event:{event.seq}:{decision}",
        text_key=text_key,
        **args,
    )
    return Decided(event, notice)


__all__ = ["Decided", "decide", "decided", "decision_types"]
