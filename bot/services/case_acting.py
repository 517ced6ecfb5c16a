"""Staff acting on a case, from any adapter: who they are (the staff directory) and whether they
may (bot.domain.impartiality), checked the same way for every action before the case service
records it. The console passes a signed-in member; Telegram passes the user's id, mapped to the
directory by Telegram id (someone not in it is known by that id alone).
"""

from __future__ import annotations

from datetime import date

from bot.desk import Desk
from bot.domain.impartiality import Acting, check_action, is_assignee
from bot.services import cases, staff
from bot.services.cases import steps
from storage.models import Case, CaseEvent, Deadline, OutboxMessage, StaffMember
from storage.repo import staff as staff_repo
from storage.unit_of_work import UnitOfWork


def acting_member(member: StaffMember) -> Acting:
    """A directory member: compared by every identity the directory holds for them; a case
    assigned to them holds their e-mail."""
    return Acting(tuple(staff.identities_of(member)), member.email, member.name)


async def acting_telegram(uow: UnitOfWork, user_id: int, shown: str | None = None) -> Acting:
    """A Telegram staff user: their directory entry when they have one (and it is enabled);
    otherwise their Telegram id alone, which checks nobody's name (`known=False`)."""
    found = await staff_repo.by_telegram_id(uow.session, user_id)
    if found is None or found.disabled:
        return Acting.unlisted(user_id, shown)
    return acting_member(found)


async def assignee_name(uow: UnitOfWork, case: Case) -> str | None:
    """The directory name of whoever has the case (its assignee is an e-mail or a Telegram id)."""
    if not case.assignee:
        return None
    names = await staff.names_of_actors(uow, [f"staff:{case.assignee}"])
    return names.get(case.assignee, case.assignee)


async def check(uow: UnitOfWork, case: Case, who: Acting, action: str) -> None:
    """CaseRefused (with the reason) unless `who` may take `action` on `case`."""
    shown = None
    if case.assignee and not is_assignee(case, who):
        shown = await assignee_name(uow, case)
    check_action(case, case.ref, who, action, shown)


async def assign(
    desk: Desk, uow: UnitOfWork, case: Case, actor: str, by: Acting, to: Acting
) -> CaseEvent:
    """`by` assigns the case to `to` (themselves or another); a hand-over when someone else had
    it. Both must be impartial."""
    await check(uow, case, by, "assign")
    return await cases.assign(desk, uow, case, actor, to)


async def reply(
    desk: Desk, uow: UnitOfWork, case: Case, actor: str, who: Acting, text: str
) -> OutboxMessage:
    await check(uow, case, who, "reply")
    return await cases.reply(desk, uow, case, actor, text)


async def milestone(
    desk: Desk,
    uow: UnitOfWork,
    case: Case,
    actor: str,
    who: Acting,
    name: str,
    note: str | None = None,
) -> list[Deadline]:
    await check(uow, case, who, "milestone")
    return await cases.record_milestone(desk, uow, case, actor, name, note)


async def extend(
    desk: Desk,
    uow: UnitOfWork,
    case: Case,
    actor: str,
    who: Acting,
    rule_id: str,
    new_due: date,
    *,
    approved_by: str,
    reason: str = "",
) -> Deadline:
    await check(uow, case, who, "extension")
    return await steps.extend_deadline(
        desk, uow, case, actor, rule_id, new_due, approved_by=approved_by, reason=reason
    )


__all__ = [
    "Acting",
    "acting_member",
    "acting_telegram",
    "assign",
    "assignee_name",
    "check",
    "extend",
    "milestone",
    "reply",
]
