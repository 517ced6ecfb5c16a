"""`certdesk outbox send --once` and `certdesk outbox retry ID|--failed` on a real SMTP sink."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from bot.clock import Clock
from bot.main.cli import main
from bot.outbox.messages import Letter, enqueue
from storage.db import session_factory
from storage.models import OutboxMessage
from tests.fixtures.mail import SmtpSink


@pytest.fixture
def env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str, smtp_server: SmtpSink
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here
    for name, value in {
        "DATABASE_URL": database_url,
        "SMTP_HOST": smtp_server.host,
        "SMTP_PORT": str(smtp_server.port),
        "SMTP_SECURITY": "none",
        "MAIL_DOMAIN": "desk.example.test",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN", raising=False)


async def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = await asyncio.to_thread(main, list(args))
    return code, capsys.readouterr().out


async def _status(engine: AsyncEngine) -> dict[str, str]:
    async with session_factory(engine)() as s:
        return {r.recipient: r.status for r in (await s.exec(select(OutboxMessage))).all()}


async def test_send_once_sends_what_is_due_and_retry_puts_failures_back(
    env: None, engine: AsyncEngine, smtp_server: SmtpSink, capsys: pytest.CaptureFixture[str]
) -> None:
    now = Clock().now()  # the command runs on the real clock
    async with session_factory(engine)() as s, s.begin():
        for i in range(3):
            letter = Letter(to=f"c{i}@example.cn", subject=f"回执 {i}", text="已收到")
            await enqueue(s, letter, key=f"k{i}", now=now)
    smtp_server.fail_with(550, at="rcpt")  # the first recipient refused for good
    code, out = await _cli(capsys, "outbox", "send", "--once", "--json")
    assert code == 0
    done = json.loads(out)
    assert done["sent"] == 2 and done["failed"] == 1
    status = await _status(engine)
    assert status["c0@example.cn"] == "failed"
    assert [m.rcpt_tos for m in smtp_server.received] == [["c1@example.cn"], ["c2@example.cn"]]

    async with session_factory(engine)() as s:
        failed = (await s.exec(select(OutboxMessage).where(OutboxMessage.status == "failed"))).one()
    code, out = await _cli(capsys, "outbox", "retry", str(failed.id))
    assert code == 0 and f"[{failed.id}]" in out
    assert (await _status(engine))["c0@example.cn"] == "queued"
    code, out = await _cli(capsys, "outbox", "send", "--once")
    assert code == 0 and out.startswith("sent 1,")
    assert (await _status(engine))["c0@example.cn"] == "sent"

    # --failed: every failed message back at once; with none left it says so.
    smtp_server.fail_with(550, n=2, at="rcpt")
    async with session_factory(engine)() as s, s.begin():
        for i in (3, 4):
            await enqueue(
                s, Letter(to=f"c{i}@example.cn", subject="s", text="t"), key=f"k{i}", now=now
            )
    assert json.loads((await _cli(capsys, "outbox", "send", "--once", "--json"))[1])["failed"] == 2
    code, out = await _cli(capsys, "outbox", "retry", "--failed")
    assert code == 0 and out.startswith("2 failed messages queued again")
    assert json.loads((await _cli(capsys, "outbox", "send", "--once", "--json"))[1])["sent"] == 2
    code, out = await _cli(capsys, "outbox", "retry", "--failed")
    assert code == 0 and out.startswith("0 failed messages")
    # Nothing due: the command exits at once, having sent nothing.
    assert json.loads((await _cli(capsys, "outbox", "send", "--once", "--json"))[1])["sent"] == 0
