"""The local mode (`certdesk chat`, `certdesk run` without a token), the CLI certificate import,
the guard (flood, redelivered updates) and /cancel in the middle of a flow."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.config import load_settings
from bot.desk import Desk
from bot.emulator import Emulator
from bot.main.cli import main
from bot.main.runner import local_chat, local_mode_line
from storage.db import session_factory
from storage.persistence import UpdateLog, record_update
from tests.fixtures.telegram_app import expect, make_desk, running, start_zh

CSV = (
    "number,holder,standard,decided_on,expires_on,status,suspended_until\n"
    "L-1,本地公司,GB/T 39604-2020,2025-01-10,2028-01-09,valid,\n"
    "L-2,,GB/T 39604-2020,2025-01-10,2028-01-09,valid,\n"
)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_certificates_import_command_reports_bad_rows_by_line(
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    path = tmp_path / "certs.csv"
    path.write_text(CSV, encoding="utf-8")
    assert main(["certificates", "import", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out.strip() == "1 imported, 0 updated, 1 bad rows"
    assert err.strip() == f"{path}: line 3: holder is empty"
    assert main(["certificates", "import", str(path)]) == 1
    assert capsys.readouterr().out.strip() == "0 imported, 1 updated, 1 bad rows"
    assert main(["certificates", "import", str(tmp_path / "missing.csv")]) == 2
    assert "no such file" in capsys.readouterr().err


async def test_local_chat_runs_the_full_bot_in_a_terminal(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "data", database_url="")
    script = "/start\n1\n1\n本地测试公司\n1\n/quit\n"
    out = io.StringIO()
    assert await local_chat(settings, stdin=io.StringIO(script), stdout=out) == 0
    text = out.getvalue()
    assert "请选择语言" in text and "[1] 简体中文  [2] English" in text
    assert "已设置为简体中文" in text and "[1] 申请资格自评" in text
    assert "第 1/13 题" in text and "第 2/13 题" in text
    assert (tmp_path / "data" / "local" / "certdesk.db").exists()  # its own, not the real one
    assert "TELEGRAM_BOT_TOKEN" in local_mode_line() and "本地模式" in local_mode_line()


async def test_typed_numbers_answer_a_question_without_buttons(tmp_path: Path) -> None:
    """A person types "120" for the headcount: it is text, not a press of menu choice 120."""
    settings = load_settings(data_dir=tmp_path / "data", database_url="")
    script = "/start\n1\n2\n120\n1\n/quit\n"
    out = io.StringIO()
    assert await local_chat(settings, stdin=io.StringIO(script), stdout=out) == 0
    text = out.getvalue()
    assert "有效人数 120" in text and "7 人日" in text, text[-800:]


async def test_a_typed_count_beside_a_button_is_text(tmp_path: Path) -> None:
    """ "10" sites typed while the sites question shows its one button ("1") is a count, not a
    press of button 10; a phone number likewise."""
    settings = load_settings(data_dir=tmp_path / "data", database_url="")
    script = "/start\n1\n2\n120\n10\n/quit\n"
    out = io.StringIO()
    assert await local_chat(settings, stdin=io.StringIO(script), stdout=out) == 0
    text = out.getvalue()
    assert "相似场所 10 个" in text and "! choose" not in text, text[-800:]


async def test_cancel_ends_a_flow_and_flood_is_refused(
    database_url: str, data_dir: Path, emulator: Emulator
) -> None:
    desk: Desk = await make_desk(database_url, data_dir, flood_max_updates=12)
    try:
        user = emulator.user(80, "陈")
        async with running(desk, emulator):
            await start_zh(user)  # 2 updates
            await user.send("/quote")
            await expect(user, "有效人数")
            await user.send("/cancel")
            await expect(user, "已取消")
            await user.send("120")  # not a headcount any more
            await expect(user, "没有理解")
            for _ in range(9):  # the 13th and 14th updates are over the limit
                await user.send("/help")
            await expect(user, "发送得太快了")
            assert sum("发送得太快了" in r.text for r in user.replies) == 1
    finally:
        await desk.close()


async def test_a_redelivered_update_is_recognised(engine: AsyncEngine) -> None:
    now = datetime(2026, 11, 20, tzinfo=UTC)
    async with session_factory(engine)() as session, session.begin():
        assert await record_update(session, 7001, now) is True
    async with session_factory(engine)() as session, session.begin():
        assert await record_update(session, 7001, now) is False


async def test_update_log_looks_up_only_ids_it_cannot_rule_out(engine: AsyncEngine) -> None:
    now = datetime(2026, 11, 20, tzinfo=UTC)
    sessions = session_factory(engine)
    async with sessions() as session, session.begin():
        await record_update(session, 7001, now)
        await record_update(session, 40, now)
    handled = UpdateLog()  # a new process: reads the highest id once
    async with sessions() as session:
        assert await handled.seen(session, 7001) is True
        assert await handled.seen(session, 40) is True  # below the highest: looked up
        assert await handled.seen(session, 41) is False
        assert await handled.seen(session, 7002) is False  # above it: new without a lookup
    handled.recorded(7002)
    async with sessions() as session:
        assert await handled.seen(session, 7002) is False  # in memory only, not in the table
        assert await record_update(session, 7002, now) is True


async def test_an_update_delivered_twice_is_answered_and_saved_once(
    database_url: str, data_dir: Path
) -> None:
    """Telegram may deliver an update again (a webhook retry, a crash before the offset was
    confirmed): the answer, its update id and the reply go together, and the second delivery,
    in this process or after a restart, changes nothing and says nothing."""
    from sqlmodel import select
    from telegram import Update

    from storage.models import Organisation, TelegramUpdate

    first = await make_desk(database_url, data_dir)
    async with Emulator() as emulator:
        user = emulator.user(95, "重")
        async with running(first, emulator) as app:
            await start_zh(user)
            await user.press("申请资格自评")
            await expect(user, "全称")
            await user.send("重复投递有限公司")
            q1 = await expect(user, "1/13")
            pressed = await user.press("是", message_id=q1.message_id)
            await expect(user, "2/13")
            shown = len(user.replies)
            await app.process_update(Update.de_json(pressed, app.bot))
            assert len(user.replies) == shown
        async with first.sessions() as session:
            org = (await session.exec(select(Organisation))).one()
            recorded = await session.get(TelegramUpdate, pressed["update_id"])
        await first.close()
        assert recorded is not None
        answers = org.eligibility_answers
        assert answers is not None and list(answers.values()).count(True) == 1

        second = await make_desk(database_url, data_dir)  # a new process, same database
        try:
            async with running(second, emulator) as app:
                await app.process_update(Update.de_json(pressed, app.bot))
                assert len(user.replies) == shown
                q2 = user.replies[-1]
                await user.press("是", message_id=q2.message_id)
                await expect(user, "3/13")
            async with second.sessions() as session:
                org = (await session.exec(select(Organisation))).one()
            assert list((org.eligibility_answers or {}).values()).count(True) == 2
        finally:
            await second.close()


async def test_webhook_refuses_requests_without_the_secret(
    database_url: str, data_dir: Path, emulator: Emulator, unused_tcp_port: int
) -> None:
    import aiohttp

    from bot.emulator import bot_builder
    from bot.main.app import build_application
    from bot.main.runner import start_updates

    desk = await make_desk(
        database_url,
        data_dir,
        webhook_url="https://bot.example.test/tg-hook",
        webhook_secret="s3cret-token",
        webhook_listen="127.0.0.1",
        webhook_port=unused_tcp_port,
    )
    user = emulator.user(90, "Web", language_code="en")
    app = build_application(desk, bot_builder(emulator))
    update = {
        "update_id": 5001,
        "message": {
            "message_id": 1,
            "date": 1763604000,
            "chat": user.chat,
            "from": user.user,
            "text": "/help",
            "entities": [{"type": "bot_command", "offset": 0, "length": 5}],
        },
    }
    url = f"http://127.0.0.1:{unused_tcp_port}/tg-hook"
    try:
        async with app:
            await app.start()
            await start_updates(app, desk.settings)
            assert emulator.webhook_url == "https://bot.example.test/tg-hook"
            assert emulator.calls("setWebhook")[-1].params["secret_token"] == "s3cret-token"
            async with aiohttp.ClientSession() as http:
                async with http.post(url, json=update) as response:
                    assert response.status == 403
                headers = {"X-Telegram-Bot-Api-Secret-Token": "s3cret-token"}
                async with http.post(url, json=update, headers=headers) as response:
                    assert response.status == 200
            await expect(user, "I can help you with")
            assert app.updater is not None
            await app.updater.stop()
            await app.stop()
    finally:
        await desk.close()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_run_with_a_token_serves_with_outbox_and_scheduler(
    database_url: str, data_dir: Path, emulator: Emulator
) -> None:
    """`certdesk run` wiring: polling, commands in both languages, and the scheduler's outbox
    worker delivering the staff alert of a new application."""
    import asyncio

    from bot.main.runner import serve

    settings = load_settings(
        database_url=database_url,
        data_dir=data_dir,
        telegram_bot_token="123:ABC",
        telegram_api_base_url=emulator.base_url,
        telegram_file_base_url=emulator.base_file_url,
        staff_chat_id=-77,
    )
    staff = emulator.user(5, "Mei", chat_type="group", chat_id=-77)
    user = emulator.user(42, "Ann", language_code="en")
    stop = asyncio.Event()
    task = asyncio.create_task(serve(settings, stop))
    try:
        await user.send("/start")
        await expect(user, "Hello, Ann", timeout=10)
        await user.press("English")
        await expect(user, "What would you like to do?")
        await user.send("/documents")
        await expect(user, "full name")
        await user.send("Acme")
        await expect(user, "Start the application")
        await user.press("📝 Start the application")
        await expect(user, "application has been opened")
        await expect(staff, "新申请", "Acme", timeout=10)  # sent by the outbox worker
        assert {lang for _, lang in emulator.commands} == {"", "zh", "en"}
    finally:
        stop.set()
        assert await task == 0
