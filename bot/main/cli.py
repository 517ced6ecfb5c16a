"""The `certdesk` command: run the bot, and the staff and script tools around it."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Coroutine, Sequence
from datetime import date
from typing import Any, NoReturn

from bot.config import ConfigError, load_settings


class CliError(Exception):
    """A user error: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One clear line instead of argparse's usage block.
        print(f"{self.prog}: {message}", file=sys.stderr)
        raise SystemExit(2)


def iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a valid date (YYYY-MM-DD)") from None


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be 1 or more")
    return value


def _print_json(data: Any) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2, default=str))


# --- commands -------------------------------------------------------------------------------


def cmd_profiles(args: argparse.Namespace) -> int:
    from bot.domain.policy import ProfileError
    from bot.profiles import list_profiles, load_profile

    bad = 0
    for name in list_profiles():
        try:
            profile = load_profile(name)
        except ProfileError as exc:
            print(f"✗ {exc}")
            bad += 1
            continue
        body = profile.body
        print(f"✓ {name:6} {body.name_zh} — {body.standard} ({len(profile.rules)} rules)")
    return 1 if bad else 0


def cmd_deadlines(args: argparse.Namespace) -> int:
    from bot.desk import load_overrides
    from bot.domain.calendar import WorkCalendar
    from bot.domain.deadlines import case_deadlines

    profile = _profile(args.profile)
    settings = load_settings()
    overrides = load_overrides(settings.calendar_overrides) if settings.calendar_overrides else None
    computed = case_deadlines(
        profile.rules.values(),
        args.kind,
        args.received,
        args.decided,
        WorkCalendar(overrides),
        roll_to_workday=profile.calendar.roll_to_workday,
    )
    rows = [d.to_dict() for d in computed]
    if args.json:
        _print_json(rows)
    else:
        for row in rows:
            mark = " (provisional)" if row["provisional"] else ""
            period = f"{row['count']} {row['unit']}"
            print(f"{row['due']}  {row['rule']:26} {period:16} {row['clause']}{mark}")
    return 0


def cmd_quote(args: argparse.Namespace) -> int:
    from bot.domain.quote import quote

    try:
        result = quote(_profile(args.profile), args.headcount, args.sites).to_json()
    except ValueError as exc:  # QuoteUnavailable: the body publishes no audit-time table
        raise CliError(str(exc)) from None
    if args.json:
        _print_json(result)
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from storage.db import upgrade

    settings = load_settings()
    upgrade(settings.effective_database_url)
    print("database is at the latest migration")
    return 0


async def cmd_cases_verify(args: argparse.Namespace) -> int:
    from bot.domain.refs import normalise_ref
    from bot.services.cases import count_cases, verify
    from storage.db import NotMigrated, check_migrated, make_engine, session_factory
    from storage.unit_of_work import UnitOfWork

    ref = None
    if args.ref is not None:
        ref = normalise_ref(args.ref)
        if ref is None:
            raise CliError(f"{args.ref!r} is not a case reference like TS-2026-7K3F9Q")
    engine = make_engine(load_settings().effective_database_url)
    try:
        await check_migrated(engine)
        async with UnitOfWork(session_factory(engine)) as uow:
            problems = await verify(uow, ref)
            checked = 1 if ref else await count_cases(uow)
    except (NotMigrated, LookupError) as exc:
        raise CliError(str(exc).strip("'\"")) from None
    finally:
        await engine.dispose()
    for problem in problems:
        print(f"✗ {problem}")
    print(f"{checked} cases checked, {len(problems)} with a broken history")
    return 1 if problems else 0


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


def _profile(name: str) -> Any:
    from bot.domain.policy import ProfileError
    from bot.profiles import load_profile

    try:
        return load_profile(name)
    except ProfileError as exc:
        raise CliError(str(exc)) from None


def cmd_run(args: argparse.Namespace) -> int:
    from bot.main.logs import setup_logging
    from bot.main.runner import run

    settings = load_settings()
    # The local chat owns the terminal: only warnings there.
    setup_logging(settings, level=None if settings.telegram_bot_token else "WARNING")
    return run(settings)


async def cmd_chat(args: argparse.Namespace) -> int:
    from bot.main.runner import local_chat

    return await local_chat(load_settings(), language_code=args.lang)


async def cmd_certificates_import(args: argparse.Namespace) -> int:
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


# --- wiring ---------------------------------------------------------------------------------

# A command: sync, or async (main() runs the coroutine); either way the exit status.
Handler = Callable[[argparse.Namespace], int | Coroutine[Any, Any, int]]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="certdesk", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def add(name: str, handler: Handler, help_: str, parent: Any = sub) -> argparse.ArgumentParser:
        p = parent.add_parser(name, help=help_, description=help_)
        p.set_defaults(handler=handler)
        return p

    add("profiles", cmd_profiles, "list and validate the policy profiles")

    p = add("deadlines", cmd_deadlines, "the deadlines a case gets under a profile")
    p.add_argument("--profile", default="ggbz", help="profile name or path to a TOML file")
    p.add_argument("--kind", required=True, choices=["appeal", "complaint", "dispute"])
    p.add_argument("--received", required=True, type=iso_date, help="YYYY-MM-DD")
    p.add_argument("--decided", type=iso_date, help="date of the decision appealed, YYYY-MM-DD")
    p.add_argument("--json", action="store_true")

    p = add("quote", cmd_quote, "estimate audit days and fees")
    p.add_argument("--profile", default="ggbz", help="profile name or path to a TOML file")
    p.add_argument("--headcount", required=True, type=positive_int)
    p.add_argument("--sites", default=1, type=positive_int, help="number of similar sites")
    p.add_argument("--json", action="store_true")

    cases = sub.add_parser("cases", help="appeals, complaints and disputes").add_subparsers(
        dest="cases_command", required=True, parser_class=_Parser
    )
    p = add("verify", cmd_cases_verify, "check the hash chains of case histories", cases)
    p.add_argument("ref", nargs="?", help="one case reference (default: every case)")

    mail = sub.add_parser("email", help="the e-mail inbox").add_subparsers(
        dest="email_command", required=True, parser_class=_Parser
    )
    p = add("parse", cmd_email_parse, "show what the intake would record for a .eml file", mail)
    p.add_argument("file", help="a raw message (.eml)")
    p.add_argument("--json", action="store_true")
    p = add("fetch", cmd_email_fetch, "receive letters from the configured IMAP inbox", mail)
    p.add_argument("--once", action="store_true", help="one pass, then exit (default: run on)")

    rem = sub.add_parser("reminders", help="certificate reminders").add_subparsers(
        dest="reminders_command", required=True, parser_class=_Parser
    )
    p = add("plan", cmd_reminders_plan, "print the upcoming certificate reminders", rem)
    p.add_argument("--certificate", metavar="NO", help="only this certificate number")
    p.add_argument("--json", action="store_true")

    box = sub.add_parser("outbox", help="messages waiting to be sent").add_subparsers(
        dest="outbox_command", required=True, parser_class=_Parser
    )
    p = add("status", cmd_outbox_status, "message counts, and the failed and retrying ones", box)
    p.add_argument("--json", action="store_true")
    p = add("retry", cmd_outbox_retry, "queue failed messages again", box)
    p.add_argument("ids", nargs="*", type=positive_int, metavar="ID", help="message ids")
    p.add_argument("--failed", action="store_true", help="every failed message")

    staff = sub.add_parser("staff-alert", help="staff alert channels").add_subparsers(
        dest="staff_alert_command", required=True, parser_class=_Parser
    )
    add("test", cmd_staff_alert_test, "send a test alert to every staff channel now", staff)

    add("run", cmd_run, "run the bot (on Telegram with TELEGRAM_BOT_TOKEN, else a local chat)")
    p = add("chat", cmd_chat, "chat with the full bot in this terminal (local Bot API emulator)")
    p.add_argument("--lang", choices=["zh-hans", "en"], help="the Telegram language of the user")

    certs = sub.add_parser("certificates", help="certificate register").add_subparsers(
        dest="certificates_command", required=True, parser_class=_Parser
    )
    p = add("import", cmd_certificates_import, "import or update certificates from CSV", certs)
    p.add_argument(
        "file", help="CSV: number,holder,standard,decided_on,expires_on[,scope,status,…]"
    )

    db = sub.add_parser("db", help="database maintenance").add_subparsers(
        dest="db_command", required=True, parser_class=_Parser
    )
    add("upgrade", cmd_db_upgrade, "apply the database migrations", db)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = args.handler(args)
        return asyncio.run(result) if asyncio.iscoroutine(result) else int(result)
    except (CliError, ConfigError) as exc:
        print(f"certdesk: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


__all__ = ["main"]
