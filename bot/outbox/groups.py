"""Messages to Telegram groups (the staff group, any negative chat id): 20 a rolling minute.

The worker's lanes leave group rows to this pacer. Per group, each pass reads the group's last
minute of sends from the outbox itself (by a partial index on group rows), so the count holds
across restarts and a change of sending instance; claims what waits; and follows the plan of
bot.outbox.group_plan: each message as it is while the room allows, else a digest of one line
each. A row sent in a digest is marked sent with `sent_in`, the Telegram message it went in. What
waits beyond the room is due again when the next slot frees. The clock is the outbox's, so a
test moves time instead of waiting; the sender's limiter still spaces each group's sends.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import ColumnElement, and_, or_, text, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.delivery import ChatMoved, PermanentFailure, TransientFailure
from bot.delivery.messages import TelegramText
from bot.delivery.telegram_split import split
from bot.outbox import group_plan
from bot.outbox.messages import BadPayload, message_of
from bot.outbox.recording import Recorder
from messages.render import th
from storage.models import OutboxMessage

if TYPE_CHECKING:
    from bot.outbox.worker import DrainStats, Outbox

log = logging.getLogger(__name__)

TELEGRAM = TelegramText.channel.value
GROUP_CLAIM = 500  # rows a pass may merge: a flood's digest goes out part by part, oldest first
# Literal, as in the partial index's own WHERE, so the database can use that index.
IS_GROUP: ColumnElement[bool] = text("outbox_message.recipient LIKE '-%'")  # type: ignore[assignment]

# One lock per group chat per database: two workers of one process never plan the same minute.
_LOCKS: weakref.WeakKeyDictionary[object, dict[str, asyncio.Lock]] = weakref.WeakKeyDictionary()


def is_group_row(row: OutboxMessage) -> bool:
    return row.channel == TELEGRAM and row.recipient.startswith("-")


def not_group() -> ColumnElement[bool]:
    """The claim's condition for the lanes: anything but a Telegram message to a group."""
    return or_(col(OutboxMessage.channel) != TELEGRAM, ~col(OutboxMessage.recipient).like("-%"))


def item_of(row: OutboxMessage) -> group_plan.Item:
    assert row.id is not None
    try:
        content = message_of(row)
    except BadPayload:
        return group_plan.Item(row.id, None)  # sent alone: the worker fails it
    if not isinstance(content, TelegramText):
        return group_plan.Item(row.id, None)  # a document: the file itself, alone
    line = group_plan.as_line(content.text, content.html)
    parts = len(split(content.text, content.html))
    return group_plan.Item(row.id, line if group_plan.fits_a_line(line) else None, parts)


def sends_of(rows: Sequence[OutboxMessage]) -> list[datetime]:
    """One time per Telegram message these sent rows took (a digest's rows took one)."""
    times: list[datetime] = []
    digests: dict[str, datetime] = {}
    for row in rows:
        if row.sent_at is None:
            continue
        if row.sent_in is not None:
            digests[row.sent_in] = min(row.sent_at, digests.get(row.sent_in, row.sent_at))
            continue
        item = item_of(row)
        times += [row.sent_at] * item.parts
    return times + list(digests.values())


class GroupPacer:
    """The group rows of one `Outbox`: its clock, lease, sender lock and outcome paths."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        key = outbox.sender_lock
        self._locks = _LOCKS.setdefault(key, defaultdict(asyncio.Lock))

    async def run(
        self,
        refill: bool,
        stats: DrainStats,
        recorder: Recorder,
        given: list[OutboxMessage] | None = None,
    ) -> None:
        """Send what the groups may take now; with `refill`, until none of it is due."""
        if given is not None:
            chats: dict[str, list[OutboxMessage]] = {}
            for row in given:
                chats.setdefault(row.recipient, []).append(row)
            await asyncio.gather(
                *(self.pace(c, stats, recorder, rows) for c, rows in chats.items())
            )
            return
        while await self.outbox.sender_lock.held():
            due = await self.due_chats()
            if not due:
                return
            done = await asyncio.gather(*(self.pace(chat, stats, recorder) for chat in due))
            if not refill or not any(done):
                return

    async def due_chats(self) -> list[str]:
        query = select(OutboxMessage.recipient).where(self._claimable()).distinct()
        async with self.outbox.sessions() as session:
            return sorted((await session.exec(query)).all())

    def _claimable(self, chat: str | None = None) -> ColumnElement[bool]:
        box = self.outbox
        now = box.clock.now()
        due = and_(col(OutboxMessage.status) == "queued", col(OutboxMessage.next_attempt_at) <= now)
        stale = and_(
            col(OutboxMessage.status) == "sending",
            col(OutboxMessage.claimed_at) < now - box.lease.length,
        )
        where = and_(or_(due, stale), col(OutboxMessage.channel) == TELEGRAM, IS_GROUP)
        if chat is not None:
            where = and_(where, col(OutboxMessage.recipient) == chat)
        if box.lease.held:
            where = and_(where, col(OutboxMessage.id).not_in(sorted(box.lease.held)))
        return where

    async def pace(
        self,
        chat: str,
        stats: DrainStats,
        recorder: Recorder,
        given: list[OutboxMessage] | None = None,
    ) -> int:
        """One pass over one group: returns how many sends went (0: nothing could)."""
        box = self.outbox
        async with self._locks[chat]:
            now = box.clock.now()
            async with box.sessions() as session, session.begin():
                sent = await recent_sends(session, chat, now)
                room = group_plan.room(sent, now)
                if given is None:
                    if room == 0:
                        await self._defer(session, chat, group_plan.next_free(sent, now))
                        return 0
                    rows = await self._claim(session, chat, now)
                else:
                    rows = given
            box.lease.hold(rows, now)
            by_id = {row.id: row for row in rows}
            plan = group_plan.plan([item_of(r) for r in rows], room, self._header)
            for send in plan.sends:
                members = [by_id[i] for i in send.ids]
                if send.text is None:
                    await box._deliver(members[0], stats, recorder)
                else:
                    await self._digest(chat, members, send.text, stats, recorder)
                sent += [box.clock.now()] * send.cost
            if plan.later:
                await self._release(plan.later, group_plan.next_free(sent, box.clock.now()))
            return len(plan.sends)

    def _header(self, lines: int, part: int, parts: int) -> str:
        loc = self.outbox.locale
        header = th("outbox.group_digest", loc, count=lines, limit=group_plan.GROUP_LIMIT)
        if parts > 1:
            header += th("outbox.group_digest_part", loc, part=part, parts=parts)
        return header

    async def _claim(self, session: AsyncSession, chat: str, now: datetime) -> list[OutboxMessage]:
        box = self.outbox
        ids = (
            select(OutboxMessage.id)
            .where(self._claimable(chat))
            .order_by(col(OutboxMessage.id))
            .limit(GROUP_CLAIM)
            .with_for_update(skip_locked=True)
        )
        stmt = (
            update(OutboxMessage)
            .where(col(OutboxMessage.id).in_(ids.scalar_subquery()))
            .values(status="sending", claimed_by=box.worker_id, claimed_at=now)
            .returning(OutboxMessage)
            .execution_options(synchronize_session=False)
        )
        rows = list((await session.exec(stmt)).scalars().all())
        return sorted(rows, key=lambda r: r.id or 0)

    async def _defer(self, session: AsyncSession, chat: str, at: datetime) -> None:
        """No room this minute: what is due waits for the next free slot, unclaimed."""
        now = self.outbox.clock.now()
        stmt = (
            update(OutboxMessage)
            .where(
                col(OutboxMessage.status) == "queued",
                col(OutboxMessage.next_attempt_at) <= now,
                col(OutboxMessage.channel) == TELEGRAM,
                col(OutboxMessage.recipient) == chat,
            )
            .values(next_attempt_at=at)
            .execution_options(synchronize_session=False)
        )
        await session.exec(stmt)

    async def _release(self, ids: list[int], at: datetime) -> None:
        """Claimed rows that did not fit the room: queued again, due at the next free slot."""
        box = self.outbox

        async def write(session: AsyncSession) -> None:
            await session.exec(
                update(OutboxMessage)
                .where(
                    col(OutboxMessage.id).in_(ids),
                    col(OutboxMessage.status) == "sending",
                    col(OutboxMessage.claimed_by) == box.worker_id,
                )
                .values(status="queued", next_attempt_at=at)
                .execution_options(synchronize_session=False)
            )

        await box._written(write, None)
        box.lease.release(ids)

    async def _digest(
        self,
        chat: str,
        rows: list[OutboxMessage],
        text_html: str,
        stats: DrainStats,
        recorder: Recorder,
    ) -> None:
        """One digest part to the group; its rows' outcome is the part's."""
        box = self.outbox
        await box.lease.until_fresh()
        rows = [r for r in rows if r.id in box.lease.held]  # not taken over meanwhile
        sender = box.senders.get(TELEGRAM)
        if not rows or sender is None:
            for row in rows:  # no Telegram sender here: as the worker treats any such row
                await box._deliver(row, stats, recorder)
            return
        message = TelegramText(box.moved.get(chat, chat), text_html)
        try:
            try:
                external_id = await sender.send(message)
            except ChatMoved as exc:  # followed at once, as for a single message
                await box._follow(rows[0], exc.new_chat_id)
                message = TelegramText(exc.new_chat_id, text_html)
                external_id = await sender.send(message)
        except TransientFailure as exc:
            await asyncio.gather(
                *(box._retry(r, str(exc), exc.retry_after, stats, recorder) for r in rows)
            )
        except (PermanentFailure, ChatMoved) as exc:
            for row in rows:
                await box._fail(row, str(exc), stats, recorder)
        except Exception as exc:  # an unexpected bug must not wedge the queue
            log.exception("outbox: digest to %s: unexpected error", chat)
            reason = f"{type(exc).__name__}: {exc}"
            await asyncio.gather(*(box._retry(r, reason, None, stats, recorder) for r in rows))
        else:
            ids = [r.id for r in rows if r.id is not None]
            at = box.clock.now()

            async def write(session: AsyncSession) -> None:
                await session.exec(
                    update(OutboxMessage)
                    .where(col(OutboxMessage.id).in_(ids))
                    .values(status="sent", sent_at=at, sent_in=external_id)
                    .execution_options(synchronize_session=False)
                )

            await box._written(write, None)
            box.lease.release(ids)
            stats.sent += len(ids)
            stats.digested += len(ids)


async def recent_sends(session: AsyncSession, chat: str, now: datetime) -> list[datetime]:
    """The group's Telegram messages of the last minute, one time each."""
    query = select(OutboxMessage).where(
        IS_GROUP,
        col(OutboxMessage.recipient) == chat,
        col(OutboxMessage.sent_at) > now - group_plan.WINDOW,
        col(OutboxMessage.channel) == TELEGRAM,
        col(OutboxMessage.status) == "sent",
    )
    return sends_of((await session.exec(query)).all())
