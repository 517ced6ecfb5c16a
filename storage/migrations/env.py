"""Alembic environment, async-aware.

Runs on a connection handed over by `storage.db.upgrade` (config.attributes["connection"]),
or, from the alembic command line, opens its own async engine for the URL in
config.attributes["url"], the ini option `sqlalchemy.url` or $DATABASE_URL.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import Connection
from sqlalchemy.engine import make_url
from sqlmodel import SQLModel
from sqlmodel.sql.sqltypes import AutoString

import storage.models  # noqa: F401  (registers the tables)
from storage.db import make_engine
from storage.models import UTCDateTime

config = context.config
target_metadata = SQLModel.metadata


def render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | bool:
    """Render our column types as plain SQLAlchemy ones, so migrations import nothing of ours."""
    if type_ == "type":
        if isinstance(obj, AutoString):
            return f"sa.String(length={obj.length})" if obj.length else "sa.String()"
        if isinstance(obj, UTCDateTime):
            return "sa.DateTime(timezone=True)"
    return False


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Everything, but the tables left to later revisions while regen_initial writes 0001."""
    excluded = config.attributes.get("exclude_tables") or ()
    table = obj if type_ == "table" else getattr(obj, "table", None)
    return getattr(table, "name", name) not in excluded


def _options(dialect_name: str) -> dict[str, Any]:
    return {
        "target_metadata": target_metadata,
        # SQLite cannot ALTER most things: batch mode recreates the table; elsewhere a no-op.
        "render_as_batch": dialect_name == "sqlite",
        "compare_type": True,
        "render_item": render_item,
        "include_object": include_object,
        # Extra template variables for a new revision (regen_initial: the append-only tables).
        "template_args": config.attributes.get("template_args", {}),
    }


def _url() -> Any:
    url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
    url = url or os.environ.get("DATABASE_URL")
    if not url:
        raise SystemExit("no database URL: set DATABASE_URL or use `certdesk db upgrade`")
    return url


def run_migrations_offline() -> None:
    url = make_url(_url())
    context.configure(url=url, literal_binds=True, **_options(url.get_backend_name()))
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    context.configure(connection=connection, **_options(connection.dialect.name))
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations() -> None:
    engine = make_engine(_url())
    try:
        async with engine.begin() as conn:
            await conn.run_sync(do_run_migrations)
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        asyncio.run(run_async_migrations())
    else:
        do_run_migrations(connection)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
