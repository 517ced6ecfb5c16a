"""A letter about a case from an address the case does not know (design.md, Security).

Its subject tag or threading headers point at a case, but anyone can copy a tag or a
Message-ID: only a letter from the complainant's own address joins the case as theirs. Any
other is kept as a letter for staff ("from another sender, about case X"), and the sender gets
a neutral acknowledgement that names no case and threads into nothing of the case's.
"""

from __future__ import annotations

from bot.delivery.compose import text_to_html
from bot.desk import Desk
from bot.domain.letters import letter_locale
from bot.domain.mail import ParsedMail
from bot.outbox.messages import Letter, enqueue
from bot.services.inbound_mail.answers import may_answer
from bot.services.inbound_mail.staff import (
    SUBJECT_SHOWN,
    cut,
    limit_noted_plain,
    sender_label,
    to_staff,
)
from messages.render import t, th
from storage.models import Case, Contact, InboundEmail, InboundStatus
from storage.repo import inbound_email as repo
from storage.unit_of_work import UnitOfWork

OTHER_SENDER = "other_sender"  # the problem recorded on such a letter


async def known_addresses(uow: UnitOfWork, case: Case) -> set[str]:
    """The e-mail addresses a case knows: its complainant's, their contact's, and the From of
    the letters that opened it or joined it (the complainant's answers may go to a Reply-To)."""
    known = {case.complainant_email} if case.complainant_email else set()
    assert case.id is not None
    known |= set(await repo.senders_of_case(uow.session, case.id))
    if case.contact_id is not None:
        contact = await uow.session.get(Contact, case.contact_id)
        if contact is not None and contact.email:
            known.add(contact.email)
    return {address.strip().lower() for address in known}


async def from_case_address(uow: UnitOfWork, case: Case, parsed: ParsedMail) -> bool:
    """Whether the letter comes (From) from an address the case knows."""
    sender = (parsed.from_addr or "").strip().lower()
    return bool(sender) and sender in await known_addresses(uow, case)


async def about_case(
    desk: Desk, uow: UnitOfWork, row: InboundEmail, parsed: ParsedMail, case: Case
) -> None:
    """Keep the letter for staff to decide; acknowledge it neutrally to its sender."""
    loc = desk.settings.default_locale
    text = th(
        "email.staff_other_sender",
        loc,
        id=row.id,
        ref=case.ref,
        sender=sender_label(parsed, loc),
        known=case.complainant_email or "—",
        subject=cut(parsed.subject, SUBJECT_SHOWN),
        text=cut(parsed.text),
    )
    await to_staff(desk, uow, f"inbound:{row.id}:other-sender", text, case)
    sender = parsed.sender
    assert sender is not None
    if await may_answer(desk, uow, sender):
        await _neutral_ack(desk, uow, row, parsed, sender)
    else:
        await limit_noted_plain(desk, uow, row, sender)
    row.kind, row.status, row.case_id = "enquiry", InboundStatus.PROCESSED.value, None
    row.problems = [*(row.problems or []), f"{OTHER_SENDER}: about case {case.ref}"]


async def _neutral_ack(
    desk: Desk, uow: UnitOfWork, row: InboundEmail, parsed: ParsedMail, sender: str
) -> None:
    loc = letter_locale(parsed.subject, parsed.text, desk.settings.default_locale)
    text = t("email.neutral_ack_body", loc)
    letter = Letter(
        to=sender,
        subject=t("email.neutral_ack_subject", loc),
        text=text,
        html=text_to_html(text),
        locale=loc,
        in_reply_to=parsed.thread_id,
        references=(parsed.thread_id,) if parsed.thread_id else (),
        auto_reply=True,
    )
    key = f"inbound:{row.message_key}:neutral-ack"
    await enqueue(uow.session, letter, key=key, now=desk.clock.now())
