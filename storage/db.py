"""Engines, sessions and migrations.

SQLite (aiosqlite) is the embedded default, PostgreSQL (asyncpg) the engine for real
deployments. Everything here that names a database prints its URL without the password.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import stat
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import wal_checkpoint

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


class NotMigrated(RuntimeError):
    """The database schema is missing or older (or newer) than this code expects."""


class DatabaseUnavailable(RuntimeError):
    """The database cannot be reached (server down, wrong host, refused login, unwritable file)."""


# The database holds personal data: its files are for their owner only.
PRIVATE = 0o600


def safe_url(url: str | URL | AsyncEngine) -> str:
    """The URL as it may appear in a log or a message: never with its password."""
    if isinstance(url, AsyncEngine):
        url = url.url
    return make_url(url).render_as_string(hide_password=True)


# Pages kept in memory per connection, in KiB (negative: SQLite's unit). The default 2 MB
# spills a chunk of letters (their raw bytes) to the WAL mid-transaction, and re-reads index
# pages of a large desk on every batch. Filled only as pages are read: a small desk uses little;
# the pool's 15 connections could hold ~480 MB on a very large one.
SQLITE_CACHE_KIB = -32_768


def _json_dumps(value: Any) -> str:
    # Readable Chinese in the database (and in psql) instead of \\uXXXX escapes.
    return json.dumps(value, ensure_ascii=False)


def make_engine(url: str | URL, **kwargs: Any) -> AsyncEngine:
    """An async engine for `sqlite+aiosqlite://…` or `postgresql+asyncpg://…`."""
    u = make_url(url)
    kwargs.setdefault("json_serializer", _json_dumps)
    # SQL parameters (names, e-mail addresses, complaint texts) never in an error or a log line.
    kwargs.setdefault("hide_parameters", True)
    if u.get_backend_name() == "sqlite":
        # Wait for a writer rather than fail at once with "database is locked".
        kwargs.setdefault("connect_args", {"timeout": 30})
        engine = create_async_engine(u, **kwargs)
        path = _sqlite_path(u)
        if path is not None:  # a file: its WAL checkpointed off the commits
            wal_checkpoint.attach(engine, path)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # WAL: readers do not block the writer. foreign_keys is off by default in SQLite.
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")  # safe with WAL, far fewer fsyncs
            cursor.execute(f"PRAGMA cache_size={SQLITE_CACHE_KIB}")
            cursor.close()
            if path is not None:
                make_private(path)

        return engine
    # asyncpg: a modest pool, and connections checked before use after a server restart.
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 10)
    kwargs.setdefault("pool_pre_ping", True)
    return create_async_engine(u, **kwargs)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions whose objects stay readable after commit (no implicit reload in async code)."""
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


def alembic_config(url: str | URL | None = None) -> Config:
    """An Alembic configuration that works from a source tree and when installed.

    The URL travels in `attributes`, not in the ini options, so a `%` in a password is
    not taken for interpolation and the URL is never written anywhere.
    """
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    if url is not None:
        cfg.attributes["url"] = make_url(url)
    return cfg


def _sqlite_path(url: URL) -> Path | None:
    db = url.database
    if url.get_backend_name() != "sqlite" or not db or db == ":memory:" or db.startswith("file:"):
        return None
    return Path(db)


def make_private(path: Path) -> None:
    """The SQLite file and its -wal/-shm companions readable by their owner only (SQLite gives
    the companions the main file's mode; an existing database made before this is tightened)."""
    for file in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        with contextlib.suppress(FileNotFoundError, PermissionError):
            if stat.S_IMODE(file.stat().st_mode) & 0o077:
                file.chmod(PRIVATE)


def create_private(path: Path) -> None:
    """Create an empty SQLite file with mode 0600 (an empty file is an empty database), so it is
    never world-readable, not even for an instant."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE))


def upgrade(url: str | URL, revision: str = "head") -> None:
    """Bring the database at `url` to `revision`; blocking (for `certdesk db upgrade`)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(upgrade_async(url, revision))
        return
    raise RuntimeError("upgrade() blocks: in async code use `await upgrade_async(url)`")


async def upgrade_async(url: str | URL, revision: str = "head") -> None:
    """Bring the database at `url` to `revision` (from async code: app start-up, tests)."""
    u = make_url(url)
    path = _sqlite_path(u)
    if path is not None:
        create_private(path)
    cfg = alembic_config(u)
    engine = make_engine(u)
    try:
        await current_revisions(engine)  # an unreachable database: DatabaseUnavailable, one line
        async with engine.begin() as conn:
            await conn.run_sync(_run_upgrade, cfg, revision)
    finally:
        await engine.dispose()


def _run_upgrade(conn: Connection, cfg: Config, revision: str) -> None:
    if conn.dialect.name == "sqlite":
        # Batch migrations copy and drop tables; with FK enforcement on, the drop would fail.
        conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
    cfg.attributes["connection"] = conn  # env.py runs on this connection
    command.upgrade(cfg, revision)


def head_revisions() -> set[str]:
    return set(ScriptDirectory.from_config(alembic_config()).get_heads())


async def current_revisions(engine: AsyncEngine) -> set[str]:
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(
                lambda c: set(MigrationContext.configure(c).get_current_heads())
            )
    except (TimeoutError, OSError, DBAPIError) as exc:
        full = _full_disk(engine.url, _reason(exc))
        if full is not None:
            raise DatabaseUnavailable(full) from None
        raise DatabaseUnavailable(
            f"cannot connect to the database at {safe_url(engine)} ({_reason(exc)}): "
            "check DATABASE_URL and that the database server is running"
        ) from None


def _full_disk(url: URL, reason: str) -> str | None:
    """What to say when an SQLite database fails because its disk is full (SQLite reports a
    full disk at start-up as a "disk I/O error" as often as "database or disk is full")."""
    path = _sqlite_path(url)
    if path is None:
        return None
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        return None
    if free >= 1024 * 1024 and "full" not in reason:
        return None
    return (
        f"the disk holding the database {path} is full ({free // 1024} KB free; {reason}): "
        "free some space, then run again — nothing was lost"
    )


def _reason(exc: BaseException) -> str:
    """The driver's own words, on one line and without SQL."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).splitlines()[0] if str(orig) else type(orig).__name__
    return text[:200]


async def check_migrated(engine: AsyncEngine) -> None:
    """Refuse to run against a database whose schema is not at this code's head."""
    where = safe_url(engine)
    hint = "run `certdesk db upgrade`"
    path = _sqlite_path(engine.url)
    if path is not None and not path.exists():
        # Do not let a connection create an empty file as a side effect of the check.
        raise NotMigrated(f"database at {where} is not migrated: {hint}")
    current = await current_revisions(engine)
    heads = head_revisions()
    if not current:
        raise NotMigrated(f"database at {where} is not migrated: {hint}")
    if current != heads:
        script = ScriptDirectory.from_config(alembic_config())
        known = {r.revision for r in script.walk_revisions()}
        if not current <= known:
            raise NotMigrated(
                f"database at {where} is at revision {', '.join(sorted(current))}, "
                "unknown to this version of certdesk: upgrade certdesk"
            )
        raise NotMigrated(
            f"database at {where} is at revision {', '.join(sorted(current))}, "
            f"not {', '.join(sorted(heads))}: {hint}"
        )
