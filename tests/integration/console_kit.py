"""What the console tests share: a desk on the test database, staff in the directory, a case
filed through the case service, and an HTTP client signed in against the real app."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.clock import FrozenClock
from bot.config import load_settings
from bot.desk import Desk, load_calendar
from bot.profiles import load_profile
from bot.services import applications, cases, contacts, staff
from bot.services.cases import Complainant
from handlers.console.app import create_app
from handlers.email.intake import parser
from storage.db import session_factory
from storage.models import InboundEmail
from storage.unit_of_work import UnitOfWork

# 2026-09-28 10:00 in Shanghai: the Monday before the National Day break.
NOW = datetime(2026, 9, 28, 2, 0, tzinfo=UTC)
PASSWORD = "correct horse battery"
SECRET = "k" * 40
CHEAP = {"password_time_cost": 1, "password_memory_kib": 8192}  # ~7 ms a hash, not ~0.3 s


def console_settings(database_url: str, data_dir: Path, **extra: Any) -> Any:
    return load_settings(
        data_dir=data_dir,
        database_url=database_url,
        mail_domain="desk.example.test",
        console_secret_key=SECRET,
        **CHEAP,
        **extra,
    )


def make_desk(engine: AsyncEngine, settings: Any, at: datetime = NOW) -> Desk:
    return Desk(
        settings=settings,
        profile=load_profile(settings.profile),
        calendar=load_calendar(settings),
        engine=engine,
        sessions=session_factory(engine),
        clock=FrozenClock(at),
    )


async def add_staff(desk: Desk, name: str, email: str, role: str = "staff", **kw: Any) -> int:
    async with UnitOfWork(desk.sessions) as uow:
        member = await staff.add_member(
            desk, uow, name=name, email=email, password=PASSWORD, role=role, **kw
        )
        assert member.id is not None
        return member.id


async def file_complaint(desk: Desk, **fields: Any) -> str:
    """A Telegram complaint filed through the case service, as the chat flow files it."""
    base: dict[str, Any] = {
        "kind": "complaint",
        "channel": "telegram",
        "complainant": Complainant(
            name="李雷", telegram_user_id=5001, telegram_chat_id=5001, phone="13800000000"
        ),
        "subject": "审核员迟到",
        "description": "审核员迟到两个小时。",
    }
    async with UnitOfWork(desk.sessions) as uow:
        opened = await cases.open_case(desk, uow, **(base | fields))
    return opened.ref


async def store_enquiry(desk: Desk, raw: bytes, key: str) -> int:
    """A letter as the intake leaves an enquiry: stored, processed, kind `enquiry`."""
    async with desk.sessions() as s, s.begin():
        row = InboundEmail(
            mailbox="INBOX",
            message_key=key,
            raw=raw,
            received_at=desk.clock.now(),
            status="processed",
            kind="enquiry",
        )
        s.add(row)
        await s.flush()
        assert row.id is not None
        return row.id


PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


@dataclass(frozen=True)
class Applicant:
    ref: str
    application_id: int
    organisation_id: int
    documents: dict[str, int]  # checklist item → document id


async def apply_with_documents(
    desk: Desk, *, chat_id: int = 7001, uploads: int | None = None
) -> Applicant:
    """An applicant on Telegram (contact, organisation, application) who uploaded a PDF for the
    first `uploads` checklist items (all of them by default), through the services."""
    async with UnitOfWork(desk.sessions) as uow:
        contact, _ = await contacts.telegram_contact(
            uow,
            user_id=chat_id,
            chat_id=chat_id,
            name="陈经理",
            locale="zh_CN",
            now=desk.clock.now(),
        )
        contact, org = await contacts.name_organisation(
            uow, contact.id, "武汉示例制造有限公司", desk.clock.now()
        )
        app, _ = await applications.open_application(desk, uow, contact, org, "SA")
        items = [i.id for i in desk.profile.checklist("SA")][:uploads]
        docs = {}
        for n, item in enumerate(items):
            doc = await applications.receive_document(
                desk, uow, app, org, item, PDF + str(n).encode(), f"{item}.pdf", "application/pdf"
            )
            docs[item] = doc.id or 0
        assert app.id is not None and org.id is not None
        return Applicant(app.ref, app.id, org.id, docs)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF token in the page"
    return found.group(1)


async def sign_in(
    client: httpx.AsyncClient, email: str, password: str = PASSWORD
) -> httpx.Response:
    page = await client.get("/login")
    return await client.post(
        "/login", data={"email": email, "password": password, "csrf_token": csrf_of(page.text)}
    )


@dataclass
class Console:
    desk: Desk
    client: httpx.AsyncClient
    admin_id: int
    staff_id: int

    async def signed_in(self, email: str = "wang@desk.example.test") -> httpx.AsyncClient:
        response = await sign_in(self.client, email)
        assert response.status_code == 303, response.text
        return self.client

    async def csrf(self, path: str = "/") -> str:
        return csrf_of((await self.client.get(path)).text)


@pytest.fixture
async def console(engine: AsyncEngine, database_url: str, data_dir: Path) -> AsyncIterator[Console]:
    async with console_with(engine, database_url, data_dir) as c:
        yield c


@asynccontextmanager
async def console_with(
    engine: AsyncEngine, database_url: str, data_dir: Path, **settings: Any
) -> AsyncIterator[Console]:
    """The console of a desk with these settings (profile="sgc" …), its two members in."""
    desk = make_desk(engine, console_settings(database_url, data_dir, **settings))
    admin_id = await add_staff(
        desk, "王芳", "wang@desk.example.test", "admin", telegram_user_id=901
    )
    staff_id = await add_staff(desk, "张伟", "zhang@desk.example.test")
    transport = httpx.ASGITransport(app=create_app(desk, parse=parser(desk)))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield Console(desk, client, admin_id, staff_id)
