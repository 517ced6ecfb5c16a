"""What every `certdesk` subcommand shares: one-line errors, argument types, JSON output."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from typing import Any, NoReturn


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


def _profile(name: str) -> Any:
    from bot.domain.policy import ProfileError
    from bot.profiles import load_profile

    try:
        return load_profile(name)
    except ProfileError as exc:
        raise CliError(str(exc)) from None
