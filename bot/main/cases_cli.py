"""The operators' subcommands of case histories: `cases verify` and `cases heads`."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from bot.config import load_settings
from bot.main.cli_common import CliError, _print_json

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
    from sqlmodel.ext.asyncio.session import AsyncSession


def _history_sessions(settings: Any) -> tuple[AsyncEngine, async_sessionmaker[AsyncSession]]:
    """An engine and sessions that carry the existing history key (never a new one: one made
    now would only say that nothing verifies)."""
    from storage import history_key
    from storage.db import make_engine, session_factory

    try:
        key = history_key.load_history_key(settings, create=False)
    except history_key.HistoryKeyError as exc:
        raise CliError(str(exc)) from None
    engine = make_engine(settings.effective_database_url)
    sessions = session_factory(engine)
    history_key.bind(sessions, key)
    return engine, sessions


def _read_export(path: str) -> Any:
    import json
    from pathlib import Path

    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise CliError(f"{path} is not an export of heads: {exc}") from None


async def cmd_cases_verify(args: argparse.Namespace) -> int:
    from bot.domain.refs import normalise_ref
    from bot.services.cases.verify import BadExport, count_cases, verify
    from storage.db import NotMigrated, check_migrated
    from storage.unit_of_work import UnitOfWork

    ref = None
    if args.ref is not None:
        ref = normalise_ref(args.ref)
        if ref is None:
            raise CliError(f"{args.ref!r} is not a case reference like TS-2026-7K3F9Q")
    export = _read_export(args.heads) if getattr(args, "heads", None) else None
    engine, sessions = _history_sessions(load_settings())
    try:
        await check_migrated(engine)
        async with UnitOfWork(sessions) as uow:
            problems = await verify(uow, ref, export)
            checked = 1 if ref else await count_cases(uow)
    except (NotMigrated, LookupError, BadExport) as exc:
        raise CliError(str(exc).strip("'\"")) from None
    finally:
        await engine.dispose()
    broken = len({p.ref for p in problems})
    if getattr(args, "json", False):
        _print_json(
            {"checked": checked, "broken": broken, "problems": [p.to_dict() for p in problems]}
        )
    else:
        for problem in problems:
            print(f"✗ {problem}")
        print(f"{checked} cases checked, {broken} with a broken history")
    return 1 if problems else 0


async def cmd_cases_heads(args: argparse.Namespace) -> int:
    import json
    import os
    from pathlib import Path

    from bot.clock import Clock
    from bot.services.cases.verify import export_heads
    from storage.db import NotMigrated, check_migrated
    from storage.unit_of_work import UnitOfWork

    engine, sessions = _history_sessions(load_settings())
    try:
        await check_migrated(engine)
        async with UnitOfWork(sessions) as uow:
            export = await export_heads(uow, Clock().now())
    except NotMigrated as exc:
        raise CliError(str(exc)) from None
    finally:
        await engine.dispose()
    text = json.dumps(export, ensure_ascii=False, indent=2) + "\n"
    if args.out is None:
        sys.stdout.write(text)
        return 0
    out = Path(args.out)
    tmp = out.with_name(f".{out.name}.tmp")
    try:  # whole or not at all: a cron job overwriting yesterday's must not leave half a file
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, out)
    except OSError as exc:
        raise CliError(f"cannot write {args.out}: {exc.strerror or exc}") from None
    print(f"{len(export['heads'])} heads written to {out}", file=sys.stderr)
    return 0
