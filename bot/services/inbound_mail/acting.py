"""Act on a stored letter: open a case, join a reply to its case, pass an enquiry to staff,
record a bounce or an automatic letter, or quarantine what cannot be processed.

The caller (handlers/email/intake) opens the unit of work and commits it; here each letter is
locked (`SELECT … FOR UPDATE`) for as long as it is acted upon, inside a savepoint of its own:
its effects are all there or none of them, a letter another instance already took is left
alone, and a letter that breaks the intake is quarantined without undoing its neighbours.
Parsing is the caller's (`parse`, run off the event loop): this layer only reads its result.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.desk import Desk
from bot.domain.letters import case_ref_in_subject, classify_text
from bot.domain.mail import ParsedMail, too_large
from bot.services.inbound_mail.answers import bounce, enquiry, join_reply, open_from_letter
from bot.services.inbound_mail.evidence import evidence_letter
from bot.services.inbound_mail.staff import quarantine
from storage.models import Case, InboundEmail, InboundStatus
from storage.repo import cases as cases_repo
from storage.repo import inbound_email as repo
from storage.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

# The database is away: the letter stays stored and is acted upon on the next pass.
TRANSIENT = (OperationalError, InterfaceError, OSError, TimeoutError)

Parse = Callable[[bytes], Awaitable[ParsedMail]]
Done = Literal["cases", "replies", "enquiries", "automatic", "bounces", "quarantined"]


@dataclass(frozen=True)
class Outcome:
    status: str  # the letter's status afterwards (storage.models.InboundStatus)
    done: Done | None = None  # what acting on it did; None: it had been acted upon before
    ref: str | None = None  # the case opened


async def act(desk: Desk, uow: UnitOfWork, inbound_id: int, parse: Parse) -> Outcome:
    """Act on the stored letter `inbound_id` in `uow`, unless that was done already."""
    session = uow.session
    try:
        async with session.begin_nested():
            row = await repo.lock(session, inbound_id)
            if row.status != InboundStatus.STORED:
                return Outcome(row.status)
            return await act_on(desk, uow, row, parse)
    except TRANSIENT:
        raise
    except Exception as exc:  # a letter that breaks the intake must not stop the next one
        log.exception("inbound e-mail %s could not be processed", inbound_id)
        reason = f"intake_error: {type(exc).__name__}"
        async with session.begin_nested():
            row = await repo.lock(session, inbound_id)  # the lock went with the savepoint
            await session.refresh(row)
            await quarantine(desk, uow, row, None, reason)
        return Outcome(InboundStatus.QUARANTINED.value, "quarantined")


async def act_on(desk: Desk, uow: UnitOfWork, row: InboundEmail, parse: Parse) -> Outcome:
    """Act on a locked, stored letter."""
    s = desk.settings
    oversized = too_large(row.problems)
    parsed = await parse(row.raw)
    if oversized is not None:  # only its header is stored: nothing to act upon
        await quarantine(desk, uow, row, parsed, oversized)
        return _outcome(row, "quarantined")
    row.problems = parsed.problems or None
    broken = parsed.unprocessable()
    if broken:
        await quarantine(desk, uow, row, parsed, broken)
        return _outcome(row, "quarantined")
    if parsed.bounce is not None:
        await bounce(desk, uow, row, parsed)
        return _outcome(row, "bounces")
    case = await case_answered(uow.session, parsed, s.case_ref_prefix)
    if parsed.automatic:
        # Recorded (and linked to its case), never answered: no loops with robots.
        row.kind, row.status = "automatic", InboundStatus.IGNORED.value
        row.case_id = case.id if case else None
        return _outcome(row, "automatic")
    if case is not None:
        await join_reply(desk, uow, row, parsed, case)
        return _outcome(row, "replies")
    if await evidence_letter(desk, uow, row, parsed):  # [FND-n]: corrective-action evidence
        return _outcome(row, "replies" if row.status == InboundStatus.PROCESSED else "quarantined")
    kind = classify_text(parsed.subject, parsed.text) if parsed.kind == "reply" else parsed.kind
    if kind == "enquiry":
        await enquiry(desk, uow, row, parsed)
        return _outcome(row, "enquiries")
    ref = await open_from_letter(desk, uow, row, parsed, kind)
    return Outcome(row.status, "cases", ref)


def _outcome(row: InboundEmail, done: Done) -> Outcome:
    return Outcome(row.status, done)


async def case_answered(session: AsyncSession, parsed: ParsedMail, prefix: str) -> Case | None:
    """The known case a letter belongs to: the subject tag first, then the threading headers."""
    tagged = case_ref_in_subject(parsed.subject, prefix)
    if tagged:
        case = await cases_repo.find_case_by_ref(session, tagged)
        if case is not None:
            return case
    for message_id in [*reversed(parsed.in_reply_to), *reversed(parsed.references)]:
        case = await cases_repo.find_case_by_message_id(session, message_id)
        if case is not None:
            return case
    return None
