"""What a message that cannot be delivered leads to.

- A message to a complainant or an organisation: marked failed, and staff told on every staff
  channel (the chat, each robot, each STAFF_ALERT_EMAILS address).
- A staff message: never dropped. It stays queued, retried at most an hour apart (shown as
  retrying by `certdesk outbox status`), and sent as soon as its channel works again; the other
  staff channels are told the channel failed (once an hour per channel), and the alert itself goes
  by e-mail to ESCALATION_EMAILS (those not already getting every alert), coalesced in a flood.
- Telegram's ChatMigrated (a group became a supergroup): the new chat id is remembered and
  everything queued to the old id goes to the new one.
"""

from __future__ import annotations

import html
import random
from datetime import datetime, timedelta

from sqlalchemy import and_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.config import Settings
from bot.delivery.messages import Letter, RobotAlert, StaffNotice, decode
from bot.domain.vocabulary import Channel
from bot.outbox.staff_notice import Target, targets
from bot.outbox.to_staff import fan_out
from messages.render import th
from storage.models import ChatMigration, OutboxMessage
from storage.repo.outbox import STAFF_LANE
from storage.sql import dialect_name

STAFF_RETRY_FIRST = timedelta(minutes=2)
STAFF_RETRY_CAP = timedelta(hours=1)
ATTEMPTS_KEPT_FROM = 10  # the worker's MAX_ATTEMPTS: a kept row counts its attempts from there


def staff_backoff(attempts: int) -> timedelta:
    base = min(STAFF_RETRY_FIRST * (2 ** max(attempts - 1, 0)), STAFF_RETRY_CAP)
    return base * (0.75 + random.random() / 4)


def fallback_targets(settings: Settings) -> list[Target]:
    """ESCALATION_EMAILS addresses that do not already get every staff alert."""
    every = set(settings.staff_alert_emails)
    found = dict.fromkeys(settings.escalation_emails)
    return [Target(Channel.EMAIL, a) for a in found if a not in every]


def is_staff(message: OutboxMessage) -> bool:
    return message.lane == STAFF_LANE


def alert_html(message: OutboxMessage) -> str:
    """What a staff row says, as Telegram HTML (for its copy on another channel)."""
    try:
        content = decode(message.channel, message.recipient, message.payload or {})
    except ValueError:
        return html.escape(str(message.payload))
    if isinstance(content, RobotAlert):
        return f"<b>{html.escape(content.title)}</b>\n{html.escape(content.text)}"
    if isinstance(content, Letter):
        return f"<b>{html.escape(content.subject)}</b>\n{html.escape(content.text)}"
    return content.text


async def keep_staff_message(
    session: AsyncSession,
    settings: Settings,
    message: OutboxMessage,
    reason: str,
    attempts: int,
    now: datetime,
    *,
    first: bool,
) -> None:
    """A staff message that failed: queued again, the others told, and on its `first` failure
    a copy sent by e-mail. `attempts` counts on from the worker's last ordinary attempt."""
    kept_tries = max(attempts - ATTEMPTS_KEPT_FROM + 1, 1)
    await session.exec(
        update(OutboxMessage)
        .where(col(OutboxMessage.id) == message.id)
        .values(
            status="queued",
            attempts=attempts,
            last_error=reason[:500],
            next_attempt_at=now + staff_backoff(kept_tries),
            claimed_by=None,
        )
        .execution_options(synchronize_session=False)
    )
    failed = (message.channel, message.recipient)
    others = [t for t in targets(settings) if (t.channel.value, t.recipient) != failed]
    backup = [t for t in fallback_targets(settings) if (t.channel.value, t.recipient) != failed]
    if first:  # one copy elsewhere, coalesced with the channel's other failed alerts
        await fan_out(
            session,
            settings,
            now,
            key=f"{message.idempotency_key}:fallback",
            text=alert_html(message),
            to=backup,
            about=f"{message.channel} {message.recipient}",
            case_id=message.case_id,
        )
    loc = settings.default_locale
    text = th(
        "outbox.staff_channel_failed",
        loc,
        channel=message.channel,
        recipient=message.recipient,
        reason=reason[:200],
    )
    hour = now.strftime("%Y-%m-%dT%H")
    await fan_out(
        session,
        settings,
        now,
        key=f"staff-channel-failed:{message.channel}:{message.recipient}:{hour}",
        text=text,
        to=[*others, *backup],
    )


async def mark_failed(
    session: AsyncSession,
    settings: Settings,
    message: OutboxMessage,
    reason: str,
    attempts: int,
    now: datetime,
) -> None:
    await session.exec(
        update(OutboxMessage)
        .where(col(OutboxMessage.id) == message.id)
        .values(status="failed", attempts=attempts, last_error=reason[:500])
        .execution_options(synchronize_session=False)
    )
    await tell_staff(session, settings, message, reason, now)


async def route_kept(
    session: AsyncSession, settings: Settings, message: OutboxMessage, now: datetime
) -> None:
    """A staff message kept while no staff channel was configured: queued to the channels."""
    content = decode(message.channel, message.recipient, message.payload or {})
    assert isinstance(content, StaffNotice)
    await fan_out(
        session,
        settings,
        now,
        key=f"{message.idempotency_key}:routed",
        text=content.text,
        buttons=content.actions,
        case_id=message.case_id,
    )
    await session.exec(
        update(OutboxMessage)
        .where(col(OutboxMessage.id) == message.id)
        .values(status="sent", sent_at=now, last_error="routed to the staff channels")
        .execution_options(synchronize_session=False)
    )


async def tell_staff(
    session: AsyncSession, settings: Settings, message: OutboxMessage, reason: str, now: datetime
) -> None:
    """A complainant's (or an organisation's) message failed for good: every staff channel."""
    text = th(
        "outbox.delivery_failed",
        settings.default_locale,
        channel=message.channel,
        recipient=message.recipient,
        reason=reason[:200],
    )
    await fan_out(
        session,
        settings,
        now,
        key=f"outbox-failed:{message.id}",
        text=text,
        case_id=message.case_id,
    )


async def release_channel(
    session: AsyncSession, channel: str, recipient: str, now: datetime
) -> None:
    """A staff channel works again: its alerts waiting after failures go now."""
    await session.exec(
        update(OutboxMessage)
        .where(
            and_(
                col(OutboxMessage.lane) == STAFF_LANE,
                col(OutboxMessage.channel) == channel,
                col(OutboxMessage.recipient) == recipient,
                col(OutboxMessage.status) == "queued",
                col(OutboxMessage.attempts) > 0,
                col(OutboxMessage.next_attempt_at) > now,
            )
        )
        .values(next_attempt_at=now)
        .execution_options(synchronize_session=False)
    )


async def migrated_chats(session: AsyncSession) -> dict[str, str]:
    rows = (await session.exec(select(ChatMigration))).all()
    return {row.old_chat_id: row.new_chat_id for row in rows}


async def follow_migration(
    session: AsyncSession, message: OutboxMessage, new_chat_id: str, now: datetime
) -> None:
    """Remember old → new; everything queued to the old chat (this message too) is the new's."""
    insert = pg_insert if dialect_name(session) == "postgresql" else sqlite_insert
    values = {"old_chat_id": message.recipient, "new_chat_id": new_chat_id, "migrated_at": now}
    await session.exec(
        insert(ChatMigration)
        .values(**values)
        .on_conflict_do_update(index_elements=["old_chat_id"], set_={"new_chat_id": new_chat_id})
    )
    await session.exec(
        update(OutboxMessage)
        .where(
            and_(
                col(OutboxMessage.channel) == Channel.TELEGRAM.value,
                col(OutboxMessage.recipient) == message.recipient,
                col(OutboxMessage.status).in_(["queued", "sending"]),
            )
        )
        .values(recipient=new_chat_id)
        .execution_options(synchronize_session=False)
    )
