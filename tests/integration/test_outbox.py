"""The outbox worker: sent once, retried with backoff, failed with a staff alert."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.clock import FrozenClock
from bot.delivery import PermanentFailure, TransientFailure
from bot.outbox.messages import Outbound, TelegramText
from bot.outbox.worker import Outbox, status_counts
from storage.db import session_factory
from storage.repo.outbox import enqueue

T0 = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)


class RecordingSender:
    """A real sender's contract without a network: records, and fails on request."""

    channel = "telegram"

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.script: list[Exception] = []

    async def send(self, message: Outbound) -> str | None:
        if self.script:
            raise self.script.pop(0)
        assert isinstance(message, TelegramText)
        self.sent.append(message.text)
        return str(len(self.sent))


async def _queue(engine: AsyncEngine, key: str, recipient: str = "42") -> None:
    async with session_factory(engine)() as session, session.begin():
        await enqueue(
            session,
            channel="telegram",
            recipient=recipient,
            payload={"text": key},
            idempotency_key=key,
            now=T0,
        )


async def test_each_message_is_sent_once_even_when_queued_twice(engine: AsyncEngine) -> None:
    sender, clock = RecordingSender(), FrozenClock(T0)
    outbox = Outbox(session_factory(engine), {"telegram": sender}, clock)
    for key in ("a", "b", "a"):
        await _queue(engine, key)
    stats = await outbox.drain()
    assert sorted(sender.sent) == ["a", "b"] and stats.sent == 2
    assert (await outbox.drain()).handled == 0
    assert (await status_counts(outbox.sessions))["sent"] == 2


async def test_transient_failure_is_retried_after_retry_after(engine: AsyncEngine) -> None:
    sender, clock = RecordingSender(), FrozenClock(T0)
    sender.script = [TransientFailure("429 Too Many Requests", retry_after=7)]
    outbox = Outbox(session_factory(engine), {"telegram": sender}, clock)
    await _queue(engine, "hello")
    assert (await outbox.drain()).retried == 1
    assert (await status_counts(outbox.sessions))["retrying"] == 1
    clock.advance(seconds=6)
    assert (await outbox.drain()).handled == 0  # not before retry_after
    clock.advance(seconds=2)
    assert (await outbox.drain()).sent == 1
    assert sender.sent == ["hello"]


async def test_permanent_failure_marks_failed_and_alerts_staff(engine: AsyncEngine) -> None:
    sender, clock = RecordingSender(), FrozenClock(T0)
    sender.script = [PermanentFailure("Forbidden: bot was blocked by the user")]
    outbox = Outbox(session_factory(engine), {"telegram": sender}, clock, staff_chat_id=-100)
    await _queue(engine, "hello", recipient="42")
    await outbox.drain()
    counts = await status_counts(outbox.sessions)
    assert counts["failed"] == 1 and counts["sent"] == 1  # the staff alert went out
    assert "blocked" in sender.sent[0] and "42" in sender.sent[0]


async def test_crashed_claim_is_taken_over_once_its_lease_expires(engine: AsyncEngine) -> None:
    """A dead worker's claims wait one lease (30 s), not the 5 minutes they used to."""
    clock = FrozenClock(T0)
    dead = Outbox(session_factory(engine), {}, clock, worker_id="dead")
    for i in range(100):
        await _queue(engine, f"orphan-{i}", recipient=str(i))
    assert len(await dead.claim(100)) == 100  # claimed, then the worker "dies"
    sender = RecordingSender()
    alive = Outbox(session_factory(engine), {"telegram": sender}, clock, worker_id="alive")
    clock.advance(seconds=29)
    assert (await alive.drain()).handled == 0  # the lease still runs
    clock.advance(seconds=2)
    await alive.drain()
    assert len(sender.sent) == 100


async def test_channel_without_sender_waits_instead_of_failing(engine: AsyncEngine) -> None:
    clock = FrozenClock(T0)
    outbox = Outbox(session_factory(engine), {}, clock)
    await _queue(engine, "later")
    assert (await outbox.drain()).deferred == 1
    counts = await status_counts(outbox.sessions)
    assert counts["queued"] == 1 and counts["failed"] == 0
    clock.advance(minutes=11)
    sender = RecordingSender()
    outbox.senders = {"telegram": sender}
    await outbox.drain()
    assert sender.sent == ["later"]


class GatedSender:
    """Holds every send until `width` are in flight at once, then lets them all go; checks, at
    each send, that the previous message to the same chat is already recorded as sent."""

    channel = "telegram"

    def __init__(self, engine: AsyncEngine, width: int) -> None:
        self.engine, self.width = engine, width
        self.in_flight = self.most = 0
        self.full = asyncio.Event()
        self.sent: list[tuple[str, str]] = []
        self.unrecorded_before: list[int] = []

    async def send(self, message: Outbound) -> str | None:
        assert isinstance(message, TelegramText)
        self.unrecorded_before.append(await self._sent_not_recorded())
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        if self.in_flight >= self.width:
            self.full.set()
        await self.full.wait()
        self.in_flight -= 1
        self.sent.append((message.recipient, message.text))
        return None

    async def _sent_not_recorded(self) -> int:
        # Count what was sent before reading: other lanes keep sending while the read awaits,
        # and their sends would otherwise be compared with an older snapshot of the table.
        sent = len(self.sent)
        counts = await status_counts(session_factory(self.engine))
        return sent - counts["sent"]


async def test_chats_are_served_concurrently_each_in_order(engine: AsyncEngine) -> None:
    sender = GatedSender(engine, width=3)
    outbox = Outbox(session_factory(engine), {"telegram": sender}, FrozenClock(T0), concurrency=3)
    for i in range(4):
        for chat in ("1", "2", "3"):
            await _queue(engine, f"{chat}-{i}", recipient=chat)
    stats = await outbox.drain(limit=5)  # several claims, refilled while lanes run
    assert stats.sent == 12 and sender.most == 3
    for chat in ("1", "2", "3"):
        assert [text for c, text in sender.sent if c == chat] == [f"{chat}-{i}" for i in range(4)]
    # Exactly-once: whenever a send starts, at most one message per other lane is sent but not
    # yet recorded — what a crash at that instant could repeat. Never a batch.
    assert max(sender.unrecorded_before) <= 2
    assert (await status_counts(outbox.sessions))["sent"] == 12


async def test_drain_once_takes_one_claim_only(engine: AsyncEngine) -> None:
    sender = RecordingSender()
    outbox = Outbox(session_factory(engine), {"telegram": sender}, FrozenClock(T0))
    for i in range(5):
        await _queue(engine, f"m{i}", recipient=str(i))
    assert (await outbox.drain_once(limit=3)).sent == 3
    assert (await outbox.drain()).sent == 2


async def test_a_claim_taken_over_while_its_lease_lapsed_is_not_sent(engine: AsyncEngine) -> None:
    """A worker that could not renew its lease (stalled, cut off) finds on renewing that another
    worker took the message over: it does not send it too. Two workers never both send one."""
    clock = FrozenClock(T0)
    slow_sender, other_sender = RecordingSender(), RecordingSender()
    slow = Outbox(session_factory(engine), {"telegram": slow_sender}, clock, worker_id="slow")
    other = Outbox(session_factory(engine), {"telegram": other_sender}, clock, worker_id="other")
    await _queue(engine, "late")
    (message,) = await slow.claim(10)
    clock.advance(seconds=31)  # `slow` stalled past its lease
    assert (await other.drain()).sent == 1
    stats = await slow.deliver([message])  # its turn comes only now
    assert stats.deferred == 1 and slow_sender.sent == [] and other_sender.sent == ["late"]


async def test_a_held_claim_is_renewed_not_taken_over(engine: AsyncEngine) -> None:
    clock = FrozenClock(T0)
    sender = RecordingSender()
    slow = Outbox(session_factory(engine), {"telegram": sender}, clock, worker_id="slow")
    other = Outbox(session_factory(engine), {}, clock, worker_id="other")
    await _queue(engine, "held")
    (message,) = await slow.claim(10)
    clock.advance(seconds=20)
    assert await slow.lease.renew() == {message.id}
    clock.advance(seconds=20)  # 40 s after the claim, 20 s after the renewal
    assert await other.claim(10) == []
    assert (await slow.deliver([message])).sent == 1 and sender.sent == ["held"]
