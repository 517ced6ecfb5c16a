"""`certdesk staff …` (the directory) and `certdesk console` (the staff console in the browser)."""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
from typing import TYPE_CHECKING, Any

from bot.config import Settings, load_settings
from bot.main.cli_common import CliError, _print_json
from messages.render import t

if TYPE_CHECKING:
    from bot.desk import Desk

MIN_SECRET_KEY = 32


async def cmd_staff_add(args: argparse.Namespace) -> int:
    from bot.main.desk import open_desk
    from bot.services import staff
    from storage.unit_of_work import UnitOfWork

    if not args.password_stdin:
        raise CliError("give the password on standard input with --password-stdin")
    password = sys.stdin.readline().rstrip("\r\n")
    settings = load_settings()
    desk = await open_desk(settings)
    try:
        async with UnitOfWork(desk.sessions) as uow:
            member = await staff.add_member(
                desk,
                uow,
                name=args.name,
                email=args.email,
                password=password,
                telegram_user_id=args.telegram_id,
                role=args.role,
            )
    except staff.StaffRefused as refused:
        raise CliError(t(refused.key, "en", **refused.args_)) from None
    finally:
        await desk.close()
    print(f"added {member.email} ({member.role})")
    return 0


async def cmd_staff_list(args: argparse.Namespace) -> int:
    from bot.main.desk import open_desk
    from bot.services import staff
    from storage.unit_of_work import UnitOfWork

    desk = await open_desk(load_settings())
    try:
        async with UnitOfWork(desk.sessions) as uow:
            rows = [
                {
                    "name": m.name,
                    "email": m.email,
                    "telegram_id": m.telegram_user_id,
                    "role": m.role,
                    "disabled": m.disabled,
                }
                for m in await staff.members(uow)
            ]
    finally:
        await desk.close()
    if args.json:
        _print_json(rows)
        return 0
    for row in rows:
        tg = row["telegram_id"] if row["telegram_id"] is not None else "-"
        off = "  (disabled)" if row["disabled"] else ""
        print(f"{row['email']:32} {row['role']:8} {tg!s:>14}  {row['name']}{off}")
    return 0


async def cmd_staff_disable(args: argparse.Namespace) -> int:
    from bot.main.desk import open_desk
    from bot.services import staff
    from storage.unit_of_work import UnitOfWork

    desk = await open_desk(load_settings())
    try:
        async with UnitOfWork(desk.sessions) as uow:
            member = await staff.set_disabled(uow, args.email, not args.enable)
    except staff.StaffRefused as refused:
        raise CliError(t(refused.key, "en", **refused.args_)) from None
    finally:
        await desk.close()
    print(f"{member.email} {'enabled' if args.enable else 'disabled'}")
    return 0


def check_console_settings(settings: Settings) -> None:
    key = settings.console_secret_key
    if key is None or len(key.get_secret_value()) < MIN_SECRET_KEY:
        raise CliError(f"CONSOLE_SECRET_KEY must be set, {MIN_SECRET_KEY} characters or more")


def bind_console(settings: Settings) -> socket.socket:
    """The console's listening socket, bound before serving: a taken port is a one-line error,
    not uvicorn's SystemExit ending the whole program."""
    port = settings.console_port or 8080
    sock = socket.socket(socket.AF_INET6 if ":" in settings.console_listen else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.console_listen, port))
    except OSError as exc:
        sock.close()
        where = f"{settings.console_listen}:{port}"
        raise CliError(f"cannot listen on {where}: {exc.strerror}") from None
    sock.listen(128)  # from here a connection waits in the backlog until uvicorn accepts it
    return sock


async def serve_console(desk: Desk, sock: socket.socket) -> None:
    """Serve the console on `sock` until cancelled (also what `certdesk run` can await)."""
    import uvicorn

    from handlers.console.app import create_app
    from handlers.email.intake import parser

    config = uvicorn.Config(
        create_app(desk, parse=parser(desk)),
        log_level=desk.settings.log_level.lower(),
        proxy_headers=True,  # X-Forwarded-Proto/For from the reverse proxy on this host
        access_log=False,  # addresses and paths of staff: not in the logs by default
        lifespan="off",
    )
    await uvicorn.Server(config).serve(sockets=[sock])


def start_console(desk: Desk) -> asyncio.Task[None] | None:
    """For `certdesk run`: serve the console beside the bot when CONSOLE_PORT is set (None when
    it is not). Settings and the port are checked here, before the task starts, so a missing
    key or a taken port stops start-up with one line (CliError) instead of ending the loop."""
    if desk.settings.console_port is None:
        return None
    check_console_settings(desk.settings)
    sock = bind_console(desk.settings)

    async def serve() -> None:
        try:
            await serve_console(desk, sock)
        finally:
            sock.close()

    return asyncio.create_task(serve(), name="console")


async def cmd_console(args: argparse.Namespace) -> int:
    from bot.main.desk import open_desk
    from bot.main.logs import setup_logging

    settings = load_settings()
    check_console_settings(settings)
    setup_logging(settings)
    sock = bind_console(settings)
    desk = await open_desk(settings)
    try:
        print(f"console on http://{settings.console_listen}:{sock.getsockname()[1]}/", flush=True)
        await serve_console(desk, sock)
    except asyncio.CancelledError:
        pass
    finally:
        sock.close()
        await desk.close()
    return 0


def add_commands(sub: Any, add: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    """Register `staff add|list|disable` and `console` on the `certdesk` parser."""
    from bot.domain.staff import Role
    from bot.main.cli_common import positive_int

    staff = sub.add_parser("staff", help="the staff directory").add_subparsers(
        dest="staff_command", required=True, parser_class=parser_class
    )
    p = add("add", cmd_staff_add, "add a staff member (password on standard input)", staff)
    p.add_argument("--name", required=True)
    p.add_argument("--email", required=True, help="the address they sign in with")
    p.add_argument("--telegram-id", type=positive_int, help="their Telegram user id")
    p.add_argument("--role", default=Role.STAFF.value, choices=[r.value for r in Role])
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p = add("list", cmd_staff_list, "list the staff directory", staff)
    p.add_argument("--json", action="store_true")
    p = add("disable", cmd_staff_disable, "stop a member from signing in", staff)
    p.add_argument("email")
    p.add_argument("--enable", action="store_true", help="enable them again instead")
    add("console", cmd_console, "serve the staff console (CONSOLE_LISTEN, CONSOLE_PORT)")
