"""`certdesk email log`: every letter the intake has seen and what became of it."""

from __future__ import annotations

import argparse
from pathlib import Path

from bot.config import Settings, load_settings
from bot.main.cli_common import CliError, _print_json


async def cmd_email_log(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from bot.main.desk import open_desk
    from bot.services.inbound_mail import db_reason, letter_log
    from storage.db import NotMigrated
    from storage.unit_of_work import UnitOfWork

    try:
        desk = await open_desk(load_settings())
    except NotMigrated as exc:
        raise CliError(str(exc)) from None
    try:
        async with UnitOfWork(desk.sessions) as uow:
            entries = await letter_log(uow, args.limit)
    except SQLAlchemyError as exc:
        raise CliError(f"cannot read the letters: {db_reason(exc)}") from None
    finally:
        await desk.close()
    if args.json:
        _print_json([entry.to_json() for entry in entries])
        return 0
    for e in entries:
        ref = e.case_ref or "—"
        problems = f"  [{'; '.join(e.problems)}]" if e.problems else ""
        print(
            f"{e.received_at}  uid {e.uid}  {e.disposition:11} {ref:16} {e.from_addr or '?'}  "
            f"{e.message_id or '(no Message-ID)'}  {e.subject or ''}{problems}"
        )
    print(f"{len(entries)} letters")
    return 0


# Less free space than this where the database or the data folder lives: call the disk full.
NEARLY_FULL_BYTES = 256 * 1024


def storage_problem(exc: BaseException | None, settings: Settings) -> str:
    """One line on a failure to store: what the database (or system) said, and which disk is
    full when one is (SQLite reports a full disk as "disk I/O error" as often as not).
    With `exc` None: only the full-disk note (appended to another message), or ""."""
    import shutil

    from sqlalchemy.exc import SQLAlchemyError

    from bot.services.inbound_mail import db_reason

    full = []
    places = [("the data folder", settings.data_dir)]
    url = settings.effective_database_url
    if url.startswith("sqlite") and ":///" in url:
        places.insert(0, ("the database", Path(url.split(":///", 1)[1]).parent))
    for what, path in places:
        try:
            free = shutil.disk_usage(path).free
        except OSError:
            continue
        if free < NEARLY_FULL_BYTES:
            full.append(f"the disk of {what} ({path}) is full: {free} bytes free")
    note = "; ".join(full)
    if exc is None:
        return f" ({note})" if note else ""
    if isinstance(exc, SQLAlchemyError):
        said = db_reason(exc)
    else:
        said = f"{type(exc).__name__}: {getattr(exc, 'strerror', None) or exc}"
    return f"the letters could not be stored: {said}" + (f" ({note})" if note else "")
