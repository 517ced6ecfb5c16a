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
