"""Enquiries: letters the intake found to be neither a case nor an answer to one
(bot.services.inbound_mail.answers.enquiry), sorted by staff in the console.

Each is sorted once, as a directory member, with a reason, recorded on the stored letter
(`sorted_at/by/as/note`): opened as a case of a chosen kind (dated the day it reached the inbox),
attached to an existing case (its text and files join the case as the complainant's), answered
(a letter to the sender through the outbox, threaded under theirs), or marked as needing no
answer. Opening and attaching are also events of the case, with the member as actor.

Parsing is the e-mail adapter's: the caller passes the intake's `Parse` (as `act` takes it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from bot.delivery.compose import text_to_html
from bot.desk import Desk
from bot.domain.cases import CaseRefused, Complainant
from bot.domain.letters import letter_locale
from bot.domain.mail import ParsedMail
from bot.outbox import messages as out
from bot.services import staff
from bot.services.case_desk import check_impartial, locked_case
from bot.services.cases import add_information, open_case
from bot.services.cases.events import append
from bot.services.inbound_mail import Parse
from bot.services.inbound_mail.answers import files
from bot.services.today import Letter, letter_of
from messages.render import t
from storage.models import Channel, InboundEmail, OutboxMessage, StaffMember
from storage.repo import console as console_repo
from storage.repo import inbound_email as repo
from storage.unit_of_work import UnitOfWork

KINDS = ("appeal", "complaint", "dispute")
SORTED_AS = ("case", "attached", "answered", "no_answer")


@dataclass(frozen=True)
class Enquiry:
    row: InboundEmail
    letter: Letter
    parsed: ParsedMail


async def to_sort(desk: Desk, uow: UnitOfWork) -> list[Letter]:
    """Enquiries not sorted yet, newest first."""
    return [letter_of(desk, row) for row in await console_repo.enquiries(uow.session)]


async def sorted_recently(desk: Desk, uow: UnitOfWork) -> list[InboundEmail]:
    return list(await console_repo.sorted_enquiries(uow.session))


async def enquiry(desk: Desk, uow: UnitOfWork, inbound_id: int, parse: Parse) -> Enquiry | None:
    """One enquiry, parsed; None for any other letter (a case's, a bounce, quarantined)."""
    row = await uow.session.get(InboundEmail, inbound_id)
    if row is None or row.kind != "enquiry":
        return None
    return Enquiry(row, letter_of(desk, row), await parse(row.raw))


async def _to_sort(desk: Desk, uow: UnitOfWork, inbound_id: int, parse: Parse) -> Enquiry:
    """The enquiry, locked; CaseRefused once it is sorted (two members cannot both sort it)."""
    row = await repo.lock(uow.session, inbound_id)
    if row.kind != "enquiry":
        raise LookupError(inbound_id)
    if row.sorted_at is not None:
        raise CaseRefused("console.enquiry_sorted", id=inbound_id)
    return Enquiry(row, letter_of(desk, row), await parse(row.raw))


def _need(reason: str | None, inbound_id: int) -> str:
    text = (reason or "").strip()
    if not text:
        raise CaseRefused("console.enquiry_no_reason", id=inbound_id)
    return text


def _mark(
    desk: Desk, uow: UnitOfWork, row: InboundEmail, actor: StaffMember, as_: str, note: str
) -> None:
    row.sorted_at = desk.clock.now()
    row.sorted_by = staff.actor_of(actor)
    row.sorted_as = as_
    row.sorted_note = note
    uow.session.add(row)


async def open_as_case(
    desk: Desk,
    uow: UnitOfWork,
    inbound_id: int,
    actor: StaffMember,
    parse: Parse,
    *,
    kind: str,
    reason: str,
    decided_on: date | None = None,
) -> str:
    """Open the letter as a case of `kind`; its reference. Received the day it reached the inbox
    (domain §5: the letter's receipt date), acknowledged by e-mail like any letter that is one."""
    if kind not in KINDS:
        raise CaseRefused("console.enquiry_bad_kind", id=inbound_id)
    note = _need(reason, inbound_id)
    found = await _to_sort(desk, uow, inbound_id, parse)
    parsed, row = found.parsed, found.row
    if parsed.sender is None:
        raise CaseRefused("console.enquiry_no_sender", id=inbound_id)
    opened = await open_case(
        desk,
        uow,
        kind=kind,
        channel=Channel.EMAIL,
        complainant=Complainant(
            name=parsed.from_name or None,
            email=parsed.sender,
            locale=letter_locale(parsed.subject, parsed.text, desk.settings.default_locale),
        ),
        subject=parsed.subject or None,
        description=parsed.text,
        attachments=await files(desk, uow, parsed),
        decided_on=decided_on,
        source_message_id=parsed.message_id,
        received_on=found.letter.received,
    )
    await append(
        uow.session,
        opened.case,
        actor=staff.actor_of(actor),
        type="opened_from_enquiry",
        now=desk.clock.now(),
        data={"inbound_email": inbound_id, "reason": note},
    )
    row.case_id = opened.case.id
    _mark(desk, uow, row, actor, "case", note)
    return opened.ref


async def attach_to_case(
    desk: Desk,
    uow: UnitOfWork,
    inbound_id: int,
    actor: StaffMember,
    parse: Parse,
    *,
    ref: str,
    reason: str,
) -> str:
    """The letter joins case `ref` as the complainant's further information; the case's ref."""
    note = _need(reason, inbound_id)
    found = await _to_sort(desk, uow, inbound_id, parse)
    case = await locked_case(uow, ref)
    check_impartial(case, actor)
    parsed, row = found.parsed, found.row
    await add_information(
        desk,
        uow,
        case,
        f"complainant:email:{parsed.from_addr or parsed.sender or '?'}",
        parsed.text,
        await files(desk, uow, parsed),
        source_message_id=parsed.message_id,
    )
    await append(
        uow.session,
        case,
        actor=staff.actor_of(actor),
        type="enquiry_attached",
        now=desk.clock.now(),
        data={"inbound_email": inbound_id, "reason": note},
    )
    row.case_id = case.id
    _mark(desk, uow, row, actor, "attached", note)
    return case.ref


async def answer(
    desk: Desk, uow: UnitOfWork, inbound_id: int, actor: StaffMember, parse: Parse, *, text: str
) -> OutboxMessage:
    """A letter to the sender, threaded under theirs, through the outbox; the answer is the
    reason recorded."""
    body = _need(text, inbound_id)
    found = await _to_sort(desk, uow, inbound_id, parse)
    parsed, row = found.parsed, found.row
    if parsed.sender is None:
        raise CaseRefused("console.enquiry_no_sender", id=inbound_id)
    loc = letter_locale(parsed.subject, parsed.text, desk.settings.default_locale)
    references = [*parsed.references]
    if parsed.message_id and parsed.message_id not in references:
        references.append(parsed.message_id)
    subject = parsed.subject.strip()
    answer = out.Letter(
        to=parsed.sender,
        subject=t("console.enquiry_answer_subject", loc, subject=subject or "—"),
        text=body,
        html=text_to_html(body),
        locale=loc,
        in_reply_to=parsed.message_id,
        references=tuple(references),
    )
    key = f"enquiry:{inbound_id}:answer"
    message = await out.enqueue(uow.session, answer, key=key, now=desk.clock.now())
    _mark(desk, uow, row, actor, "answered", body)
    return message


async def no_answer(
    desk: Desk, uow: UnitOfWork, inbound_id: int, actor: StaffMember, parse: Parse, *, reason: str
) -> None:
    """Marked as needing no answer (spam, a thank-you, sent to the wrong address), with why."""
    note = _need(reason, inbound_id)
    found = await _to_sort(desk, uow, inbound_id, parse)
    _mark(desk, uow, found.row, actor, "no_answer", note)


__all__ = [
    "KINDS",
    "SORTED_AS",
    "Enquiry",
    "answer",
    "attach_to_case",
    "enquiry",
    "no_answer",
    "open_as_case",
    "sorted_recently",
    "to_sort",
]
