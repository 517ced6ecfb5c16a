"""What a case sends, queued in the outbox: to the complainant (Telegram or a threaded letter)
and to staff."""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.desk import Desk
from bot.outbox.messages import Letter, TelegramText, enqueue
from bot.outbox.to_staff import queue_for_staff
from bot.services.cases.texts import Buttons, email_html
from storage.models import Case, Channel, OutboxMessage
from storage.repo import cases as cases_repo


def new_message_id(desk: Desk, ref: str) -> str:
    """A Message-ID for a letter about the case, `<ref.rnd@MAIL_DOMAIN>`."""
    return f"<{ref.lower()}.{secrets.token_hex(8)}@{desk.settings.mail_domain}>"


def staff_locale(desk: Desk) -> str:
    return desk.settings.default_locale


async def to_staff(
    desk: Desk,
    session: AsyncSession,
    case: Case,
    key: str,
    text: str,
    buttons: Buttons | None = None,
    about: str | None = None,
) -> OutboxMessage | None:
    """`about`: who the alert is about (an address), so a flood from one is coalesced."""
    return await queue_for_staff(
        desk, session, key=key, text=text, buttons=buttons, case_id=case.id, about=about
    )


async def telegram_to_complainant(
    session: AsyncSession, case: Case, key: str, text_html: str, now: datetime
) -> OutboxMessage:
    assert case.complainant_chat_id is not None
    message = TelegramText(str(case.complainant_chat_id), text_html)
    return await enqueue(session, message, key=key, case_id=case.id, now=now)


async def email_to_complainant(
    desk: Desk,
    session: AsyncSession,
    case: Case,
    *,
    key: str,
    subject: str,
    text: str,
    text_html: str,
    auto_reply: bool,
    now: datetime,
    message_id: str | None = None,
) -> OutboxMessage:
    """A letter in the case's thread: answers the latest message of it, under a new Message-ID."""
    assert case.complainant_email is not None
    thread = list(case.thread_message_ids or [])
    message_id = message_id or new_message_id(desk, case.ref)
    letter = Letter(
        to=case.complainant_email,
        subject=subject,
        text=text,
        html=email_html(text_html),
        locale=case.locale,
        in_reply_to=thread[-1] if thread else None,
        references=tuple(thread),
        auto_reply=auto_reply,
        case_ref=case.ref,
        message_id=message_id,
    )
    row = await enqueue(session, letter, key=key, case_id=case.id, now=now)
    # Recorded before sending, so a reply or a bounce to it finds the case at once.
    row.email_message_id = message_id
    session.add(row)
    await cases_repo.add_message_id(session, case, message_id)
    return row


def complainant_channel(case: Case) -> Channel | None:
    """The channel the case came from, else the other one the complainant can be reached on."""
    reachable = {
        Channel.TELEGRAM: case.complainant_chat_id is not None,
        Channel.EMAIL: bool(case.complainant_email),
    }
    preferred = Channel(case.channel)
    if reachable.get(preferred):
        return preferred
    return next((channel for channel, ok in reachable.items() if ok), None)


async def letter_to_complainant(
    desk: Desk,
    session: AsyncSession,
    case: Case,
    *,
    key: str,
    subject: str,
    text: str,
    text_html: str,
    now: datetime,
) -> OutboxMessage | None:
    """A written notice on the complainant's channel; None when they gave none (anonymous)."""
    channel = complainant_channel(case)
    if channel is Channel.TELEGRAM:
        return await telegram_to_complainant(session, case, f"{key}:telegram", text_html, now)
    if channel is Channel.EMAIL:
        return await email_to_complainant(
            desk,
            session,
            case,
            key=f"{key}:email",
            subject=subject,
            text=text,
            text_html=text_html,
            auto_reply=False,
            now=now,
        )
    return None
