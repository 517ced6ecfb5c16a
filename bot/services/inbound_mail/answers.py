"""What a letter that can be acted upon becomes: a case, information on a case, an enquiry for
staff, or a bounce of something we sent. Each one sets the stored row's kind and status."""

from __future__ import annotations

import errno

from bot.delivery.compose import text_to_html
from bot.desk import Desk
from bot.domain.cases import letter_receipt_day
from bot.domain.letters import letter_locale
from bot.domain.mail import ParsedMail
from bot.domain.refs import subject_tag
from bot.outbox.messages import Letter, enqueue
from bot.services.cases import (
    Attachment,
    CaseRefused,
    Complainant,
    add_information,
    keep_attachment,
    new_message_id,
    open_case,
)
from bot.services.inbound_mail.staff import SUBJECT_SHOWN, cut, limit_noted, sender_label, to_staff
from messages.render import t, th
from storage.models import Case, Channel, InboundEmail, InboundStatus
from storage.repo import cases as cases_repo
from storage.repo import inbound_email as repo
from storage.unit_of_work import UnitOfWork


async def open_from_letter(
    desk: Desk, uow: UnitOfWork, row: InboundEmail, parsed: ParsedMail, kind: str
) -> str:
    """Open the case the letter asks for; its reference."""
    sender = parsed.sender
    assert sender is not None
    allowed = await may_answer(desk, uow, sender)
    opened = await open_case(
        desk,
        uow.session,
        kind=kind,
        channel=Channel.EMAIL,
        complainant=Complainant(
            name=parsed.from_name or None,
            email=sender,
            locale=letter_locale(parsed.subject, parsed.text, desk.settings.default_locale),
        ),
        subject=parsed.subject or None,
        description=parsed.text,
        attachments=await files(desk, uow, parsed),
        source_message_id=parsed.thread_id,
        acknowledge_by_email=allowed,
        received_on=letter_receipt_day(row.internal_date, desk.clock.now()),
    )
    if not allowed:
        await limit_noted(desk, uow, row, sender, opened.case)
    row.kind, row.status, row.case_id = kind, InboundStatus.PROCESSED.value, opened.case.id
    return opened.ref


async def join_reply(
    desk: Desk, uow: UnitOfWork, row: InboundEmail, parsed: ParsedMail, case: Case
) -> None:
    """The letter answers `case`: its text and files join the case, the sender is told."""
    sender = parsed.sender
    assert sender is not None and case.id is not None
    await add_information(
        desk,
        uow.session,
        case,
        f"complainant:email:{parsed.from_addr or sender}",
        parsed.text,
        await files(desk, uow, parsed),
        source_message_id=parsed.thread_id,
    )
    if await may_answer(desk, uow, sender):
        await _acknowledge_reply(desk, uow, row, parsed, case, sender)
    else:
        await limit_noted(desk, uow, row, sender, case)
    row.kind, row.status, row.case_id = "reply", InboundStatus.PROCESSED.value, case.id


async def _acknowledge_reply(
    desk: Desk,
    uow: UnitOfWork,
    row: InboundEmail,
    parsed: ParsedMail,
    case: Case,
    sender: str,
) -> None:
    session = uow.session
    loc, tag = case.locale, subject_tag(case.ref)
    text = t("email.reply_ack_body", loc, ref=case.ref, tag=tag)
    message_id = new_message_id(desk, case.ref)
    references = parsed.thread_references()
    letter = Letter(
        to=sender,
        subject=t("email.reply_ack_subject", loc, tag=tag),
        text=text,
        html=text_to_html(text),
        locale=loc,
        in_reply_to=parsed.thread_id,
        references=tuple(references),
        auto_reply=True,
        case_ref=case.ref,
        message_id=message_id,
    )
    key = f"inbound:{row.message_key}:ack"
    out = await enqueue(session, letter, key=key, case_id=case.id, now=desk.clock.now())
    # Known before it is sent, so an answer to it (or its bounce) finds the case.
    out.email_message_id = message_id
    session.add(out)
    await cases_repo.add_message_id(session, case, message_id)


async def enquiry(desk: Desk, uow: UnitOfWork, row: InboundEmail, parsed: ParsedMail) -> None:
    """Neither a case nor an answer to one: staff triage it, nothing is answered."""
    loc = desk.settings.default_locale
    text = th(
        "email.staff_enquiry",
        loc,
        id=row.id,
        sender=sender_label(parsed, loc),
        subject=cut(parsed.subject, SUBJECT_SHOWN),
        text=cut(parsed.text),
    )
    await to_staff(desk, uow, f"inbound:{row.id}:triage", text, about=parsed.sender)
    row.kind, row.status = "enquiry", InboundStatus.PROCESSED.value


async def bounce(desk: Desk, uow: UnitOfWork, row: InboundEmail, parsed: ParsedMail) -> None:
    """A message of ours came back: its delivery failed, staff are told, nothing is answered."""
    assert parsed.bounce is not None
    session = uow.session
    original = cases_repo.normalise_message_id(parsed.bounce.original_message_id)
    out = await repo.outbox_by_message_id(session, original) if original else None
    addresses = parsed.bounce.failed_recipients or ([out.recipient] if out else [])
    if out is not None and out.recipient.lower() not in {a.lower() for a in addresses}:
        # A report of a failure to someone else is no news of this message: anyone can
        # write a "bounce" quoting our Message-ID; only the recipient's own failure counts.
        out = None
    case = await session.get(Case, out.case_id) if out and out.case_id else None
    if out is not None:
        # The message the bounce returns did not reach its reader: that is a failed delivery.
        out.status = "failed"
        out.last_error = f"bounced: {', '.join(addresses)} (inbound e-mail #{row.id})"[:500]
        session.add(out)
    loc = desk.settings.default_locale
    text = th(
        "email.staff_bounce",
        loc,
        address=", ".join(addresses) or "?",
        ref=case.ref if case else "—",
    )
    await to_staff(desk, uow, f"inbound:{row.id}:bounce", text, case)
    row.kind, row.status = "bounce", InboundStatus.IGNORED.value
    row.case_id = case.id if case else None


class FileNotSaved(Exception):
    """A file of the letter could not be written (a full disk, a read-only data folder): the
    letter is acted upon later, when it can be whole, and the letters after it go on."""


async def files(desk: Desk, uow: UnitOfWork, parsed: ParsedMail) -> list[Attachment]:
    """The letter's acceptable attachments, stored like uploads."""
    kept = []
    for item in parsed.attachments:
        if not item.acceptable or item.data is None:
            continue  # listed in the problems the staff see
        try:
            kept.append(await keep_attachment(desk, uow.session, item.data, item.filename))
        except CaseRefused:
            continue
        except OSError as exc:
            code = errno.errorcode.get(exc.errno or 0)
            why = exc.strerror or type(exc).__name__
            raise FileNotSaved(f"{why} ({code})" if code else why) from exc
    return kept


async def may_answer(desk: Desk, uow: UnitOfWork, address: str) -> bool:
    """At most AUTO_REPLIES_PER_SENDER_PER_HOUR automatic answers to one address per hour."""
    since = desk.clock.now() - repo.HOUR
    sent = await repo.automatic_answers_since(uow.session, address, since)
    return sent < desk.settings.auto_replies_per_sender_per_hour
