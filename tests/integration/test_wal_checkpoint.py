"""SQLite's WAL is copied back into the database file by the engine's own thread after commits,
not by the commit that crosses SQLite's default 1,000 pages (which would make its caller wait)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import sqlalchemy as sa

from storage import wal_checkpoint
from storage.db import make_engine

ROWS = 2_000
ROW_BYTES = 4_000  # ~8 MB: past SQLite's own 1,000-page threshold, below the backstop


async def test_a_large_commit_is_checkpointed_in_the_background(tmp_path: Path) -> None:
    path = tmp_path / "desk.db"
    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    try:
        async with engine.begin() as conn:
            pages = (await conn.exec_driver_sql("PRAGMA wal_autocheckpoint")).scalar_one()
            assert pages == wal_checkpoint.BACKSTOP_PAGES
            await conn.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB)")
        before = path.stat().st_size
        async with engine.begin() as conn:
            await conn.execute(
                sa.text("INSERT INTO t (body) VALUES (:body)"),
                [{"body": bytes([n % 251]) * ROW_BYTES} for n in range(ROWS)],
            )
        # The commit left the pages in the WAL; the thread copies them into the file.
        deadline = time.monotonic() + 10
        while path.stat().st_size < before + ROWS * ROW_BYTES and time.monotonic() < deadline:
            time.sleep(0.01)  # the checkpointer runs in its own thread: poll the file
        assert path.stat().st_size >= before + ROWS * ROW_BYTES
        async with engine.connect() as conn:
            count = (await conn.exec_driver_sql("SELECT count(*) FROM t")).scalar_one()
        assert count == ROWS
    finally:
        await engine.dispose()


async def test_once_disposed_of_the_file_alone_holds_everything(tmp_path: Path) -> None:
    # The test fixtures (and a backup by `cp`) copy a disposed engine's file without its WAL:
    # the checkpointer's own connection must be closed by then, so the last close folds it in.
    path = tmp_path / "desk.db"
    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    async with engine.begin() as conn:
        await conn.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    async with engine.begin() as conn:
        await conn.exec_driver_sql("INSERT INTO t DEFAULT VALUES")
    await engine.dispose()
    copy = tmp_path / "copy.db"
    shutil.copyfile(path, copy)
    other = make_engine(f"sqlite+aiosqlite:///{copy}")
    try:
        async with other.connect() as conn:
            assert (await conn.exec_driver_sql("SELECT count(*) FROM t")).scalar_one() == 1
    finally:
        await other.dispose()
