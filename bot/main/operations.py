"""The operators' subcommands: e-mail, reminders, outbox, staff alerts, imports."""

from __future__ import annotations

import argparse
import asyncio
import sys

from bot.config import load_settings
from bot.main.cli_common import CliError, _print_json


def cmd_email_parse(args: argparse.Namespace) -> int:
    from pathlib import Path

    from bot.delivery.compose import ref_of_our_message_id
    from handlers.email.parse import parse_message

    try:
        raw = Path(args.file).read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {args.file}: {exc.strerror or exc}") from None
    settings = load_settings()
    options = {
        "case_ref_prefix": settings.case_ref_prefix,
        "max_attachment_bytes": settings.max_upload_bytes,
    }
    parsed = parse_message(raw, **options)  # type: ignore[arg-type]
    # Without the database, a reply is recognised by the reference in our own Message-IDs.
    ours = {
        mid: ref
        for mid in [*parsed.in_reply_to, *parsed.references]
        if (ref := ref_of_our_message_id(mid, settings.case_ref_prefix, settings.mail_domain))
    }
    if ours and not parsed.case_ref:
        parsed = parse_message(raw, known_refs_by_message_id=ours, **options)  # type: ignore[arg-type]
    if args.json:
        _print_json(parsed.to_json())
    else:
        data = parsed.to_json()
        for key in ("message_id", "from", "subject", "kind", "case_ref", "automatic"):
            print(f"{key}: {data[key]}")
        for problem in parsed.problems:
            print(f"problem: {problem}")
    return 0


async def cmd_email_fetch(args: argparse.Namespace) -> int:
    import signal

    from bot.main.desk import open_desk
    from bot.main.logs import setup_logging
    from handlers.email import intake
    from storage.db import NotMigrated

    settings = load_settings()
    if not settings.imap_host:
        raise CliError("IMAP_HOST is not set: there is no inbox to fetch from")
    if not args.once:  # --once is a script step: its output is the JSON summary
        setup_logging(settings)
    try:
        desk = await open_desk(settings)
    except NotMigrated as exc:
        raise CliError(str(exc)) from None
    try:
        if args.once:
            stats = await intake.run_once(desk)
            _print_json(stats.to_json())
            return 0
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await intake.run(desk, stop)
        return 0
    except intake.IntakeError as exc:
        raise CliError(str(exc)) from None
    finally:
        await desk.close()


async def cmd_reminders_plan(args: argparse.Namespace) -> int:
    from bot.main.desk import open_desk
    from bot.scheduler.scans import upcoming_reminders
    from messages.render import t
    from storage.db import NotMigrated
    from storage.repo.reminders import certificates

    try:
        desk = await open_desk(load_settings())
    except NotMigrated as exc:
        raise CliError(str(exc)) from None
    try:
        async with desk.sessions() as session:
            rows = await certificates(session, number=args.certificate)
        if args.certificate and not rows:
            raise CliError(f"no certificate numbered {args.certificate!r}")
        planned = upcoming_reminders(desk, rows, desk.clock.today())
    finally:
        await desk.close()
    loc = desk.settings.default_locale
    if args.json:
        _print_json(
            [
                {
                    "send_on": p.send_on,
                    "certificate": number,
                    "rule": p.item.rule_id,
                    "topic": p.item.topic,
                    "due_on": p.item.due_on,
                    "lead_days": p.lead_days,
                    "to": "staff" if p.to_staff else "organisation",
                    "clause": p.item.clause,
                    "provisional": p.item.provisional,
                }
                for number, p in planned
            ]
        )
        return 0
    if not planned:
        print(t("reminders.plan_none", loc))
        return 0
    print(t("reminders.plan_header", loc))
    for number, p in planned:
        to = t("reminders.audience_staff" if p.to_staff else "reminders.audience_org", loc)
        mark = " *" if p.item.provisional else ""
        print(
            f"{p.send_on}  {number:11} {p.item.rule_id:29} {p.item.due_on}{mark}  "
            f"{p.lead_days:>4}  {to}"
        )
    return 0


async def cmd_outbox_status(args: argparse.Namespace) -> int:
    from bot.outbox.admin import problems
    from bot.outbox.worker import status_counts
    from storage.db import NotMigrated, check_migrated, make_engine, session_factory

    engine = make_engine(load_settings().effective_database_url)
    try:
        await check_migrated(engine)
        counts = await status_counts(session_factory(engine))
        rows = await problems(session_factory(engine))
    except NotMigrated as exc:
        raise CliError(str(exc)) from None
    finally:
        await engine.dispose()
    if args.json:
        _print_json({**counts, "problems": [row.to_json() for row in rows]})
        return 0
    for key in ("queued", "retrying", "sending", "failed", "sent"):
        print(f"{key:9} {counts[key]}")
    for row in rows:  # failed and retrying rows, so no alert goes unseen
        when = f" next {row.next_attempt_at:%Y-%m-%d %H:%M}Z" if row.status == "retrying" else ""
        print(
            f"#{row.id} {row.status} {row.channel} → {row.recipient} ×{row.attempts}{when}: "
            f"{row.error or '-'}"
        )
    return 0


async def cmd_outbox_retry(args: argparse.Namespace) -> int:
    from bot.clock import Clock
    from bot.outbox.admin import retry
    from storage.db import NotMigrated, check_migrated, make_engine, session_factory

    if not args.failed and not args.ids:
        raise CliError("give message ids (see `certdesk outbox status`) or --failed")
    engine = make_engine(load_settings().effective_database_url)
    try:
        await check_migrated(engine)
        ids = None if args.failed else args.ids
        done = await retry(session_factory(engine), Clock().now(), ids)
    except NotMigrated as exc:
        raise CliError(str(exc)) from None
    finally:
        await engine.dispose()
    print(f"{len(done)} failed messages queued again" + (f": {done}" if done else ""))
    return 0 if done or args.failed else 1


async def cmd_staff_alert_test(args: argparse.Namespace) -> int:
    from bot.clock import Clock
    from bot.outbox.staff_test import send_test_alerts
    from messages.render import t

    settings = load_settings()
    outcomes = await send_test_alerts(settings, Clock())
    if not outcomes:
        print(t("outbox.staff_alert_none", settings.default_locale))
        return 2
    for outcome in outcomes:
        print(outcome.line)
    return 0 if all(o.error is None for o in outcomes) else 1


async def cmd_certificates_import(args: argparse.Namespace) -> int:
    if getattr(args, "profile", None):  # a status-model programme (IETP)
        from bot.main.findings_cli import cmd_certificates_status_import

        return await cmd_certificates_status_import(args)
    from pathlib import Path

    from bot.main.desk import open_desk
    from bot.services.certificates import import_csv
    from storage.db import NotMigrated
    from storage.unit_of_work import UnitOfWork

    path = Path(args.file)
    if not path.is_file():
        raise CliError(f"cannot read {args.file}: no such file")
    try:
        desk = await open_desk(load_settings())
    except NotMigrated as exc:
        raise CliError(str(exc)) from None
    try:
        async with UnitOfWork(desk.sessions) as uow:
            result = await import_csv(desk, uow, path)
    finally:
        await desk.close()
    for error in result.errors:
        print(f"{args.file}: {error}", file=sys.stderr)
    print(f"{result.created} imported, {result.updated} updated, {len(result.errors)} bad rows")
    return 1 if result.errors else 0
