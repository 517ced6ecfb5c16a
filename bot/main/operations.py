"""The operators' subcommands: e-mail, reminders, outbox, staff alerts, imports."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys

from bot.config import load_settings
from bot.main.cli_common import CliError, _print_json, _profile


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
        "own_domain": settings.mail_domain,  # our own mail come back is automatic
        "own_addresses": (settings.mail_from,),
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

    from sqlalchemy.exc import SQLAlchemyError

    from bot.main.desk import open_desk, ready_for_work, work_done
    from bot.main.logs import setup_logging
    from bot.main.mail_ops import storage_problem
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
    except (SQLAlchemyError, OSError) as exc:  # a full disk, say: one line, not a traceback
        raise CliError(storage_problem(exc, settings)) from None
    try:
        await ready_for_work(desk, long_running=not args.once)
        if args.once:
            stats = await intake.run_once(desk)
            _print_json(stats.to_json())
            return 0
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await intake.run(desk, stop)
        return 0
    except intake.IntakeError as exc:
        raise CliError(str(exc) + storage_problem(None, settings)) from None
    except (SQLAlchemyError, OSError) as exc:
        raise CliError(storage_problem(exc, settings)) from None
    finally:
        await desk.close()
        work_done()


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
    for key in ("queued", "retrying", "sending", "failed", "sent", "digested"):
        print(f"{key:9} {counts[key]}")
    for row in rows:  # failed and retrying rows, so no alert goes unseen
        when = f" next {row.next_attempt_at:%Y-%m-%d %H:%M}Z" if row.status == "retrying" else ""
        print(
            f"#{row.id} {row.status} {row.channel} → {row.recipient} ×{row.attempts}{when}: "
            f"{row.error or '-'}"
        )
    return 0


async def cmd_outbox_send(args: argparse.Namespace) -> int:
    """Send what is due now (`--once`, then exit), or keep sending until SIGTERM/SIGINT."""
    import os
    import signal
    import socket
    from datetime import timedelta

    from bot.clock import Clock
    from bot.outbox.senders import close_senders, senders_from_settings
    from bot.outbox.worker import DrainStats, Outbox
    from storage.db import NotMigrated, check_migrated, make_engine, session_factory

    settings = load_settings()
    engine = make_engine(settings.effective_database_url)
    clock = Clock()
    senders = senders_from_settings(settings, clock, engine)
    total = DrainStats()
    try:
        await check_migrated(engine)
        if "telegram" in senders:
            await senders["telegram"].bot.initialize()  # type: ignore[attr-defined]
        outbox = Outbox(
            session_factory(engine),
            senders,
            clock,
            worker_id=f"{socket.gethostname()}-{os.getpid()}",
            settings=settings,
            concurrency=settings.outbox_lanes,
            lease=timedelta(seconds=settings.outbox_lease_seconds),
        )
        stop = asyncio.Event()
        if not args.once:  # --once ends by itself (and may run off the main thread)
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
        while True:
            stats = await outbox.drain()
            for name in ("sent", "retried", "failed", "deferred", "routed"):
                setattr(total, name, getattr(total, name) + getattr(stats, name))
            if args.once or stop.is_set():
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=5)
            if stop.is_set():
                break
    except NotMigrated as exc:
        raise CliError(str(exc)) from None
    finally:
        await close_senders(senders)
        await engine.dispose()
    counts = {k: getattr(total, k) for k in ("sent", "retried", "failed", "deferred", "routed")}
    if args.json:
        _print_json(counts)
    else:
        print(", ".join(f"{k} {v}" for k, v in counts.items()))
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
    if args.profile and _profile(args.profile).statuses is not None:  # a status model (IETP)
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
    profile = _profile(args.profile) if args.profile else None
    try:
        desk = await open_desk(load_settings())
    except NotMigrated as exc:
        raise CliError(str(exc)) from None
    try:
        async with UnitOfWork(desk.sessions) as uow:
            result = await import_csv(desk, uow, path, profile)
    finally:
        await desk.close()
    if args.json:
        _print_json(result.to_json())
        return 1 if result.refused else 0
    # The CLI's lines stay as scripts parse them (English); the console shows the reader's.
    for error in [*result.refused, *result.notes]:
        print(f"{args.file}: {error}", file=sys.stderr)
    print(f"{result.imported} imported, {result.updated} updated, {len(result.refused)} bad rows")
    return 1 if result.refused else 0


async def cmd_certificates_show(args: argparse.Namespace) -> int:
    if args.profile and _profile(args.profile).statuses is not None:  # a status model (IETP)
        from bot.main.findings_cli import cmd_certificates_show as show_status

        return await show_status(args)
    from bot.main.desk import open_desk
    from bot.services.certificates import find
    from storage.db import NotMigrated
    from storage.unit_of_work import UnitOfWork

    try:
        desk = await open_desk(load_settings())
    except NotMigrated as exc:
        raise CliError(str(exc)) from None
    try:
        async with UnitOfWork(desk.sessions) as uow:
            found = await find(desk, uow, args.number, with_contacts=True)
    finally:
        await desk.close()
    if not found:
        raise CliError(f"no certificate numbered or held by {args.number!r}")
    if args.json:
        rows = [v.to_json() for v in found]
        _print_json(rows[0] if len(rows) == 1 else rows)
        return 0
    for v in found:
        data = v.to_json()
        due = data["next_surveillance_due"]
        mark = " (overdue)" if data["surveillance_overdue"] else ""
        people = ", ".join(
            c["email"] or f"telegram {c['telegram_user_id']}" for c in data["contacts"]
        )
        for label, value in (
            ("number", v.number), ("holder", v.holder), ("uscc", v.uscc), ("standard", v.standard),
            ("scope", v.scope), ("status", v.status), ("valid", "yes" if v.valid else "no"),
            ("decided_on", v.decided_on), ("expires_on", v.expires_on),
            ("next surveillance due", f"{due}{mark}" if due else "—"),
            ("suspension", f"{v.suspension_months} months from {v.suspended_on} to "
                           f"{v.suspended_until}" if v.suspended_until else None),
            ("contacts", people or "none: reminders go to staff as alerts"),
        ):  # fmt: skip
            if value is not None:
                print(f"{label:22} {value}")
        print()
    return 0


async def cmd_certificates_link_code(args: argparse.Namespace) -> int:
    from bot.main.desk import open_desk
    from bot.services.contacts import issue_link_code
    from storage.db import NotMigrated
    from storage.unit_of_work import UnitOfWork

    try:
        desk = await open_desk(load_settings())
    except NotMigrated as exc:
        raise CliError(str(exc)) from None
    try:
        async with UnitOfWork(desk.sessions) as uow:
            issued = await issue_link_code(desk, uow, args.number, created_by=args.by)
            await uow.commit()
    except LookupError as exc:
        raise CliError(str(exc).strip("'\"")) from None
    finally:
        await desk.close()
    print(issued.code)
    print(
        f"for {issued.holder} ({issued.number}); single use, valid until "
        f"{issued.expires_at:%Y-%m-%d %H:%M} UTC. Give it to the organisation by letter or "
        f"e-mail; its contact sends /link {issued.code} to the bot.",
        file=sys.stderr,
    )
    return 0
