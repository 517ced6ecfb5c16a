"""The `certdesk` command as a script author and a staff member use it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import load_settings
from bot.main.cli import main
from bot.main.desk import open_desk
from storage.db import NotMigrated

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


def test_deadlines_json_for_a_ggbz_complaint() -> None:
    done = run_cli(
        "deadlines",
        "--profile",
        "ggbz",
        "--kind",
        "complaint",
        "--received",
        "2026-09-15",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    rows = {row["rule"]: row for row in json.loads(done.stdout)}
    assert set(next(iter(rows.values()))) == {
        "rule",
        "due",
        "unit",
        "count",
        "clause",
        "provisional",
    }
    # domain.md §7: 30 working days after 2026-09-15 is 2026-11-02.
    assert rows["complaint.investigation"]["due"] == "2026-11-02"
    assert rows["complaint.investigation"]["unit"] == "working_days"
    assert rows["complaint.investigation"]["provisional"] is False


def test_deadlines_into_2027_are_marked_provisional(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "deadlines",
                "--kind",
                "appeal",
                "--received",
                "2026-12-20",
                "--decided",
                "2026-12-18",
                "--json",
            ]
        )
        == 0
    )
    rows = {row["rule"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["appeal.work_group"]["due"].startswith("2027-")
    assert rows["appeal.work_group"]["provisional"] is True
    assert rows["appeal.filing_window"]["due"] == "2027-03-18"


def test_quote_json_shape_and_bqc_fees(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["quote", "--profile", "bqc", "--headcount", "10", "--sites", "4", "--json"]) == 0
    quote = json.loads(capsys.readouterr().out)
    assert quote["initial_days"] == 2
    assert quote["sites_sampled"] == {"initial": 2, "surveillance": 2, "recertification": 2}
    assert quote["fees"]["initial"]["total"] == 1000 + 2000 + 2 * 3000
    assert main(["quote", "--profile", "ggbz", "--headcount", "10", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["fees"] is None


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["deadlines", "--kind", "appeal", "--received", "2026-02-30"], "2026-02-30"),
        (["deadlines", "--kind", "appeal", "--received", "yesterday"], "yesterday"),
        (["deadlines", "--kind", "lawsuit", "--received", "2026-02-01"], "lawsuit"),
        (["quote", "--headcount", "-5"], "-5"),
        (["quote", "--headcount", "many"], "many"),
        (["quote", "--profile", "nosuch", "--headcount", "5"], "nosuch"),
        (["quote", "--profile", "sgc", "--headcount", "5"], "sgc"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(args: list[str], needle: str) -> None:
    done = run_cli(*args)
    assert done.returncode == 2
    assert needle in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr


def test_own_profile_file_with_a_bad_unit_is_refused_naming_file_and_key(tmp_path: Path) -> None:
    own = tmp_path / "mybody.toml"
    text = (ROOT / "bot/profiles/ggbz.toml").read_text(encoding="utf-8")
    own.write_text(text.replace('unit = "working_days"', 'unit = "weeks"', 1), encoding="utf-8")
    done = run_cli(
        "deadlines", "--profile", str(own), "--kind", "complaint", "--received", "2026-09-15"
    )
    assert done.returncode == 2
    assert "mybody.toml" in done.stderr and ".unit" in done.stderr and "weeks" in done.stderr


def test_db_upgrade_then_the_desk_opens(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'fresh' / 'desk.db'}"
    done = run_cli("db", "upgrade", env={"DATABASE_URL": url})
    assert done.returncode == 0, done.stderr


async def test_unmigrated_database_is_refused_with_a_clear_message(
    unmigrated_database_url: str, tmp_path: Path
) -> None:
    settings = load_settings(database_url=unmigrated_database_url, data_dir=tmp_path)
    with pytest.raises(NotMigrated, match="certdesk db upgrade"):
        await open_desk(settings)


def test_profiles_command_lists_and_validates_all() -> None:
    done = run_cli("profiles")
    assert done.returncode == 0, done.stderr
    for name in ("ggbz", "bqc", "sgc"):
        assert name in done.stdout


# --- start-up errors, pipes, private files ------------------------------------------------------


def _closed_port() -> int:
    from tests.fixtures.mail import free_port

    return free_port()  # nothing listens there


BAD_SETTINGS = [
    ({"STAFF_USER_IDS": "111,abc"}, "STAFF_USER_IDS"),
    ({"STAFF_USER_IDS": "[111"}, "STAFF_USER_IDS"),
    ({"WARNING_LEAD_WORKING_DAYS": "soon"}, "WARNING_LEAD_WORKING_DAYS"),
    ({"DATABASE_URL": "postgresql+asyncpg://cd:pw-7q@127.0.0.1:{port}/cd"}, "DATABASE_URL"),
]
PROFILE_UNKNOWN = ({"PROFILE": "nonexist"}, "PROFILE")


@pytest.mark.parametrize(
    ("command", "env", "needle"),
    [
        # `run` as a service (SMTP set: not the local chat, which has a database of its own)
        *[
            (["run"], {"SMTP_HOST": "127.0.0.1", **e}, n)
            for e, n in [*BAD_SETTINGS, PROFILE_UNKNOWN]
        ],
        *[(["reminders", "plan"], e, n) for e, n in [*BAD_SETTINGS, PROFILE_UNKNOWN]],
        *[(["db", "upgrade"], e, n) for e, n in BAD_SETTINGS],  # it loads no profile
    ],
)
def test_start_up_errors_are_one_line_naming_what_to_fix(
    tmp_path: Path, command: list[str], env: dict[str, str], needle: str
) -> None:
    env = {k: v.format(port=_closed_port()) for k, v in env.items()}
    done = run_cli(*command, env={"DATA_DIR": str(tmp_path / "data"), **env})
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in done.stderr, lines
    assert "pw-7q" not in done.stderr


def test_an_unreachable_database_names_it_without_its_password(tmp_path: Path) -> None:
    url = f"postgresql+asyncpg://certdesk:pw-7q@127.0.0.1:{_closed_port()}/certdesk"
    for command in (["reminders", "plan"], ["db", "upgrade"], ["outbox", "status"]):
        done = run_cli(*command, env={"DATABASE_URL": url})
        assert done.returncode == 2, done.stderr
        line = done.stderr.strip()
        assert "\n" not in line and "cannot connect to the database" in line, done.stderr
        assert "certdesk:***@127.0.0.1" in line and "pw-7q" not in line


def test_an_unreachable_telegram_api_is_one_line(tmp_path: Path) -> None:
    data = {"DATA_DIR": str(tmp_path / "data")}
    assert run_cli("db", "upgrade", env=data).returncode == 0
    done = run_cli(
        "run",
        env={
            **data,
            "TELEGRAM_BOT_TOKEN": "123456:AAH3kq-ZpW0oQ9dVQx2Lr5yK7bT1uE8sN4c",
            "TELEGRAM_API_BASE_URL": f"http://127.0.0.1:{_closed_port()}/bot",
            "LOG_LEVEL": "ERROR",
        },
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach the Telegram Bot API" in lines[0], done.stderr
    assert "AAH3kq" not in done.stderr


def test_output_into_a_closed_pipe_ends_quietly() -> None:
    """`certdesk quote … | head`: the reader has gone before the first line is written."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "bot", "quote", "--headcount", "10", "--json"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert done.returncode == 0 and done.stderr == "", done.stderr


def test_the_sqlite_database_and_its_wal_are_private(tmp_path: Path) -> None:
    import asyncio
    import stat

    from sqlalchemy import text

    from storage.db import make_engine

    path = tmp_path / "private" / "desk.db"
    url = f"sqlite+aiosqlite:///{path}"
    done = subprocess.run(
        ["sh", "-c", f"umask 022 && {sys.executable} -m bot db upgrade"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": url},
        timeout=60,
    )
    assert done.returncode == 0, done.stderr

    async def write_and_look() -> dict[str, int]:
        engine = make_engine(url)
        try:
            async with engine.begin() as conn:  # WAL: -wal and -shm exist while connected
                await conn.execute(text("CREATE TABLE IF NOT EXISTS probe (x TEXT)"))
                await conn.execute(text("INSERT INTO probe VALUES ('x')"))
                return {
                    p.name: stat.S_IMODE(p.stat().st_mode)
                    for p in path.parent.iterdir()
                    if p.name.startswith("desk.db")
                }
        finally:
            await engine.dispose()

    modes = asyncio.run(write_and_look())
    assert set(modes) == {"desk.db", "desk.db-wal", "desk.db-shm"}, modes
    assert all(mode == 0o600 for mode in modes.values()), {k: oct(v) for k, v in modes.items()}


async def test_sql_parameters_never_appear_in_errors(tmp_path: Path) -> None:
    from sqlalchemy import text
    from sqlalchemy.exc import IntegrityError

    from storage.db import make_engine

    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'p.db'}")
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE people (email TEXT UNIQUE)"))
            await conn.execute(text("INSERT INTO people VALUES (:e)"), {"e": "lisi@example.cn"})
        with pytest.raises(IntegrityError) as err:
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO people VALUES (:e)"), {"e": "lisi@example.cn"})
        assert "lisi@example.cn" not in str(err.value)
    finally:
        await engine.dispose()
