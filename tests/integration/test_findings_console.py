"""Findings in the console under the ICS profile (issue 12 items 3 and 5; seed 002), on SQLite and
PostgreSQL: members verify the evidence of their own factories only — another member's factory is
a 404 whether listed, opened, its files fetched or its verdict posted by a guessed id; staff see
every finding but do not verify where members do; no due date is invented; the bot says ICS is
not a certificate."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from bot.desk import Desk
from bot.emulator import Emulator
from bot.services import findings, findings_access
from handlers.console.app import create_app
from storage.models import Certificate, Contact, Organisation, OutboxMessage, StaffMember
from storage.unit_of_work import UnitOfWork
from tests.fixtures.telegram_app import expect, make_desk, running
from tests.integration.console_kit import add_staff, console_settings, csrf_of, sign_in
from tests.integration.console_kit import make_desk as console_desk
from tests.integration.test_telegram_documents import PDF

CSV = """certificate,audit_type,audit_end_on,grade,clause,text,due_on
ICS-A,initial,2026-09-10,minor,ICS 2.1,No non-discrimination policy,2026-10-30
ICS-B,initial,2026-09-12,major,ICS 4.3,Expired business licence,2026-10-15
ICS-B,initial,2026-09-12,minor,ICS 4.4,No date given,
"""


async def factory(desk: Desk, number: str, chat: int) -> None:
    async with desk.sessions() as s, s.begin():
        org = Organisation(name=f"Factory {number}", locale="en")
        s.add(org)
        await s.flush()
        s.add(Contact(organisation_id=org.id, telegram_chat_id=chat, telegram_user_id=chat,
                      locale="en"))  # fmt: skip
        s.add(
            Certificate(
                number=number, organisation_id=org.id, holder=org.name, standard="ICS",
                decided_on=date(2026, 9, 10), expires_on=date(2027, 9, 10),
            )
        )  # fmt: skip


async def member(desk: Desk, email: str) -> StaffMember:
    async with desk.sessions() as s:
        return (await s.exec(select(StaffMember).where(StaffMember.email == email))).one()


async def test_members_see_and_verify_only_their_own_factories(
    engine: AsyncEngine, database_url: str, data_dir: Path
) -> None:
    desk = console_desk(engine, console_settings(database_url, data_dir, profile="ics"))
    assert desk.profile.body.id == "ics"
    await factory(desk, "ICS-A", 7001)
    await factory(desk, "ICS-B", 7002)
    async with UnitOfWork(desk.sessions) as uow:
        report = await findings.import_csv(desk, uow, CSV)
    assert report.imported == 2
    assert report.refused[0].line == 4 and "due_on is needed" in report.refused[0].reason
    await add_staff(desk, "Brand A", "a@brand.example.test", "member")
    await add_staff(desk, "Brand B", "b@brand.example.test", "member")
    await add_staff(desk, "张伟", "zhang@desk.example.test")
    async with UnitOfWork(desk.sessions) as uow:
        await findings_access.link_member(uow, await member(desk, "a@brand.example.test"), "ICS-A")
        await findings_access.link_member(uow, await member(desk, "b@brand.example.test"), "ICS-B")
    # Each factory sends evidence (as its contact does on Telegram).
    ids = {}
    async with UnitOfWork(desk.sessions) as uow:
        for number, chat in (("ICS-A", 7001), ("ICS-B", 7002)):
            contact = (
                await uow.session.exec(select(Contact).where(Contact.telegram_user_id == chat))
            ).one()
            (mine,) = await findings.open_for(desk, uow, contact)
            stored = await findings.store_upload(
                desk, uow, PDF + number.encode(), "application/pdf"
            )
            await findings.submit_evidence(
                desk, uow, contact, mine.id, [(stored, f"{number}.pdf")], "policy attached"
            )
            ids[number] = mine.id
    a_id, b_id = ids["ICS-A"], ids["ICS-B"]
    async with UnitOfWork(desk.sessions) as uow:
        (a_row,) = await findings.listed(desk, uow, "ICS-A")
    assert (a_row.due, a_row.rule) == (date(2026, 10, 30), "set")  # the member's date

    transport = httpx.ASGITransport(app=create_app(desk))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        assert (await sign_in(client, "a@brand.example.test")).status_code == 303
        listing = await client.get("/findings")
        assert listing.status_code == 200
        assert "ICS-A" in listing.text and "ICS-B" not in listing.text
        assert "0 of 1 findings closed" in listing.text or "0/1" in listing.text
        page = await client.get(f"/findings/{a_id}")
        assert page.status_code == 200 and "No non-discrimination policy" in page.text
        file_link = f"/findings/{a_id}/files/1"
        assert file_link in page.text
        got = await client.get(file_link)
        assert got.status_code == 200 and got.content == PDF + b"ICS-A"

        # URL guessing: another member's factory is missing, however it is asked for.
        assert (await client.get(f"/findings/{b_id}")).status_code == 404
        assert (await client.get(f"/findings/{b_id}/files/2")).status_code == 404
        assert (await client.get(f"/findings/{a_id}/files/2")).status_code == 404
        token = csrf_of(page.text)
        forged = await client.post(
            f"/findings/{b_id}/review", data={"csrf_token": token, "verdict": "accept"}
        )
        assert forged.status_code == 404

        # The member rejects its own factory's evidence with a reason.
        done = await client.post(
            f"/findings/{a_id}/review",
            data={"csrf_token": token, "verdict": "reject", "reason": "Policy not signed"},
        )
        assert done.status_code == 303
        again = await client.get(f"/findings/{a_id}")
        assert "Policy not signed" in again.text
        await client.post("/logout", data={"csrf_token": csrf_of(again.text)})

        # Staff see every factory, but under ICS members verify: staff may not.
        assert (await sign_in(client, "zhang@desk.example.test")).status_code == 303
        listing = await client.get("/findings")
        assert "ICS-A" in listing.text and "ICS-B" in listing.text
        page = await client.get(f"/findings/{b_id}")
        assert page.status_code == 200 and 'name="verdict"' not in page.text
        refused = await client.post(
            f"/findings/{b_id}/review",
            data={"csrf_token": csrf_of(page.text), "verdict": "accept"},
        )
        assert refused.status_code == 303
        shown = (await client.get(f"/findings/{b_id}")).text
        assert "does not verify" in shown or "不负责验证" in shown

    async with desk.sessions() as s:
        rows = (await s.exec(select(OutboxMessage))).all()
        told = [
            r for r in rows if r.recipient == "7001" and "finding-rejected" in r.idempotency_key
        ]
        b_told = [r for r in rows if r.recipient == "7002" and "finding-" in r.idempotency_key]
    assert len(told) == 1 and "Policy not signed" in told[0].payload["text"]
    assert b_told == []  # nobody verified ICS-B
    async with UnitOfWork(desk.sessions) as uow:
        b = (await findings.listed(desk, uow, "ICS-B"))[0]
    assert b.status == "evidence_submitted"
    await desk.close()


async def test_ics_bot_says_it_is_not_a_certificate(
    database_url: str, data_dir: Path, emulator: Emulator
) -> None:
    desk = await make_desk(database_url, data_dir, profile="ics")
    try:
        user = emulator.user(7100, "Li", language_code="en")
        async with running(desk, emulator):
            await user.send("/start")
            await expect(user, "Please choose a language")
            await user.press("English")
            await expect(user, "What would you like to do?")
            await user.send("/certificate")
            reply = await expect(user, "issues no certificate and no label")
            assert "ICS 审核并非一种认证或标签" in reply.text
    finally:
        await desk.close()
