"""The `certdesk` command: run the bot, and the staff and script tools around it."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Sequence
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
    from bot.policy import ProfileError, list_profiles, load_profile

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
    from bot.calendar import WorkCalendar, load_overrides
    from bot.deadlines import case_deadlines

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
    from bot.quote import quote

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


def _profile(name: str) -> Any:
    from bot.policy import ProfileError, load_profile

    try:
        return load_profile(name)
    except ProfileError as exc:
        raise CliError(str(exc)) from None


# --- wiring ---------------------------------------------------------------------------------

Handler = Callable[[argparse.Namespace], int]


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
