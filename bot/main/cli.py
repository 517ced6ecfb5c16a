"""The `certdesk` command: run the bot, and the staff and script tools around it."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from bot.config import ConfigError, load_settings
from bot.main.cases_cli import cmd_cases_heads, cmd_cases_verify
from bot.main.cli_common import CliError, _Parser, _print_json, _profile, iso_date, positive_int
from bot.main.console_cmd import add_commands as add_console_commands
from bot.main.findings_cli import add_commands as add_findings_commands
from bot.main.operations import (
    cmd_certificates_import,
    cmd_certificates_link_code,
    cmd_certificates_show,
    cmd_email_fetch,
    cmd_email_parse,
    cmd_outbox_retry,
    cmd_outbox_send,
    cmd_outbox_status,
    cmd_reminders_plan,
    cmd_staff_alert_test,
)

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
        notified=args.notified,
        about=args.about,
        serious=args.serious,
    )
    rows = [d.to_dict() for d in computed]
    if args.json:
        _print_json(rows)
    else:
        for row in rows:
            mark = " (provisional)" if row["provisional"] else ""
            period = f"{row['count']} {row['unit']}"
            print(f"{row['due']}  {row['rule']:30} {period:16} {row['clause']}{mark}")
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


def cmd_run(args: argparse.Namespace) -> int:
    from bot.main.logs import setup_logging
    from bot.main.runner import run, run_mode

    settings = load_settings()
    mode = "serve" if args.command == "serve" else run_mode(settings)
    # The local chat owns the terminal: only warnings there.
    setup_logging(settings, level="WARNING" if mode == "local" else None)
    return run(settings, mode)


async def cmd_chat(args: argparse.Namespace) -> int:
    from bot.main.runner import local_chat

    return await local_chat(load_settings(), language_code=args.lang)


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
    p.add_argument(
        "--notified", type=iso_date, help="date the appellant received the decision's notice"
    )
    p.add_argument(
        "--about", choices=["body", "staff", "organisation"], help="whom a complaint is about"
    )
    p.add_argument("--serious", action="store_true", help="a serious complaint (SGC §八2.4)")
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
    p.add_argument("--json", action="store_true", help="every problem found, as JSON")
    p.add_argument("--heads", metavar="FILE", help="also check against an export of heads")
    p = add("heads", cmd_cases_heads, "export every case's signed history head (JSON)", cases)
    p.add_argument("--out", metavar="FILE", help="write here (replaced whole) instead of stdout")

    mail = sub.add_parser("email", help="the e-mail inbox").add_subparsers(
        dest="email_command", required=True, parser_class=_Parser
    )
    p = add("parse", cmd_email_parse, "show what the intake would record for a .eml file", mail)
    p.add_argument("file", help="a raw message (.eml)")
    p.add_argument("--json", action="store_true")
    p = add("fetch", cmd_email_fetch, "receive letters from the configured IMAP inbox", mail)
    p.add_argument("--once", action="store_true", help="one pass, then exit (default: run on)")
    from bot.main.mail_ops import cmd_email_log

    p = add("log", cmd_email_log, "every letter the intake has seen and what became of it", mail)
    p.add_argument("--json", action="store_true")
    p.add_argument("--limit", type=positive_int, help="only the first N letters")

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
    p = add("send", cmd_outbox_send, "send the messages due (to SIGTERM, or --once)", box)
    p.add_argument("--once", action="store_true", help="send every message due now, then exit")
    p.add_argument("--json", action="store_true")
    p = add("retry", cmd_outbox_retry, "queue failed messages again", box)
    p.add_argument("ids", nargs="*", type=positive_int, metavar="ID", help="message ids")
    p.add_argument("--failed", action="store_true", help="every failed message")

    staff = sub.add_parser("staff-alert", help="staff alert channels").add_subparsers(
        dest="staff_alert_command", required=True, parser_class=_Parser
    )
    add("test", cmd_staff_alert_test, "send a test alert to every staff channel now", staff)

    add_console_commands(sub, add, _Parser)
    add_findings_commands(sub, add, _Parser)

    add(
        "run",
        cmd_run,
        "run the service (`serve`) when TELEGRAM_BOT_TOKEN, IMAP_HOST, SMTP_HOST or a staff robot "
        "is set, else a local chat in this terminal",
    )
    add(
        "serve",
        cmd_run,
        "run the service: e-mail intake, outbox, scheduler, and Telegram when a token is set",
    )
    p = add("chat", cmd_chat, "chat with the full bot in this terminal (local Bot API emulator)")
    p.add_argument("--lang", choices=["zh-hans", "en"], help="the Telegram language of the user")

    certs = sub.add_parser("certificates", help="certificate register").add_subparsers(
        dest="certificates_command", required=True, parser_class=_Parser
    )
    p = add("import", cmd_certificates_import, "import or update certificates from CSV", certs)
    p.add_argument(
        "file", help="CSV: number,holder,standard,decided_on,expires_on[,scope,status,uscc,…]"
    )
    p.add_argument("--profile", help="check against this profile (default: the configured one)")
    p.add_argument("--json", action="store_true")
    p = add("show", cmd_certificates_show, "a certificate, by number or holder name", certs)
    p.add_argument("number", metavar="NO", help="certificate number (any case) or holder name")
    p.add_argument("--profile", help="a status-model profile (ietp): its status and validity")
    p.add_argument("--json", action="store_true")
    p = add("link-code", cmd_certificates_link_code, "a one-time code linking a Telegram "
            "contact to the certificate's holder", certs)  # fmt: skip
    p.add_argument("number", metavar="NO", help="certificate number")
    p.add_argument("--by", default="staff", help="who issues it (kept with the code)")

    db = sub.add_parser("db", help="database maintenance").add_subparsers(
        dest="db_command", required=True, parser_class=_Parser
    )
    add("upgrade", cmd_db_upgrade, "apply the database migrations", db)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand. Every error a user can fix is one line on stderr and exit status 2
    (no traceback); output cut short by its reader (`| head`) ends quietly."""
    from bot.domain.policy import ProfileError
    from storage.db import DatabaseUnavailable, NotMigrated

    args = build_parser().parse_args(argv)
    try:
        result = args.handler(args)
        status = asyncio.run(result) if asyncio.iscoroutine(result) else int(result)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return status
    except (CliError, ConfigError, NotMigrated, DatabaseUnavailable) as exc:
        print(f"certdesk: {exc}", file=sys.stderr)
        return 2
    except ProfileError as exc:  # PROFILE names no profile, or a bad file
        print(f"certdesk: configuration error: PROFILE: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        _quiet_stdout()
        return 0
    except KeyboardInterrupt:
        return 130


def _quiet_stdout() -> None:
    """The reader of stdout has gone: point stdout at /dev/null so the flush at exit does not
    print a second BrokenPipeError (the way the Python docs recommend)."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # not a real file (tests capture stdout)
        pass
    finally:
        os.close(devnull)


__all__ = ["main"]
