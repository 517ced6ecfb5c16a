"""`certdesk staff add|list|disable` and `certdesk console`, run as an operator runs them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.main.console_cmd import start_console
from bot.services import staff
from storage.unit_of_work import UnitOfWork
from tests.integration.console_kit import CHEAP, SECRET, add_staff, console_settings, make_desk

ROOT = Path(__file__).resolve().parents[2]


def _env(database_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    cheap = {k.upper(): str(v) for k, v in CHEAP.items()}
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "DATA_DIR": str(data_dir),
        **cheap,
        **extra,
    }


def _cli(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
    )


def test_staff_add_list_disable(database_url: str, data_dir: Path) -> None:
    env = _env(database_url, data_dir)
    added = _cli(
        env,
        *("staff", "add", "--name", "王芳", "--email", "Wang@Desk.Example.test"),
        *("--telegram-id", "901", "--role", "admin", "--password-stdin"),
        stdin="a long enough password\n",
    )
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == "added wang@desk.example.test (admin)"
    again = _cli(
        env,
        *("staff", "add", "--name", "X", "--email", "wang@desk.example.test", "--password-stdin"),
        stdin="a long enough password\n",
    )
    assert again.returncode == 2
    assert (
        again.stderr.strip()
        == "certdesk: wang@desk.example.test is already in the staff directory."
    )
    short = _cli(
        env,
        *("staff", "add", "--name", "Y", "--email", "y@desk.example.test", "--password-stdin"),
        stdin="short\n",
    )
    assert short.returncode == 2 and "10 characters" in short.stderr
    no_stdin = _cli(env, "staff", "add", "--name", "Z", "--email", "z@desk.example.test")
    assert no_stdin.returncode == 2 and "--password-stdin" in no_stdin.stderr

    listed = _cli(env, "staff", "list", "--json")
    assert json.loads(listed.stdout) == [
        {
            "name": "王芳",
            "email": "wang@desk.example.test",
            "telegram_id": 901,
            "role": "admin",
            "disabled": False,
        }
    ]
    assert "password" not in listed.stdout and "argon2" not in listed.stdout
    off = _cli(env, "staff", "disable", "wang@desk.example.test")
    assert off.returncode == 0 and off.stdout.strip() == "wang@desk.example.test disabled"
    text = _cli(env, "staff", "list").stdout
    assert "(disabled)" in text and "901" in text
    unknown = _cli(env, "staff", "disable", "nobody@desk.example.test")
    assert unknown.returncode == 2 and "not in the staff directory" in unknown.stderr


def test_console_needs_its_secret_key_and_serves_healthz(database_url: str, data_dir: Path) -> None:
    refused = _cli(_env(database_url, data_dir), "console")
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        "certdesk: CONSOLE_SECRET_KEY must be set, 32 characters or more"
    )
    with socket.socket() as probe:  # a free port to give CONSOLE_PORT
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = _env(database_url, data_dir, CONSOLE_SECRET_KEY=SECRET, CONSOLE_PORT=str(port))
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "console"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == f"console on http://127.0.0.1:{port}/"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=30) as answer:
            assert answer.status == 200 and answer.read() == b"ok"
            assert "default-src 'none'" in answer.headers["Content-Security-Policy"]
        taken = _cli(env, "console")
        assert taken.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in taken.stderr
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


async def test_start_console_serves_beside_the_bot_and_maps_telegram_staff(
    engine: AsyncEngine, database_url: str, data_dir: Path
) -> None:
    assert start_console(make_desk(engine, console_settings(database_url, data_dir))) is None
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    desk = make_desk(engine, console_settings(database_url, data_dir, console_port=port))
    await add_staff(desk, "王芳", "wang@desk.example.test", "admin", telegram_user_id=901)
    task = start_console(desk)
    assert task is not None
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            assert (await client.get("/healthz")).text == "ok"
            assert (await client.get("/")).status_code == 303
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    async with UnitOfWork(desk.sessions) as uow:
        assert await staff.telegram_identities(uow, 901) == [
            "王芳",
            "wang@desk.example.test",
            "wang",
            "901",
        ]
        assert await staff.telegram_identities(uow, 902) is None
