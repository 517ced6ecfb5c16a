"""Corrective-action evidence by e-mail (issue 12): a letter whose subject carries a finding's tag
(`[FND-12]`, as our reminders and verdicts put it) attaches its files to that finding — only
when it comes from the e-mail address of a contact of the finding's organisation. A tagged
letter from anyone else is not taken as evidence: staff are told (quarantine lists it).
"""

from __future__ import annotations

from sqlmodel import col, func, select

from bot.desk import Desk
from bot.domain import findings as rules
from bot.domain.mail import ParsedMail
from bot.services import findings as service
from bot.services.inbound_mail.answers import files
from bot.services.inbound_mail.staff import quarantine
from storage.models import Contact, InboundEmail, InboundStatus
from storage.repo import findings as repo
from storage.unit_of_work import UnitOfWork


async def evidence_letter(
    desk: Desk, uow: UnitOfWork, row: InboundEmail, parsed: ParsedMail
) -> bool:
    """Take a tagged letter as evidence (True), or leave it to the rest of the intake (False)."""
    finding_id = rules.tagged_finding(parsed.subject)
    if finding_id is None:
        return False
    found = await repo.with_certificate(uow.session, finding_id)
    sender = (parsed.sender or "").strip().lower()
    contact = None
    if found is not None and found[1].organisation_id is not None and sender:
        stmt = select(Contact).where(
            col(Contact.organisation_id) == found[1].organisation_id,
            func.lower(col(Contact.email)) == sender,
        )
        contact = (await uow.session.exec(stmt)).first()
    if contact is None:
        await quarantine(desk, uow, row, parsed, "finding_tag_unknown_sender")
        return True
    kept = await files(desk, uow, parsed)
    note = " ".join(parsed.text.split())[:2000] or None
    try:
        await service.submit_evidence(
            desk, uow, contact, finding_id, [(a.stored_file_id, a.name) for a in kept], note
        )
    except service.Refusal as refused:  # no acceptable file, or nothing to submit for
        await quarantine(desk, uow, row, parsed, f"finding_evidence_refused: {refused.key}")
        return True
    row.kind, row.status = "finding_evidence", InboundStatus.PROCESSED.value
    return True


__all__ = ["evidence_letter"]
