"""A real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright; no browser
download) against the console served by uvicorn: sign in, open a case filed through the case
service, view its PDF, assign, reply — with no Content-Security-Policy violation on the way."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import ConsoleMessage, sync_playwright
from sqlmodel import select

from bot.services import cases
from handlers.console.app import create_app
from storage.db import make_engine
from storage.models import CaseEvent, OutboxMessage
from storage.unit_of_work import UnitOfWork
from tests.fixtures.db import run_isolated
from tests.integration.console_kit import (
    PASSWORD,
    add_staff,
    console_settings,
    file_complaint,
    make_desk,
)

CHROMIUM = "/usr/bin/chromium"
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


@dataclass
class Served:
    url: str
    ref: str
    file_id: int
    database_url: str
    data_dir: Path


@pytest.fixture
def served(database_url: str, data_dir: Path) -> Iterator[Served]:
    settings = console_settings(database_url, data_dir)

    async def seed() -> tuple[str, int]:
        engine = make_engine(database_url)
        try:
            desk = make_desk(engine, settings)
            await add_staff(desk, "王芳", "wang@desk.example.test", "admin")
            async with UnitOfWork(desk.sessions) as uow:
                kept = await cases.keep_attachment(desk, uow, PDF, "现场照片说明.pdf")
            return await file_complaint(desk, attachments=[kept]), kept.stored_file_id
        finally:
            await engine.dispose()

    ref, file_id = run_isolated(seed)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)  # connections wait in the backlog until uvicorn accepts: nothing to poll
    server: list[uvicorn.Server] = []
    ready = threading.Event()

    async def serve() -> None:
        engine = make_engine(database_url)
        try:
            app = create_app(make_desk(engine, settings))
            config = uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False)
            server.append(uvicorn.Server(config))
            ready.set()
            await server[0].serve(sockets=[sock])
        finally:
            await engine.dispose()

    thread = threading.Thread(target=lambda: asyncio.run(serve()), name="console")
    thread.start()
    ready.wait()
    try:
        port = sock.getsockname()[1]
        yield Served(f"http://127.0.0.1:{port}", ref, file_id, database_url, data_dir)
    finally:
        server[0].should_exit = True
        thread.join()
        sock.close()


def test_sign_in_open_a_case_view_its_pdf_assign_and_reply(served: Served) -> None:
    violations: list[str] = []

    def watch(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or message.type == "error":
            violations.append(message.text)

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost"],
        )
        try:
            context = browser.new_context(locale="zh-CN", timezone_id="Asia/Shanghai")
            page = context.new_page()
            page.on("console", watch)
            page.goto(f"{served.url}/cases/{served.ref}")
            assert "/login" in page.url  # anonymous: sent to sign in first
            page.get_by_label("电子邮箱").fill("wang@desk.example.test")
            page.get_by_label("密码").fill(PASSWORD)
            page.get_by_role("button", name="登录").click()
            page.wait_for_url(f"**/cases/{served.ref}")
            assert served.ref in page.locator("h1").inner_text()
            assert "李雷" in page.locator("#identity").inner_text()
            assert page.evaluate("typeof htmx") == "object"  # the vendored file loaded

            # The PDF opens in the browser from its link: same bytes, shown inline.
            link = page.get_by_role("link", name="查看")
            pdf = context.request.get(f"{served.url}{link.get_attribute('href')}")
            assert pdf.status == 200 and pdf.body() == PDF
            assert pdf.headers["content-disposition"].startswith("inline")

            page.locator("#assign-form select").select_option(label="王芳 (wang@desk.example.test)")
            page.locator("#assign-form button").click()
            page.get_by_text(f"案件 {served.ref} 已分配给 王芳").wait_for()
            assert page.locator("#assignee").inner_text() == "王芳"

            page.locator("#reply-form textarea").fill("您好，我们已开始调查。")
            page.locator("#reply-form button").click()
            page.get_by_text("答复已排入发件箱（Telegram）").wait_for()
            assert "您好，我们已开始调查。" in page.locator("#history").inner_text()

            page.set_viewport_size({"width": 390, "height": 844})  # a phone
            page.reload()
            assert page.evaluate("document.documentElement.scrollWidth") <= 390 + 1
        finally:
            browser.close()
    assert violations == []

    async def check() -> tuple[list[str], list[OutboxMessage]]:
        engine = make_engine(served.database_url)
        try:
            async with UnitOfWork(
                make_desk(engine, console_settings(served.database_url, served.data_dir)).sessions
            ) as uow:
                types = list((await uow.session.exec(select(CaseEvent.actor))).all())
                sent = list(
                    (
                        await uow.session.exec(
                            select(OutboxMessage).where(OutboxMessage.recipient == "5001")
                        )
                    ).all()
                )
                return types, sent
        finally:
            await engine.dispose()

    actors, sent = run_isolated(check)
    assert actors.count("staff:wang@desk.example.test") == 2  # assigned, reply_sent
    assert any("我们已开始调查" in m.payload["text"] for m in sent)
