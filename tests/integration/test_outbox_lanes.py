"""A flood from one sender: one staff alert with a count, and complainants served meanwhile."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from bot.clock import FrozenClock
from bot.config import load_settings
from bot.desk import Desk, load_calendar
from bot.outbox.messages import Outbound, TelegramText, enqueue
from bot.outbox.to_staff import COALESCE_WINDOW, queue_for_staff
from bot.outbox.worker import Outbox
from bot.profiles import load_profile
from bot.services import cases
from bot.services.cases import Complainant
from storage.db import session_factory
from storage.models import OutboxMessage

T0 = datetime(2026, 9, 28, 2, 0, tzinfo=UTC)
STAFF_CHAT = -1001
FLOOD = "flood@example.cn"


def _desk(engine: AsyncEngine, database_url: str, data_dir: Path, clock: FrozenClock) -> Desk:
    settings = load_settings(
        data_dir=data_dir,
        database_url=database_url,
        staff_chat_id=STAFF_CHAT,
        mail_domain="desk.example.test",
    )
    return Desk(
        settings=settings,
        profile=load_profile("ggbz"),
        calendar=load_calendar(settings),
        engine=engine,
        sessions=session_factory(engine),
        clock=clock,
    )


async def _staff_rows(desk: Desk) -> list[OutboxMessage]:
    async with desk.sessions() as s:
        query = select(OutboxMessage).where(col(OutboxMessage.recipient) == str(STAFF_CHAT))
        return list((await s.exec(query.order_by(col(OutboxMessage.id)))).all())


async def test_a_thousand_alerts_about_one_sender_are_one_alert_and_a_count(
    engine: AsyncEngine, database_url: str, data_dir: Path
) -> None:
    clock = FrozenClock(T0)
    desk = _desk(engine, database_url, data_dir, clock)
    async with desk.sessions() as s, s.begin():
        for i in range(1000):
            # Two alerts a letter (the letter, the answer limit), as the intake queues them.
            for kind in ("triage", "limit"):
                await queue_for_staff(
                    desk, s, key=f"inbound:{i}:{kind}", text=f"letter {i} {kind}", about=FLOOD
                )
            clock.advance(seconds=0.05)
        # Someone else's alert is not folded into the flood's.
        await queue_for_staff(desk, s, key="other", text="other sender", about="b@example.cn")
    rows = await _staff_rows(desk)
    print(f"\nflood: 2,000 alerts about one sender → {len(rows) - 1} staff messages")
    assert [r.payload["text"] for r in rows[:1]] == ["letter 0 triage"]
    summary = rows[1]
    assert summary.coalesced == 1999 and "1999" in summary.payload["text"]
    assert FLOOD in summary.payload["text"]
    assert summary.next_attempt_at == T0 + COALESCE_WINDOW  # one summary per window
    assert [r.payload["text"] for r in rows[2:]] == ["other sender"]
    # The same alert queued again (a redelivered update) counts nothing.
    async with desk.sessions() as s, s.begin():
        await queue_for_staff(desk, s, key="inbound:5:limit", text="again", about=FLOOD)
    assert len(await _staff_rows(desk)) == 3
    # After the window, the next one goes at once again.
    clock.advance(minutes=30)
    async with desk.sessions() as s, s.begin():
        await queue_for_staff(desk, s, key="inbound:later", text="later", about=FLOOD)
    assert (await _staff_rows(desk))[-1].payload["text"] == "later"


async def test_e_mail_complaints_flooding_from_one_address_alert_staff_once(
    engine: AsyncEngine, database_url: str, data_dir: Path
) -> None:
    clock = FrozenClock(T0)
    desk = _desk(engine, database_url, data_dir, clock)
    for i in range(30):
        async with desk.sessions() as s:
            await cases.open_case(
                desk,
                s,
                kind="complaint",
                channel="email",
                subject=f"投诉 {i}",
                complainant=Complainant(name="某人", email=FLOOD, locale="zh_CN"),
                description="审核员态度恶劣。",
            )
            await s.commit()
    rows = await _staff_rows(desk)
    assert len(rows) == 2 and rows[1].coalesced == 29


class Gate:
    """Telegram stand-in: staff sends hang until opened; complainants' go at once."""

    channel = "telegram"

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.complainant_sent = asyncio.Event()
        self.sent: list[str] = []

    async def send(self, message: Outbound) -> str | None:
        assert isinstance(message, TelegramText)
        if message.chat_id == str(STAFF_CHAT):
            await self.open.wait()
        else:
            self.complainant_sent.set()
        self.sent.append(message.chat_id)
        return None


async def test_staff_messages_never_hold_up_a_complainants_message(
    engine: AsyncEngine, database_url: str, data_dir: Path
) -> None:
    clock = FrozenClock(T0)
    desk = _desk(engine, database_url, data_dir, clock)
    async with desk.sessions() as s, s.begin():
        for i in range(300):  # queued first: a flood of staff alerts
            await queue_for_staff(desk, s, key=f"staff-{i}", text=f"alert {i}")
        clock.advance(seconds=1)
        ack = TelegramText("4242", "我们已收到您的投诉")
        await enqueue(s, ack, key="ack", now=clock.now())
    gate = Gate()
    outbox = Outbox(desk.sessions, {"telegram": gate}, clock, settings=desk.settings)
    draining = asyncio.create_task(outbox.drain())
    # The complainant's acknowledgement goes while the staff chat is still stuck on its first.
    await asyncio.wait_for(gate.complainant_sent.wait(), timeout=30)
    assert gate.sent == ["4242"]
    gate.open.set()
    stats = await asyncio.wait_for(draining, timeout=60)
    assert stats.sent == 301


async def test_rows_queued_before_lanes_existed_keep_their_defaults(engine: AsyncEngine) -> None:
    from storage.repo.outbox import enqueue as raw_enqueue

    async with session_factory(engine)() as s, s.begin():
        row = await raw_enqueue(
            s, channel="telegram", recipient="1", payload={"text": "x"}, idempotency_key="k"
        )
    assert row.lane == "main" and row.coalesced == 0 and row.coalesce_key is None
