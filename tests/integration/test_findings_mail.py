"""Corrective-action evidence by e-mail (issue 12 item 2), on SQLite and PostgreSQL: a letter whose
subject carries the finding's tag `[FND-n]` attaches its files to that finding when it comes
from a contact's address; from any other address it is not evidence (quarantined, staff told).
The letters go through the intake's store-and-act path with the real parser."""

from __future__ import annotations

from pathlib import Path

from sqlmodel import col, select

from bot.desk import Desk
from bot.services import findings, inbound_mail
from bot.services.inbound_mail import RawLetter
from handlers.email.intake import parser
from storage.models import Contact, Finding, FindingEvidenceFile, InboundEmail, OutboxMessage
from storage.unit_of_work import UnitOfWork
from tests.fixtures.mail_corpus import (
    base_headers,
    ew,
    file_part,
    message,
    mixed_headers,
    multipart,
    pdf_bytes,
    text_part,
)
from tests.fixtures.telegram_app import STAFF_CHAT
from tests.integration.test_findings import CSV, certified


def tagged(subject: str, sender: str, uid: int) -> RawLetter:
    raw = message(
        [
            *base_headers(ew(subject, "utf-8"), sender=sender, message_id=f"<ev{uid}@qq.com>"),
            mixed_headers(),
        ],
        multipart(
            "mixed",
            [
                text_part("整改证据见附件。", "utf-8"),
                file_part(pdf_bytes(), "application/pdf", 'filename="fire-exits.pdf"'),
            ],
        ),
    )
    return RawLetter(uid=uid, raw=raw, message_id=f"<ev{uid}@qq.com>", key=f"<ev{uid}@qq.com>")


async def _act(desk: Desk, letter: RawLetter) -> str:
    async with UnitOfWork(desk.sessions) as uow:
        stored = await inbound_mail.store(desk, uow, "INBOX", 1, [letter])
    async with UnitOfWork(desk.sessions) as uow:
        outcome = await inbound_mail.act(desk, uow, stored.new[letter.uid], parser(desk))
    return outcome.status


async def test_a_tagged_letter_from_a_contact_is_evidence(bot_desk: Desk, data_dir: Path) -> None:
    await certified(bot_desk, 830)
    async with bot_desk.sessions() as s, s.begin():
        contact = (await s.exec(select(Contact))).one()
        contact.email = "Ann@Factory.example.test"
        s.add(contact)
    async with UnitOfWork(bot_desk.sessions) as uow:
        await findings.import_csv(bot_desk, uow, CSV)
    major = 2  # the overdue surveillance major of the CSV

    # From a stranger: not evidence; staff see it in quarantine.
    status = await _act(bot_desk, tagged(f"Re: 整改 [FND-{major}]", "eve@elsewhere.test", 1))
    assert status == "quarantined"
    # From the contact's address (case aside): the files go to the finding.
    status = await _act(
        bot_desk, tagged(f"回复：整改 [fnd-{major}]", "ann@factory.example.test", 2)
    )
    assert status == "processed"
    async with bot_desk.sessions() as s:
        row = await s.get(Finding, major)
        files = (await s.exec(select(FindingEvidenceFile))).all()
        letters = (await s.exec(select(InboundEmail).order_by(col(InboundEmail.id)))).all()
        staff = [
            m.payload.get("text") or m.payload.get("caption", "")  # a text, or the file itself
            for m in (await s.exec(select(OutboxMessage))).all()
            if m.recipient == str(STAFF_CHAT)
        ]
    assert row is not None and row.status == "evidence_submitted"
    assert [f.original_name for f in files] == ["fire-exits.pdf"]
    assert [r.kind for r in letters][1] == "finding_evidence"
    assert any("整改证据待验证" in t and "fire-exits.pdf" in t for t in staff)
