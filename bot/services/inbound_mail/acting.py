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

from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.desk import Desk
from bot.domain.letters import case_ref_in_subject, classify_text
from bot.domain.mail import ParsedMail, too_large
from bot.services.inbound_mail.answers import (
    FileNotSaved,
    bounce,
    enquiry,
    join_reply,
    open_from_letter,
)
from bot.services.inbound_mail.evidence import evidence_letter
from bot.services.inbound_mail.staff import letter_deferred, quarantine
from bot.services.inbound_mail.strangers import about_case, from_case_address
from storage.models import Case, InboundEmail, InboundStatus
from storage.repo import cases as cases_repo
from storage.repo import inbound_email as repo
from storage.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

# The database is away: the letter stays stored and is acted upon on the next pass.
TRANSIENT = (OperationalError, InterfaceError, OSError, TimeoutError)

Parse = Callable[[bytes], Awaitable[ParsedMail]]
Done = Literal["cases", "replies", "enquiries", "automatic", "bounces", "quarantined", "deferred"]


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
    except FileNotSaved as exc:  # kept as stored: tried again on the next pass
        log.warning("inbound e-mail %s: a file could not be written: %s", inbound_id, exc)
        async with session.begin_nested():
            row = await repo.lock(session, inbound_id)
            await letter_deferred(desk, uow, row, str(exc))
        return Outcome(InboundStatus.STORED.value, "deferred")
    except TRANSIENT:
        raise
    except Exception as exc:  # a letter that breaks the intake must not stop the next one
        log.exception("inbound e-mail %s could not be processed", inbound_id)
        # What failed, for staff: the database's own words (never the statement), or the bug.
        detail = repo.db_reason(exc) if isinstance(exc, SQLAlchemyError) else type(exc).__name__
        return await _quarantine_broken(desk, uow, inbound_id, parse, f"intake_error: {detail}")


async def _quarantine_broken(
    desk: Desk, uow: UnitOfWork, inbound_id: int, parse: Parse, reason: str
) -> Outcome:
    """Quarantine a letter acting upon failed: with who wrote it and about what, else bare;
    should even that fail, it stays stored (tried on the next pass) and the others go on."""
    session = uow.session
    for detailed in (True, False):
        try:
            async with session.begin_nested():
                row = await repo.lock(session, inbound_id)  # the lock went with the savepoint
                await session.refresh(row)
                parsed = await _parsed_or_none(row, parse) if detailed else None
                if parsed is not None:  # for the log: who wrote it, about what
                    row.from_addr = parsed.from_addr
                    row.subject = parsed.subject[:SUBJECT_MAX] or None
                await quarantine(desk, uow, row, parsed, reason)
            return Outcome(InboundStatus.QUARANTINED.value, "quarantined")
        except TRANSIENT:
            raise
        except SQLAlchemyError:
            log.exception("inbound e-mail %s could not be quarantined", inbound_id)
    return Outcome(InboundStatus.STORED.value, "deferred")


async def act_on(desk: Desk, uow: UnitOfWork, row: InboundEmail, parse: Parse) -> Outcome:
    """Act on a locked, stored letter."""
    s = desk.settings
    oversized = too_large(row.problems)
    parsed = await parse(row.raw)
    row.from_addr, row.subject = parsed.from_addr, parsed.subject[:SUBJECT_MAX] or None
    if row.message_id is None:  # one without angle brackets, or stored bare: the log shows it
        row.message_id = parsed.message_id
    if oversized is not None:  # only its header is stored: nothing to act upon
        await quarantine(desk, uow, row, parsed, oversized)
        return _outcome(row, "quarantined")
    row.problems = [*_kept(row.problems), *parsed.problems] or None
    broken = parsed.unprocessable()
    if broken:
        await quarantine(desk, uow, row, parsed, broken)
        return _outcome(row, "quarantined")
    if parsed.bounce is not None:
        await bounce(desk, uow, row, parsed)
        return _outcome(row, "bounces")
    # Only a letter from an address the case knows is the complainant's; a copied tag or
    # Message-ID from anyone else lets nobody into someone else's case.
    candidates = await cases_answered(uow.session, parsed, s.case_ref_prefix)
    case, own = (candidates[0], False) if candidates else (None, False)
    for candidate in candidates:  # the tag first, then the thread: the first that knows them
        if await from_case_address(uow, candidate, parsed):
            case, own = candidate, True
            break
    if parsed.automatic:
        # Recorded (and linked to its case), never answered: no loops with robots.
        row.kind, row.status = "automatic", InboundStatus.IGNORED.value
        row.case_id = case.id if case and own else None
        return _outcome(row, "automatic")
    if case is not None and own:
        await join_reply(desk, uow, row, parsed, case)
        return _outcome(row, "replies")
    if await evidence_letter(desk, uow, row, parsed):  # [FND-n]: corrective-action evidence
        return _outcome(row, "replies" if row.status == InboundStatus.PROCESSED else "quarantined")
    if case is not None:
        await about_case(desk, uow, row, parsed, case)
        return _outcome(row, "enquiries")
    kind = classify_text(parsed.subject, parsed.text) if parsed.kind == "reply" else parsed.kind
    if kind == "enquiry":
        await enquiry(desk, uow, row, parsed)
        return _outcome(row, "enquiries")
    ref = await open_from_letter(desk, uow, row, parsed, kind)
    return Outcome(row.status, "cases", ref)


SUBJECT_MAX = 1000  # what the log keeps of a subject


async def _parsed_or_none(row: InboundEmail, parse: Parse) -> ParsedMail | None:
    try:
        return await parse(row.raw)
    except Exception:  # parse_message never raises; a stand-in parser might
        return None


def _kept(problems: list[str] | None) -> list[str]:
    """Problems the intake recorded before parsing (a refused first store), kept on the row."""
    return [p for p in problems or [] if p.startswith("store_failed")]


def _outcome(row: InboundEmail, done: Done) -> Outcome:
    return Outcome(row.status, done)


THREAD_LOOKUPS = 20  # threading ids looked up, newest first: a letter of 10,000 is no DoS


async def cases_answered(session: AsyncSession, parsed: ParsedMail, prefix: str) -> list[Case]:
    """The known cases a letter points at: the subject tag's first, then the threading
    headers' (newest first), then a reference written in the body, each once."""
    found: dict[int, Case] = {}
    tagged = case_ref_in_subject(parsed.subject, prefix)
    if tagged:
        case = await cases_repo.find_case_by_ref(session, tagged)
        if case is not None and case.id is not None:
            found[case.id] = case
    threading = [*reversed(parsed.in_reply_to), *reversed(parsed.references)]
    for message_id in list(dict.fromkeys(threading))[:THREAD_LOOKUPS]:
        case = await cases_repo.find_case_by_message_id(session, message_id)
        if case is not None and case.id is not None:
            found.setdefault(case.id, case)
    written = parsed.case_ref if parsed.case_ref != tagged else None  # in the body: last
    if written:
        case = await cases_repo.find_case_by_ref(session, written)
        if case is not None and case.id is not None:
            found.setdefault(case.id, case)
    return list(found.values())
