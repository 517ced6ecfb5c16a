"""Regenerate the console screenshots in docs/ with the browser tests' own tooling (Debian's
Chromium driven by Playwright, the console under uvicorn on a fresh SQLite database):

    PYTHONPATH=$PWD .venv/bin/python docs/screenshots.py

Writes console-case-zh_CN.png, console-case-en.png (a complaint's file, full page) and
console-today-phone.png (Today at 390×844)."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright

from bot.desk import Desk
from bot.services import case_desk, cases, staff
from bot.services.cases import Complainant
from storage.db import upgrade_async
from storage.unit_of_work import UnitOfWork
from tests.integration.console_kit import PASSWORD, PDF, add_staff, file_complaint
from tests.integration.test_console_browser import CHROMIUM, serving

DOCS = Path(__file__).parent


async def seed(desk: Desk) -> dict[str, Any]:
    await add_staff(desk, "王芳", "wang@desk.example.test", "admin", telegram_user_id=901)
    await add_staff(desk, "张伟", "zhang@desk.example.test")
    async with UnitOfWork(desk.sessions) as uow:
        kept = await cases.keep_attachment(desk, uow, PDF, "现场照片说明.pdf")
    ref = await file_complaint(
        desk,
        attachments=[kept],
        concerns="certified",
        concerns_certificate_no="GGBZ-2025-0201",
        subject="获证组织售后服务承诺未兑现",
        description="购买的设备三次报修均未在承诺的48小时内上门，客服电话无人接听。",
    )
    await file_complaint(desk, subject="审核员迟到", description="审核员迟到两个小时。")
    await file_complaint(
        desk,
        kind="appeal",
        channel="email",
        complainant=Complainant(name="韩梅梅", email="han@example.test"),
        subject="对暂停决定的申诉",
    )
    async with UnitOfWork(desk.sessions) as uow:
        wang = next(m for m in await staff.members(uow) if m.name == "王芳")
        await case_desk.assign(desk, uow, ref, wang, wang)
        said = "您好，我们已收到投诉，正在调查，将及时告知进展。"
        await case_desk.reply(desk, uow, ref, wang, said)
    return {"ref": ref}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "certdesk.db"
        url = f"sqlite+aiosqlite:///{db}"
        asyncio.run(upgrade_async(url))
        data = Path(tmp) / "data"
        data.mkdir()
        with serving(url, data, seed) as (base, seeded), sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM)
            try:
                for loc, lang in (("zh-CN", "zh_CN"), ("en-GB", "en")):
                    size = {"width": 1280, "height": 900}
                    context = browser.new_context(
                        locale=loc, timezone_id="Asia/Shanghai", viewport=size
                    )
                    page = context.new_page()
                    page.goto(f"{base}/login")
                    page.locator("input[name=email]").fill("wang@desk.example.test")
                    page.locator("input[name=password]").fill(PASSWORD)
                    page.locator("form button[type=submit]").click()
                    page.wait_for_url(f"{base}/")
                    page.goto(f"{base}/lang?to={lang}&next=/cases/{seeded['ref']}")
                    page.wait_for_url(f"**/cases/{seeded['ref']}")
                    page.screenshot(path=DOCS / f"console-case-{lang}.png", full_page=True)
                    if lang == "zh_CN":
                        page.set_viewport_size({"width": 390, "height": 844})
                        page.goto(f"{base}/")
                        page.screenshot(path=DOCS / "console-today-phone.png", full_page=False)
                    context.close()
            finally:
                browser.close()


if __name__ == "__main__":
    main()
