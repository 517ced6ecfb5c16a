"""The console's view of cases: the register, one case file, and a staff member's actions on it.

The actions are the case service's (bot.services.cases), run as a directory member: the member's
identities are what impartiality compares, on every action (GGBZ §8.6.2 / §8.3), and the event
records `staff:<e-mail>` as the actor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from bot.desk import Desk
from bot.domain.cases import FINAL_MILESTONE
from bot.domain.impartiality import check_action
from bot.services import case_acting, cases, staff
from bot.services.today import Letter, letter_of
from storage.models import Case, CaseEvent, Deadline, OutboxMessage, StaffMember, StoredFile
from storage.repo import console as repo
from storage.repo.console import RegisterFilter
from storage.unit_of_work import UnitOfWork

__all__ = [
    "CaseFile",
    "RegisterFilter",
    "RegisterRow",
    "assign",
    "attachment",
    "case_file",
    "check_impartial",
    "locked_case",
    "milestone",
    "received_on",
    "register",
    "reply",
]


@dataclass(frozen=True)
class RegisterRow:
    case: Case
    received: date
    next_due: date | None
    deadlines: list[Deadline]


def received_on(case: Case, first: CaseEvent | None = None) -> date:
    """The day the case was received: as recorded on its first event, else its row's date."""
    data = (first.data or {}) if first is not None else {}
    if data.get("received_on"):
        return date.fromisoformat(str(data["received_on"]))
    from bot.clock import SHANGHAI

    return case.created_at.astimezone(SHANGHAI).date()


async def register(uow: UnitOfWork, where: RegisterFilter) -> list[RegisterRow]:
    """Cases matching the filter, newest first, with their deadlines (for the export too)."""
    rows = await repo.register(uow.session, where)
    ids = [c.id for c, _ in rows if c.id is not None]
    by_case: dict[int, list[Deadline]] = {}
    for d in await repo.deadlines_of_cases(uow.session, ids):
        by_case.setdefault(d.case_id or 0, []).append(d)
    return [
        RegisterRow(case, received_on(case), due, by_case.get(case.id or 0, []))
        for case, due in rows
    ]


@dataclass
class CaseFile:
    case: Case
    deadlines: list[Deadline]
    events: list[CaseEvent]
    received: date
    identity: list[str]
    attachments: list[dict[str, Any]]  # as recorded on events: stored_file_id, name, type, size
    messages: list[OutboxMessage]  # sent to the complainant
    letters: list[Letter]  # e-mails received on the case
    names: dict[str, str]  # actor or staff id → directory name
    staff: list[StaffMember] = field(default_factory=list)
    milestones: list[str] = field(default_factory=list)
    final_milestone: str = ""


async def case_file(desk: Desk, uow: UnitOfWork, ref: str) -> CaseFile | None:
    record = await cases.case_record(uow, ref)
    if record is None:
        return None
    case = record.case
    assert case.id is not None
    seen: set[int] = set()
    attachments = []
    for event in record.events:
        for item in (event.data or {}).get("attachments") or []:
            if item.get("stored_file_id") not in seen:
                seen.add(item["stored_file_id"])
                attachments.append(item)
    to_complainant = {str(case.complainant_chat_id), case.complainant_email or ""}
    messages = [
        m
        for m in await repo.outbox_of_case(uow.session, case.id)
        if m.recipient in to_complainant and m.channel in ("telegram", "email")
    ]
    actors = [e.actor for e in record.events]
    if case.assignee:
        actors.append(case.assignee if ":" in case.assignee else f"staff:{case.assignee}")
    names = await staff.names_of_actors(uow, actors)
    return CaseFile(
        case=case,
        deadlines=record.deadlines,
        events=record.events,
        received=received_on(case, record.events[0] if record.events else None),
        identity=cases.complainant_identity(case, record.events),
        attachments=attachments,
        messages=messages,
        letters=[letter_of(desk, row) for row in await repo.letters_of_case(uow.session, case.id)],
        names=names,
        staff=[m for m in await staff.members(uow) if not m.disabled],
        milestones=cases.milestones_for(desk.profile, case.kind),
        final_milestone=FINAL_MILESTONE.get(case.kind, ""),
    )


async def attachment(uow: UnitOfWork, ref: str, file_id: int) -> tuple[StoredFile, str] | None:
    """A file recorded on case `ref`, with its sanitised name; None for any other file (an id
    alone never reaches a file of another case or an application's document)."""
    record = await cases.case_record(uow, ref)
    if record is None:
        return None
    for event in record.events:
        for item in (event.data or {}).get("attachments") or []:
            if item.get("stored_file_id") == file_id:
                row = await repo.stored_file(uow.session, file_id)
                return (row, str(item.get("name") or "file")) if row else None
    return None


# --- actions, as a directory member -----------------------------------------------------------


def check_impartial(case: Case, member: StaffMember, action: str = "enquiry") -> None:
    """Impartiality alone (no assignee), for what any impartial member may do on a case."""
    check_action(case, case.ref, case_acting.acting_member(member), action)


async def locked_case(uow: UnitOfWork, ref: str) -> Case:
    case = await cases.lock_case(uow, ref)
    if case is None:
        raise LookupError(ref)
    return case


async def assign(
    desk: Desk, uow: UnitOfWork, ref: str, actor: StaffMember, to: StaffMember
) -> StaffMember:
    """Assign `to` (a member); refused when either the actor or `to` must stand aside."""
    case = await locked_case(uow, ref)
    by, target = case_acting.acting_member(actor), case_acting.acting_member(to)
    await case_acting.assign(desk, uow, case, staff.actor_of(actor), by, target)
    return to


async def reply(
    desk: Desk, uow: UnitOfWork, ref: str, actor: StaffMember, text: str
) -> OutboxMessage:
    case = await locked_case(uow, ref)
    who = case_acting.acting_member(actor)
    return await case_acting.reply(desk, uow, case, staff.actor_of(actor), who, text)


async def milestone(
    desk: Desk, uow: UnitOfWork, ref: str, actor: StaffMember, name: str, note: str | None
) -> list[Deadline]:
    """Record a milestone (the kind's final one closes the case)."""
    case = await locked_case(uow, ref)
    who = case_acting.acting_member(actor)
    return await case_acting.milestone(desk, uow, case, staff.actor_of(actor), who, name, note)
