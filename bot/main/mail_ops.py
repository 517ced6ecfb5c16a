"""`certdesk email log`: every letter the intake has seen and what became of it."""

from __future__ import annotations

import argparse

from bot.config import load_settings
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
