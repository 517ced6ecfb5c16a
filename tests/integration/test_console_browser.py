"""A real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright; no browser
download) against the console served by uvicorn: sign in, open a case filed through the case
service, view its PDF, assign, reply — with no Content-Security-Policy violation on the way."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from playwright.sync_api import ConsoleMessage, sync_playwright
from sqlmodel import select

from bot.desk import Desk
from bot.services import applications, cases
from bot.services.cases import Complainant
from handlers.console.app import create_app
from handlers.email.intake import parser
from storage.db import make_engine
from storage.models import CaseEvent, Certificate, OutboxMessage
from storage.unit_of_work import UnitOfWork
from tests.fixtures.db import run_isolated
from tests.integration.console_kit import (
    PASSWORD,
    PDF,
    add_staff,
    apply_with_documents,
    console_settings,
    file_complaint,
    make_desk,
    store_enquiry,
)

CHROMIUM = "/usr/bin/chromium"


@dataclass
class Served:
    url: str
    ref: str
    file_id: int
    database_url: str
    data_dir: Path


Seed = Callable[[Desk], Awaitable[dict[str, Any]]]


@contextmanager
def serving(database_url: str, data_dir: Path, seed: Seed) -> Iterator[tuple[str, dict[str, Any]]]:
    """The console under uvicorn on a free port, after `seed` filled the database; (url, what
    the seed returned)."""
    settings = console_settings(database_url, data_dir)

    async def run_seed() -> dict[str, Any]:
        engine = make_engine(database_url)
        try:
            return await seed(make_desk(engine, settings))
        finally:
            await engine.dispose()

    seeded = run_isolated(run_seed)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)  # connections wait in the backlog until uvicorn accepts: nothing to poll
    server: list[uvicorn.Server] = []
    ready = threading.Event()

    async def serve() -> None:
        engine = make_engine(database_url)
        try:
            desk = make_desk(engine, settings)
            app = create_app(desk, parse=parser(desk))
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
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", seeded
    finally:
        server[0].should_exit = True
        thread.join()
        sock.close()


@pytest.fixture
def served(database_url: str, data_dir: Path) -> Iterator[Served]:
    async def seed(desk: Desk) -> dict[str, Any]:
        await add_staff(desk, "王芳", "wang@desk.example.test", "admin")
        async with UnitOfWork(desk.sessions) as uow:
            kept = await cases.keep_attachment(desk, uow, PDF, "现场照片说明.pdf")
        return {"ref": await file_complaint(desk, attachments=[kept]), "file": kept.stored_file_id}

    with serving(database_url, data_dir, seed) as (url, seeded):
        yield Served(url, seeded["ref"], seeded["file"], database_url, data_dir)


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

            # The same case file in English: the language switch, then every label in English.
            page.set_viewport_size({"width": 1280, "height": 900})
            page.goto(f"{served.url}/lang?to=en&next=/cases/{served.ref}")
            page.wait_for_url(f"**/cases/{served.ref}")
            assert page.locator("html").get_attribute("lang") == "en"
            assert page.get_by_role("link", name="View").count() >= 1
            assert "查看" not in page.locator("main").inner_text()
            # The complainant's words are kept as written.
            assert "您好，我们已开始调查。" in page.locator("#history").inner_text()
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


def _browser_context(p: Any) -> tuple[Any, Any]:
    browser = p.chromium.launch(
        executable_path=CHROMIUM,
        args=["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost"],
    )
    return browser, browser.new_context(locale="zh-CN", timezone_id="Asia/Shanghai")


def test_review_a_document_issue_the_certificate_accept_a_late_appeal_sort_an_enquiry(
    database_url: str, data_dir: Path
) -> None:
    async def seed(desk: Desk) -> dict[str, Any]:
        await add_staff(desk, "王芳", "wang@desk.example.test", "admin")
        applicant = await apply_with_documents(desk)
        last = applicant.documents.pop("system_documents")  # reviewed in the browser
        async with UnitOfWork(desk.sessions) as uow:
            for doc in applicant.documents.values():
                await applications.review_document(
                    desk, uow, doc, accept=True, reason=None, by="staff:seed"
                )
        appeal = await file_complaint(
            desk,
            kind="appeal",
            channel="email",
            decided_on=date(2026, 1, 10),  # long past every body's appeal window
            complainant=Complainant(name="韩梅梅", email="han@example.test"),
            subject="对暂停决定的申诉",
        )
        enquiry = await store_enquiry(
            desk,
            (
                "From: 赵六 <zhao@example.test>\r\nSubject: =?utf-8?b?5ZKo6K+i6LS555So?=\r\n"
                "Message-ID: <b1@example.test>\r\nMIME-Version: 1.0\r\n"
                "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"
                "\r\n审核员收取了额外费用。\r\n"
            ).encode(),
            "<b1@example.test>",
        )
        return {"app": applicant.ref, "doc": last, "appeal": appeal, "enquiry": enquiry}

    violations: list[str] = []

    def watch(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or message.type == "error":
            violations.append(message.text)

    with serving(database_url, data_dir, seed) as (url, s), sync_playwright() as p:
        browser, context = _browser_context(p)
        try:
            page = context.new_page()
            page.on("console", watch)
            page.goto(f"{url}/applications/{s['app']}")
            page.get_by_label("电子邮箱").fill("wang@desk.example.test")
            page.get_by_label("密码").fill(PASSWORD)
            page.get_by_role("button", name="登录").click()
            page.wait_for_url(f"**/applications/{s['app']}")

            # The document to review opens in the browser, then is accepted.
            row = page.locator("#item-system_documents")
            href = row.get_by_role("link", name="查看").get_attribute("href")
            shown = context.request.get(f"{url}{href}")
            assert shown.status == 200 and shown.body().startswith(b"%PDF")
            assert shown.headers["content-disposition"].startswith("inline")
            row.get_by_label("通过", exact=True).check()
            row.get_by_role("button").click()
            page.get_by_text(f"资料已通过，已通知申请人（申请 {s['app']}）。").wait_for()
            assert page.locator("#stage").inner_text() == "评审中"

            for stage in ("已受理", "第一阶段审核", "第二阶段审核", "认证决定中"):
                form = page.locator("#move-form")
                form.locator("select").select_option(label=stage)
                form.get_by_role("button").click()
                page.get_by_text(f"申请 {s['app']} 已进入：{stage}").wait_for()
            form = page.locator("#issue-form")
            form.get_by_label("证书编号").fill("GGBZ-2026-0100")
            form.get_by_role("button").click()
            page.get_by_text(f"已为申请 {s['app']} 颁发证书 GGBZ-2026-0100。").wait_for()
            assert page.locator("#certificate").inner_text() == "GGBZ-2026-0100"

            # An out-of-time appeal, accepted with the reason.
            page.goto(f"{url}/cases/{s['appeal']}")
            assert "超过提出期限" in page.locator("h1").inner_text()
            form = page.locator("#decide-form")
            form.get_by_label("受理", exact=True).check()
            form.locator("textarea").fill("邮路延误，有邮戳为证")
            form.get_by_role("button").click()
            page.get_by_text(f"案件 {s['appeal']} 已受理。").wait_for()
            assert "受理（超过提出期限）" in page.locator("#history").inner_text()

            # An enquiry sorted into a complaint.
            page.goto(f"{url}/enquiries")
            page.get_by_role("link", name="咨询费用").click()
            page.wait_for_url(f"**/enquiries/{s['enquiry']}")
            assert "额外费用" in page.locator("#letter-text").inner_text()
            form = page.locator("#open-form")
            form.locator("select").select_option(label="投诉")
            form.get_by_label("理由").fill("信中投诉审核员收费")
            form.get_by_role("button").click()
            page.wait_for_url("**/cases/*")
            page.get_by_text("已立案：").wait_for()
            assert "由来信" in page.locator("#history").inner_text()
        finally:
            browser.close()
    assert violations == []

    async def check() -> tuple[list[str], list[str]]:
        engine = make_engine(database_url)
        try:
            async with make_desk(engine, console_settings(database_url, data_dir)).sessions() as ss:
                certs = list((await ss.exec(select(Certificate.number))).all())
                actors = list(
                    (
                        await ss.exec(
                            select(CaseEvent.type).where(
                                CaseEvent.actor == "staff:wang@desk.example.test"
                            )
                        )
                    ).all()
                )
                return certs, actors
        finally:
            await engine.dispose()

    certs, types = run_isolated(check)
    assert certs == ["GGBZ-2026-0100"]
    assert sorted(types) == ["accepted", "opened_from_enquiry"]


def test_import_certificates_from_the_browser_and_suspend_one(
    database_url: str, data_dir: Path, tmp_path: Path
) -> None:
    async def seed(desk: Desk) -> dict[str, Any]:
        await add_staff(desk, "王芳", "wang@desk.example.test", "admin")
        return {}

    upload = tmp_path / "证书登记.csv"
    upload.write_bytes(
        (
            "number,holder,standard,decided_on,expires_on,uscc,contact_emails\n"
            "GGBZ-2025-0201,武汉示例制造有限公司,GB/T 39604-2020,2025-12-01,2028-11-30,"
            "91110000600037341L,chen@example.test\n"
            "GGBZ-2025-0202,宜昌示例有限公司,GB/T 39604-2020,2025-12-01,2028-12-02,,\n"
        ).encode("gbk")  # as Excel saves it on a Chinese Windows
    )
    violations: list[str] = []

    def watch(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or message.type == "error":
            violations.append(message.text)

    with serving(database_url, data_dir, seed) as (url, _), sync_playwright() as p:
        browser, context = _browser_context(p)
        try:
            page = context.new_page()
            page.on("console", watch)
            page.goto(f"{url}/certificates/import")
            page.get_by_label("电子邮箱").fill("wang@desk.example.test")
            page.get_by_label("密码").fill(PASSWORD)
            page.get_by_role("button", name="登录").click()
            page.wait_for_url("**/certificates/import")
            page.locator("#import-form input[type=file]").set_input_files(str(upload))
            page.locator("#import-form button").click()
            page.get_by_text("新增 1 张，更新 0 张，1 行未导入。").wait_for()
            assert "validity longer than 36 months" in page.locator("#import-refused").inner_text()

            page.goto(f"{url}/certificates?q=武汉示例")
            page.get_by_role("link", name="GGBZ-2025-0201").click()
            page.wait_for_url("**/certificates/*")
            assert "chen@example.test" in page.locator("#contacts").inner_text()
            assert page.locator("#reminders tbody tr").count() > 0
            form = page.locator("#suspend-form")
            form.locator("input[name=months]").fill("3")
            form.locator("input[name=reason]").fill("监督审核发现严重不符合")
            form.get_by_role("button").click()
            page.get_by_text("暂停资格通知书已排入发件箱").wait_for()
            assert page.locator("#cert-status").inner_text() == "暂停"
            assert "暂停认证资格" in page.locator("#history").inner_text()
        finally:
            browser.close()
    assert violations == []

    async def check() -> list[tuple[str, str]]:
        engine = make_engine(database_url)
        try:
            async with make_desk(engine, console_settings(database_url, data_dir)).sessions() as ss:
                rows = await ss.exec(
                    select(OutboxMessage.recipient, OutboxMessage.channel).where(
                        OutboxMessage.channel == "email"
                    )
                )
                return [(r, c) for r, c in rows.all()]
        finally:
            await engine.dispose()

    assert run_isolated(check) == [("chen@example.test", "email")]
