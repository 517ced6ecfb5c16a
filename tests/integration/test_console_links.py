"""Staff alerts link to their console page when CONSOLE_BASE_URL is set: a case's alert to the
case file, a new application and a document to review to the application, an enquiry to its
sorting page — on Telegram as a link under the text, by e-mail in the footer."""

from __future__ import annotations

from pathlib import Path

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from handlers.console.app import create_app
from storage.models import OutboxMessage
from tests.integration.console_kit import (
    add_staff,
    apply_with_documents,
    console_settings,
    file_complaint,
    make_desk,
    sign_in,
)

BASE = "https://console.example.test"


async def _staff_rows(desk: object, channel: str) -> list[OutboxMessage]:
    async with desk.sessions() as s:  # type: ignore[attr-defined]
        query = (
            select(OutboxMessage)
            .where(OutboxMessage.channel == channel, OutboxMessage.recipient != "7001")
            .order_by(col(OutboxMessage.id))
        )
        return list((await s.exec(query)).all())


async def test_alerts_link_to_their_console_page(
    engine: AsyncEngine, database_url: str, data_dir: Path
) -> None:
    settings = console_settings(
        database_url,
        data_dir,
        console_base_url=BASE,
        staff_chat_id=-100200,
        staff_alert_emails=["duty@desk.example.test"],
    )
    desk = make_desk(engine, settings)
    ref = await file_complaint(desk)
    applicant = await apply_with_documents(desk, uploads=1)
    # A text, or a document's caption (the review prompt is the document itself).
    telegram = [
        r.payload.get("text") or r.payload["caption"]
        for r in await _staff_rows(desk, "telegram")
        if r.recipient == "-100200"
    ]
    assert any(
        ref in text and f'<a href="{BASE}/cases/{ref}">在控制台打开</a>' in text
        for text in telegram
    )
    assert any(f'<a href="{BASE}/applications/{applicant.ref}">' in text for text in telegram)
    doc = applicant.documents["application_form"]
    assert any(f'<a href="{BASE}/documents/{doc}">' in text for text in telegram)
    mails = [r.payload["text"] for r in await _staff_rows(desk, "email")]
    assert any(f"{BASE}/cases/{ref}" in text for text in mails)

    # The document link leads to its application's file, after sign-in.
    await add_staff(desk, "王芳", "wang@desk.example.test", "admin")
    transport = httpx.ASGITransport(app=create_app(desk))
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
        await sign_in(client, "wang@desk.example.test")
        found = await client.get(f"/documents/{doc}")
        assert found.status_code == 303
        assert found.headers["location"] == f"/applications/{applicant.ref}#document-{doc}"


async def test_without_a_console_address_alerts_carry_no_link(
    engine: AsyncEngine, database_url: str, data_dir: Path
) -> None:
    settings = console_settings(database_url, data_dir, staff_chat_id=-100200)
    desk = make_desk(engine, settings)
    await file_complaint(desk)
    telegram = [r.payload["text"] for r in await _staff_rows(desk, "telegram")]
    assert telegram and not any("<a href=" in text for text in telegram)
