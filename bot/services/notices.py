"""A written notice to a complainant on the channel their case came from, through the outbox.

Used by the console's decisions and enquiry answers; the case service's own `reply` keeps its
rules (this module reuses its outbox helpers, so a notice threads like any letter of the case).
"""

from __future__ import annotations

from bot.desk import Desk
from bot.domain.refs import subject_tag
from bot.services.cases.outgoing import email_to_complainant, telegram_to_complainant
from bot.services.cases.texts import both
from messages.render import t, th
from storage.models import Case, Channel, OutboxMessage
from storage.unit_of_work import UnitOfWork


def channel_of(case: Case) -> Channel | None:
    """Where the complainant is reached: the case's channel, else the other one; None: nowhere."""
    order = [Channel(case.channel), Channel.EMAIL, Channel.TELEGRAM]
    for channel in order:
        if channel is Channel.TELEGRAM and case.complainant_chat_id is not None:
            return channel
        if channel is Channel.EMAIL and case.complainant_email:
            return channel
    return None


async def notify_complainant(
    desk: Desk, uow: UnitOfWork, case: Case, *, key: str, text_key: str, **args: object
) -> OutboxMessage | None:
    """Queue the catalog text `text_key` (in the case's language) for the complainant, once per
    `key`; None when the case has no channel to the complainant (an anonymous letter)."""
    channel = channel_of(case)
    now = desk.clock.now()
    loc = case.locale
    if channel is Channel.TELEGRAM:
        text_html = th(text_key, loc, **args)
        return await telegram_to_complainant(uow.session, case, f"{key}:telegram", text_html, now)
    if channel is Channel.EMAIL:
        plain, text_html = both(text_key, loc, **args)
        return await email_to_complainant(
            desk,
            uow.session,
            case,
            key=f"{key}:email",
            subject=t("console.notice_subject", loc, tag=subject_tag(case.ref)),
            text=plain,
            text_html=text_html,
            auto_reply=False,
            now=now,
        )
    return None


__all__ = ["channel_of", "notify_complainant"]
