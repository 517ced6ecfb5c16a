"""`certdesk findings import|list|accept|reject` (issue 12): audit findings and their verdicts."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bot.config import load_settings
from bot.main.cli_common import CliError, _print_json, _profile, positive_int


async def _desk() -> Any:
    from bot.main.desk import open_desk
    from storage.db import NotMigrated

    try:
        return await open_desk(load_settings())
    except NotMigrated as exc:
        raise CliError(str(exc)) from None


async def cmd_findings_import(args: argparse.Namespace) -> int:
    from bot.services import findings
    from storage.unit_of_work import UnitOfWork

    profile = _profile(args.profile) if args.profile else None
    try:
        text = Path(args.file).read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read {args.file}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise CliError(f"{args.file}: not UTF-8 text") from None
    desk = await _desk()
    try:
        async with UnitOfWork(desk.sessions) as uow:
            report = await findings.import_csv(desk, uow, text, profile)
    finally:
        await desk.close()
    if args.json:
        _print_json(report.to_json())
    else:
        print(f"imported {report.imported}")
        for r in report.refused:
            print(f"line {r.line}: {r.reason}")
    return 1 if report.refused else 0


async def cmd_findings_list(args: argparse.Namespace) -> int:
    from bot.services import findings
    from storage.unit_of_work import UnitOfWork

    desk = await _desk()
    try:
        async with UnitOfWork(desk.sessions) as uow:
            try:
                rows = await findings.listed(desk, uow, args.certificate)
            except LookupError:
                raise CliError(f"no certificate numbered {args.certificate!r}") from None
    finally:
        await desk.close()
    data = [r.to_json() for r in rows]
    if args.json:
        _print_json(data)
    else:
        for r in data:
            print(
                f"#{r['id']:<5} {r['certificate']:16} {r['grade']:14} {r['audit_type']:15} "
                f"{r['audit_end_on']}  due {r['due']}  {r['status']:18} {r['rule']}  {r['clause']}"
            )
    return 0


async def cmd_findings_review(args: argparse.Namespace) -> int:
    from bot.services import findings
    from messages.render import t
    from storage.unit_of_work import UnitOfWork

    accept = args.findings_command == "accept"
    desk = await _desk()
    try:
        async with UnitOfWork(desk.sessions) as uow:
            done = await findings.review(
                desk, uow, args.id, accept=accept, reason=getattr(args, "reason", None),
                by=args.by,
            )  # fmt: skip
    except findings.Refusal as refused:
        raise CliError(t(refused.key, "en")) from None
    finally:
        await desk.close()
    print(f"finding #{done.id}: {done.status}")
    return 0


async def cmd_certificates_status_import(args: argparse.Namespace) -> int:
    """`certificates import FILE --profile ietp`: status-model certificates (services.statuses)."""
    from bot.services import statuses
    from storage.unit_of_work import UnitOfWork

    profile = _profile(args.profile)
    if profile.statuses is None:
        raise CliError(f"profile {args.profile} has no status model: import without --profile")
    from bot.services.certificates_csv import decode

    try:
        decoded = decode(Path(args.file).read_bytes())  # UTF-8, GBK, UTF-16 as Excel saves
    except OSError as exc:
        raise CliError(f"cannot read {args.file}: {exc}") from None
    if decoded is None:
        raise CliError(f"{args.file}: neither UTF-8 nor GBK text; save it as “CSV UTF-8”")
    text = decoded
    desk = await _desk()
    try:
        async with UnitOfWork(desk.sessions) as uow:
            report = await statuses.import_csv(desk, uow, text, profile)
    finally:
        await desk.close()
    if args.json:
        _print_json(report.to_json())
    else:
        print(f"imported {report.imported}")
        for r in report.refused:
            print(f"line {r['line']}: {r['reason']}")
    return 1 if report.refused else 0


async def cmd_certificates_show(args: argparse.Namespace) -> int:
    from bot.services import statuses
    from storage.unit_of_work import UnitOfWork

    profile = _profile(args.profile)
    desk = await _desk()
    try:
        async with UnitOfWork(desk.sessions) as uow:
            shown = await statuses.show(desk, uow, args.number, profile)
    except LookupError:
        raise CliError(f"no {args.profile} certificate numbered {args.number!r}") from None
    finally:
        await desk.close()
    if args.json:
        _print_json(shown)
    else:
        for key, value in shown.items():
            print(f"{key}: {value}")
    return 0


async def cmd_findings_link_member(args: argparse.Namespace) -> int:
    """Link a member account (role member, ICS) to the factory of a certificate or audit."""
    from bot.services import findings_access
    from storage.repo import staff as staff_repo
    from storage.unit_of_work import UnitOfWork

    desk = await _desk()
    try:
        async with UnitOfWork(desk.sessions) as uow:
            member = await staff_repo.by_email(uow.session, args.email.strip().lower())
            if member is None or member.role != "member":
                raise CliError(f"{args.email} is not a member account (role member)")
            try:
                await findings_access.link_member(uow, member, args.certificate)
            except LookupError:
                raise CliError(f"no certificate or audit numbered {args.certificate!r}") from None
    finally:
        await desk.close()
    print(f"{args.email} now sees {args.certificate}")
    return 0


def add_commands(sub: Any, add: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    group = sub.add_parser("findings", help="audit findings and corrective actions")
    cmds = group.add_subparsers(dest="findings_command", required=True, parser_class=parser_class)
    p = add("import", cmd_findings_import, "import findings from CSV", cmds)
    p.add_argument("file", help="CSV: certificate,audit_type,audit_end_on,grade,clause,text")
    p.add_argument("--profile", help="profile name or path (default: PROFILE)")
    p.add_argument("--json", action="store_true")
    p = add("list", cmd_findings_list, "list findings with their due dates", cmds)
    p.add_argument("--certificate", metavar="NO", help="only this certificate number")
    p.add_argument("--json", action="store_true")
    p = add("accept", cmd_findings_review, "accept a finding's evidence (closes it)", cmds)
    p.add_argument("id", type=positive_int)
    p.add_argument("--by", required=True, help="who verified it")
    p = add("reject", cmd_findings_review, "reject a finding's evidence, with a reason", cmds)
    p.add_argument("id", type=positive_int)
    p.add_argument("--reason", required=True)
    p.add_argument("--by", required=True, help="who verified it")
    p = add("link-member", cmd_findings_link_member, "let a member see a factory (ICS)", cmds)
    p.add_argument("email", help="the member account's sign-in e-mail")
    p.add_argument("certificate", help="the certificate or audit number of the factory")


__all__ = ["add_commands", "cmd_certificates_status_import"]
