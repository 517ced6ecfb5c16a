"""Regenerate migrations/versions/0001_initial.py from the models (`make migration-initial`).

Only while nothing is deployed: the initial migration is rewritten, not appended to.
It autogenerates against a throwaway SQLite database, so the result uses batch operations
(needed on SQLite, plain ALTERs on PostgreSQL) and plain `sa.*` types (see env.render_item).
The later revisions (0002_…) stay as they are: set aside while 0001 is written, and the tables
they create left out of it (env.include_object), so nothing is created twice.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import tempfile
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection

from storage.db import MIGRATIONS_DIR, alembic_config, make_engine

INITIAL = MIGRATIONS_DIR / "versions" / "0001_initial.py"
# Tables whose rows may be inserted but never changed or deleted (triggers, see the template).
APPEND_ONLY = ["case_event"]
_CREATES = re.compile(r"op\.create_table\(\s*[\"']([a-z_0-9]+)[\"']")


def later_revisions() -> list[Path]:
    return sorted(p for p in INITIAL.parent.glob("*.py") if p.name != INITIAL.name)


def later_tables(files: list[Path]) -> set[str]:
    """The tables the later revisions create: theirs, not the initial one's."""
    return {name for f in files for name in _CREATES.findall(f.read_text(encoding="utf-8"))}


def _config(url: str) -> Config:
    cfg = alembic_config(url)
    # Format the generated file so it passes `ruff check` and `ruff format --check`.
    cfg.set_section_option("post_write_hooks", "hooks", "ruff_format, ruff_fix")
    cfg.set_section_option("post_write_hooks", "ruff_fix.type", "module")
    cfg.set_section_option("post_write_hooks", "ruff_fix.module", "ruff")
    cfg.set_section_option(
        "post_write_hooks", "ruff_fix.options", "check --fix --quiet REVISION_SCRIPT_FILENAME"
    )
    cfg.set_section_option("post_write_hooks", "ruff_format.type", "module")
    cfg.set_section_option("post_write_hooks", "ruff_format.module", "ruff")
    cfg.set_section_option(
        "post_write_hooks", "ruff_format.options", "format --quiet REVISION_SCRIPT_FILENAME"
    )
    return cfg


def _revision(conn: Connection, cfg: Config) -> None:
    cfg.attributes["connection"] = conn
    cfg.attributes["template_args"] = {"append_only": APPEND_ONLY}
    command.revision(cfg, message="initial", autogenerate=True, rev_id="0001")


async def _regenerate(url: str, excluded: set[str]) -> None:
    cfg = _config(url)
    cfg.attributes["exclude_tables"] = excluded
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_revision, cfg)
    finally:
        await engine.dispose()


def main() -> None:
    old = INITIAL.read_text(encoding="utf-8") if INITIAL.exists() else None
    later = later_revisions()
    excluded = later_tables(later)
    with tempfile.TemporaryDirectory() as tmp:
        aside = Path(tmp) / "later"
        aside.mkdir()
        for f in later:  # 0002 revises 0001: alembic refuses a chain missing its base
            shutil.move(f, aside / f.name)
        INITIAL.unlink(missing_ok=True)
        try:
            asyncio.run(_regenerate(f"sqlite+aiosqlite:///{Path(tmp) / 'regen.db'}", excluded))
        except BaseException:
            if old is not None:  # leave the tree as it was
                INITIAL.write_text(old, encoding="utf-8")
            raise
        finally:
            for f in later:
                shutil.move(aside / f.name, f)
    print(f"wrote {INITIAL}")


if __name__ == "__main__":
    main()
