"""The console's outbox page: messages that need eyes, retried or cancelled by a staff member.

Failed and retrying rows are bot.outbox.admin's (the same list as `certdesk outbox status`);
staff messages that reached no staff channel are added. A retry or cancel of a message about a
case is recorded on the case's history with the staff member's identity.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.desk import Desk
from bot.outbox import admin
from bot.services import staff
from bot.services.cases.events import append
from storage.models import Case, OutboxMessage, StaffMember
from storage.repo import cases as case_repo
from storage.repo import console as repo
from storage.unit_of_work import UnitOfWork


@dataclass(frozen=True)
class Attention:
    failed: list[admin.Problem]
    unrouted: list[OutboxMessage]


async def attention(desk: Desk, uow: UnitOfWork) -> Attention:
    return Attention(
        await admin.problems(desk.sessions), list(await repo.unrouted_staff_messages(uow.session))
    )


async def _record(
    desk: Desk, uow: UnitOfWork, row: OutboxMessage, member: StaffMember, what: str
) -> None:
    if row.case_id is None:
        return
    case = await uow.session.get(Case, row.case_id)
    if case is None:
        return
    await case_repo.lock_case(uow.session, row.case_id)
    await append(
        uow.session,
        case,
        actor=staff.actor_of(member),
        type=what,
        now=desk.clock.now(),
        data={"message": row.id, "channel": row.channel},
    )


async def retry(desk: Desk, uow: UnitOfWork, message_id: int, member: StaffMember) -> bool:
    """A failed message queued again (bot.outbox.admin.retry); False if it was not failed."""
    done = await admin.retry(desk.sessions, desk.clock.now(), [message_id])
    if not done:
        return False
    row = await repo.outbox_row(uow.session, message_id)
    if row is not None:
        await _record(desk, uow, row, member, "outbox_retried")
    return True


async def cancel(desk: Desk, uow: UnitOfWork, message_id: int, member: StaffMember) -> bool:
    """A queued or failed message will never be sent; False if it was neither."""
    reason = f"cancelled by {staff.actor_of(member)}"
    row = await repo.cancel_message(uow.session, message_id, reason, desk.clock.now())
    if row is None:
        return False
    await _record(desk, uow, row, member, "outbox_cancelled")
    return True


__all__ = ["Attention", "attention", "cancel", "retry"]
