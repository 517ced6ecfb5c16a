"""The one way to queue a message for staff: one outbox row per configured staff channel.

Alerts `about` one sender (their letters, their cases) are coalesced per staff channel: the first
goes at once, every further one within `COALESCE_WINDOW` is counted into one summary row sent at
the window's end — 1,000 letters from one address are two staff messages, not 2,000.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping
from datetime import datetime, timedelta

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.config import Settings
from bot.delivery.messages import encode
from bot.desk import Desk
from bot.outbox.console_links import console_link
from bot.outbox.messages import Action, Actions, Outbound, StaffNotice, actions, enqueue
from bot.outbox.staff_notice import UNROUTED, Target, render, targets
from messages.render import th
from storage.models import OutboxMessage
from storage.repo import outbox as repo

log = logging.getLogger(__name__)

Buttons = Iterable[Iterable[Mapping[str, str] | Action]]
COALESCE_WINDOW = timedelta(minutes=10)
STAFF = repo.STAFF_LANE

__all__ = ["COALESCE_WINDOW", "UNROUTED", "Buttons", "fan_out", "queue_for_staff"]


async def queue_for_staff(
    desk: Desk,
    session: AsyncSession,
    *,
    key: str,
    text: str,
    buttons: Buttons | None = None,
    case_id: int | None = None,
    about: str | None = None,
) -> OutboxMessage | None:
    """Queue an HTML text (with inline buttons on Telegram) for every staff channel, once per
    `key`: the staff chat, each group robot, each STAFF_ALERT_EMAILS address. One row per channel,
    each with its own key, so a failing channel holds up none of the others. Returns the first
    row (the staff chat's when there is one). Every row is on the staff lane. `about`: the
    sender the alert is about (an address, a chat), for coalescing a flood.

    With no staff channel the message is still stored, on the `staff` channel: it stays queued
    (shown by `certdesk outbox status`) and goes out once a staff channel is configured.
    """
    return await fan_out(
        session,
        desk.settings,
        desk.clock.now(),
        key=key,
        text=text,
        buttons=actions(buttons),
        case_id=case_id,
        about=about,
    )


async def fan_out(
    session: AsyncSession,
    settings: Settings,
    now: datetime,
    *,
    key: str,
    text: str,
    buttons: Actions = (),
    case_id: int | None = None,
    about: str | None = None,
    to: Collection[Target] | None = None,
) -> OutboxMessage | None:
    """`queue_for_staff` without a desk: to `to` (default: every configured staff channel)."""
    found = list(targets(settings) if to is None else to)
    if not found:
        if to is not None:
            return None  # asked for some channels, and there are none left
        log.info("no staff channel configured: staff message %s kept on the staff channel", key)
        notice = StaffNotice(text, buttons)
        return await enqueue(session, notice, key=key, case_id=case_id, now=now, lane=STAFF)
    link = await console_link(settings, session, key, case_id)  # its page, with CONSOLE_BASE_URL
    rows = []
    for target in found:
        message = render(target, settings, text, buttons, link)
        if about is None:
            row = await enqueue(
                session, message, key=target.key(key), case_id=case_id, now=now, lane=STAFF
            )
        else:
            row = await _coalesced(session, settings, target, message, key, about, case_id, now)
        rows.append(row)
    return rows[0]


async def _coalesced(
    session: AsyncSession,
    settings: Settings,
    target: Target,
    message: Outbound,
    key: str,
    about: str,
    case_id: int | None,
    now: datetime,
) -> OutboxMessage:
    row_key = target.key(key)
    existing = await repo.by_key(session, row_key)
    if existing is not None:  # the same alert again (a redelivered update): nothing new
        return existing
    group = f"about:{about}:{target.channel.value}:{target.recipient}"
    latest = await repo.latest_in_group(session, group, now - COALESCE_WINDOW)
    if latest is None:  # the first in a while: at once
        return await _add(session, message, row_key, case_id, now, group=group)

    def summary(count: int) -> dict[str, object]:
        text = th("outbox.staff_more_about", settings.default_locale, about=about, count=count)
        return encode(render(target, settings, text))[2]

    if latest.coalesced > 0 and latest.status == "queued" and latest.id is not None:
        await repo.count_in(session, latest.id, summary)
        return latest
    # The first went (or is going): the next ones are counted into one summary, due when the
    # window since the previous message of the group closes.
    channel, recipient, _ = encode(message)
    row = await repo.enqueue(
        session,
        channel=channel,
        recipient=recipient,
        payload=summary(1),
        idempotency_key=f"{group}:more:{now.isoformat()}",
        not_before=max(now, latest.next_attempt_at + COALESCE_WINDOW),
        now=now,
        lane=STAFF,
        coalesce_key=group,
    )
    if row.id is not None:
        await repo.count_in(session, row.id, summary)
    return row


async def _add(
    session: AsyncSession,
    message: Outbound,
    key: str,
    case_id: int | None,
    now: datetime,
    *,
    group: str,
) -> OutboxMessage:
    channel, recipient, payload = encode(message)
    return await repo.enqueue(
        session,
        channel=channel,
        recipient=recipient,
        payload=payload,
        idempotency_key=key,
        case_id=case_id,
        now=now,
        lane=STAFF,
        coalesce_key=group,
    )
