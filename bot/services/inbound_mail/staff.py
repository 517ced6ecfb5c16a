"""What staff are told about received mail: quarantined letters, answer limits, the mailbox."""

from __future__ import annotations

from datetime import datetime

from bot.desk import Desk
from bot.domain.mail import ParsedMail
from bot.outbox.to_staff import queue_for_staff
from messages.render import t, th
from storage.models import Case, InboundEmail, InboundStatus
from storage.unit_of_work import UnitOfWork


async def to_staff(
    desk: Desk,
    uow: UnitOfWork,
    key: str,
    text: str,
    case: Case | None = None,
    about: str | None = None,
) -> None:
    """`about`: the letter's sender, so a flood from one address is one alert with a count."""
    case_id = case.id if case else None
    await queue_for_staff(desk, uow.session, key=key, text=text, case_id=case_id, about=about)


def sender_label(parsed: ParsedMail | None, loc: str) -> str:
    if parsed is None or parsed.sender is None:
        return t("email.unknown_sender", loc)
    name = f"{parsed.from_name} " if parsed.from_name else ""
    return f"{name}<{parsed.from_addr or parsed.reply_to}>"


def cut(text: str, limit: int = 500) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


async def quarantine(
    desk: Desk,
    uow: UnitOfWork,
    row: InboundEmail,
    parsed: ParsedMail | None,
    reason: str,
) -> None:
    """Mark the letter quarantined (the intake moves it to IMAP_QUARANTINE_FOLDER) and say why."""
    loc = desk.settings.default_locale
    text = th(
        "email.staff_quarantine",
        loc,
        folder=desk.settings.imap_quarantine_folder,
        id=row.id,
        sender=sender_label(parsed, loc),
        reason=reason,
    )
    about = parsed.sender if parsed is not None else None
    await to_staff(desk, uow, f"inbound:{row.id}:quarantine", text, about=about)
    row.status = InboundStatus.QUARANTINED.value
    if reason not in (row.problems or []):
        row.problems = [*(row.problems or []), reason]
    uow.session.add(row)


async def limit_noted(
    desk: Desk, uow: UnitOfWork, row: InboundEmail, sender: str, case: Case
) -> None:
    """The sender had their automatic answers for the hour: staff answer by hand if need be."""
    loc = desk.settings.default_locale
    text = th(
        "email.staff_auto_reply_limit",
        loc,
        sender=sender,
        limit=desk.settings.auto_replies_per_sender_per_hour,
        ref=case.ref,
    )
    await to_staff(desk, uow, f"inbound:{row.id}:limit", text, case, about=sender)


async def mailbox_down(
    desk: Desk, uow: UnitOfWork, mailbox: str, failures: int, reason: str, since: datetime
) -> None:
    """The mailbox failed `failures` times in a row: once per outage (keyed by its start)."""
    text = th(
        "email.staff_imap_down",
        desk.settings.default_locale,
        mailbox=mailbox,
        count=failures,
        reason=reason,
    )
    await to_staff(desk, uow, f"imap:{mailbox}:down:{since.isoformat()}", text)


async def mailbox_up(desk: Desk, uow: UnitOfWork, mailbox: str, since: datetime) -> None:
    """The mailbox is back after the outage staff were told of at `since`."""
    text = th("email.staff_imap_up", desk.settings.default_locale, mailbox=mailbox)
    await to_staff(desk, uow, f"imap:{mailbox}:up:{since.isoformat()}", text)
