"""What staff are told about received mail: quarantined letters, answer limits, the mailbox."""

from __future__ import annotations

from datetime import datetime

from bot.desk import Desk
from bot.domain.mail import TOO_LARGE, ParsedMail, too_large_sizes
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
    # A display name of thousands of characters must not push a staff message over 4,096.
    name = f"{cut(parsed.from_name, NAME_MAX)} " if parsed.from_name else ""
    return f"{name}<{parsed.from_addr or parsed.reply_to}>"


NAME_MAX = 100  # characters of a display name in a staff message (cut with "…")
SUBJECT_SHOWN = 300  # characters of a subject in a staff message


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
        reason=reason_text(reason, loc),
    )
    about = parsed.sender if parsed is not None else None
    await to_staff(desk, uow, f"inbound:{row.id}:quarantine", text, about=about)
    row.status = InboundStatus.QUARANTINED.value
    if reason not in (row.problems or []):
        row.problems = [*(row.problems or []), reason]
    uow.session.add(row)


def reason_text(reason: str, loc: str) -> str:
    """Why a letter was quarantined, in the staff's language, its problem code kept."""
    sizes = too_large_sizes(reason)
    if sizes is not None:
        size, limit = sizes
        text = t("email.problem_too_large", loc, size=f"{size:,}", limit=f"{limit:,}")
        return f"{text} [{TOO_LARGE}]"
    code, _, detail = reason.partition(":")
    key = {
        "unparseable": "email.problem_unparseable",
        "intake_error": "email.problem_intake_error",
        "no sender address": "email.problem_no_sender",
    }.get(code)
    if key is None:
        return reason
    return f"{t(key, loc, detail=detail.strip() or '—')} [{reason}]"


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


async def letter_not_stored(
    desk: Desk, uow: UnitOfWork, mailbox: str, uidvalidity: int, uid: int, reason: str
) -> None:
    """A letter the database refused even alone: it stays in the mailbox; once per letter."""
    text = th(
        "email.staff_letter_not_stored",
        desk.settings.default_locale,
        mailbox=mailbox,
        uid=uid,
        reason=reason,
    )
    await to_staff(desk, uow, f"imap:{mailbox}:{uidvalidity}:{uid}:not-stored", text)


async def intake_failing(
    desk: Desk, uow: UnitOfWork, mailbox: str, failures: int, reason: str, since: datetime
) -> None:
    """The intake failed `failures` times in a row for another cause than the mailbox."""
    text = th(
        "email.staff_intake_failing",
        desk.settings.default_locale,
        mailbox=mailbox,
        count=failures,
        reason=reason,
    )
    await to_staff(desk, uow, f"imap:{mailbox}:failing:{since.isoformat()}", text)


async def letter_deferred(desk: Desk, uow: UnitOfWork, row: InboundEmail, reason: str) -> None:
    """A letter whose files cannot be written now: kept, retried on the next passes."""
    loc = desk.settings.default_locale
    text = th("email.staff_letter_deferred", loc, id=row.id, reason=reason)
    await to_staff(desk, uow, f"inbound:{row.id}:deferred", text)


async def limit_noted_plain(desk: Desk, uow: UnitOfWork, row: InboundEmail, sender: str) -> None:
    """As `limit_noted`, for a letter that belongs to no case."""
    loc = desk.settings.default_locale
    text = th(
        "email.staff_auto_reply_limit_plain",
        loc,
        sender=sender,
        limit=desk.settings.auto_replies_per_sender_per_hour,
    )
    await to_staff(desk, uow, f"inbound:{row.id}:limit", text)
