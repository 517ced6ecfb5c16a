"""No whole-table lookups per letter, on both databases: the auto-reply limit and the
Message-ID → case lookup read by index, and old finished outbox rows are pruned daily while the
case history (GGBZ §10) stays whole and verifiable."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, func, select

from bot.clock import FrozenClock
from bot.config import load_settings
from bot.desk import Desk, load_calendar
from bot.profiles import load_profile
from bot.scheduler.scans import Scans
from bot.services import cases
from bot.services.cases import Complainant
from storage.db import session_factory
from storage.models import CaseEvent, InboundEmail, OutboxMessage
from storage.repo import cases as cases_repo
from storage.repo import inbound_email as inbound_repo
from storage.repo import outbox as outbox_repo
from storage.unit_of_work import UnitOfWork

# 2026-09-28 10:00 in Shanghai, a Monday.
T0 = datetime(2026, 9, 28, 2, 0, tzinfo=UTC)
SENDER = "zhang.wei@qq.com"


@pytest.fixture
async def desk(engine: AsyncEngine, database_url: str, data_dir: Path) -> AsyncIterator[Desk]:
    settings = load_settings(
        data_dir=data_dir,
        database_url=database_url,
        staff_chat_id=-1001,
        mail_domain="desk.example.test",
        outbox_retention_days=30,
    )
    yield Desk(
        settings=settings,
        profile=load_profile(settings.profile),
        calendar=load_calendar(settings),
        engine=engine,
        sessions=session_factory(engine),
        clock=FrozenClock(T0),
    )


async def plans_of(engine: AsyncEngine, work: Callable[[], Awaitable[Any]]) -> list[str]:
    """The query plan of every SELECT `work` runs (PostgreSQL told to avoid sequential scans,
    so a usable index is always chosen and a missing one shows as a Seq Scan)."""
    seen: list[tuple[str, Any]] = []

    def note(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, params))

    sa.event.listen(engine.sync_engine, "before_cursor_execute", note)
    try:
        await work()
    finally:
        sa.event.remove(engine.sync_engine, "before_cursor_execute", note)
    plans = []
    async with engine.connect() as conn:
        pg = engine.dialect.name == "postgresql"
        if pg:
            await conn.exec_driver_sql("SET enable_seqscan = off")
        for statement, params in seen:
            explain = "EXPLAIN " if pg else "EXPLAIN QUERY PLAN "
            rows = (await conn.exec_driver_sql(explain + statement, tuple(params))).all()
            plans.append("\n".join(str(r[-1]) for r in rows))
    assert plans, "no query ran"
    return plans


def full_scans(plans: list[str]) -> list[str]:
    """Plans that read a whole table: SQLite's bare `SCAN t`, PostgreSQL's `Seq Scan`."""
    bad = []
    for plan in plans:
        for line in plan.splitlines():
            text = line.strip()
            if "Seq Scan" in text or (text.startswith("SCAN") and "USING" not in text):
                bad.append(plan)
    return bad


async def queue_mail(
    desk: Desk, key: str, to: str, *, auto: bool, at: datetime, status: str = "queued"
) -> None:
    async with desk.sessions() as s, s.begin():
        row = await outbox_repo.enqueue(
            s,
            channel="email",
            recipient=to,
            payload={"subject": key, "text": "…", "auto_reply": auto},
            idempotency_key=key,
            now=at,
        )
        row.status = status
        s.add(row)


async def test_the_auto_reply_limit_counts_one_sender_by_index(
    desk: Desk, engine: AsyncEngine
) -> None:
    for n in range(3):
        await queue_mail(desk, f"auto{n}", "Zhang.Wei@QQ.com", auto=True, at=T0, status="sent")
    await queue_mail(desk, "by-hand", SENDER, auto=False, at=T0)  # staff wrote it: not counted
    await queue_mail(desk, "other", "li.na@163.com", auto=True, at=T0)
    await queue_mail(desk, "old", SENDER, auto=True, at=T0 - timedelta(hours=2))
    since = T0 - inbound_repo.HOUR

    async def count() -> int:
        async with desk.sessions() as s:
            return await inbound_repo.automatic_answers_since(s, SENDER, since)

    assert await count() == 3
    plans = await plans_of(engine, count)
    assert full_scans(plans) == [], plans
    assert any("ix_outbox_message_auto_reply_created" in p for p in plans), plans


async def test_a_message_id_finds_its_case_by_index_after_the_outbox_is_pruned(
    desk: Desk, engine: AsyncEngine
) -> None:
    async with UnitOfWork(desk.sessions) as uow:
        opened = await cases.open_case(
            desk,
            uow,
            kind="complaint",
            channel="email",
            subject=None,
            complainant=Complainant(name="张伟", email=SENDER),
            description="我要投诉。",
            source_message_id="<first@qq.com>",
        )
        await cases.add_information(
            desk, uow, opened.case, SENDER, "补充", (), source_message_id="<second@qq.com>"
        )
        await uow.commit()
    case_id = opened.case.id
    async with desk.sessions() as s:
        ack = (
            await s.exec(
                select(OutboxMessage.email_message_id).where(
                    OutboxMessage.case_id == case_id,
                    col(OutboxMessage.email_message_id).is_not(None),
                )
            )
        ).one()
    assert ack is not None
    # The outbox row of our acknowledgement is gone (sent long ago, pruned): still found.
    async with desk.sessions() as s, s.begin():
        await s.exec(sa.delete(OutboxMessage))  # type: ignore[call-overload]

    async def find(mid: str) -> int | None:
        async with desk.sessions() as s:
            case = await cases_repo.find_case_by_message_id(s, mid)
            return case.id if case else None

    for mid in ("<first@qq.com>", "second@qq.com", ack):
        assert await find(mid) == case_id
    assert await find("<unknown@qq.com>") is None

    plans = await plans_of(engine, lambda: find("<second@qq.com>"))
    assert full_scans(plans) == [], plans


async def test_old_finished_outbox_rows_are_pruned_and_case_history_is_kept(
    desk: Desk, engine: AsyncEngine
) -> None:
    async with UnitOfWork(desk.sessions) as uow:
        opened = await cases.open_case(
            desk,
            uow,
            kind="complaint",
            channel="email",
            subject=None,
            complainant=Complainant(name="张伟", email=SENDER),
            description="我要投诉。",
            source_message_id="<old@qq.com>",
        )
        await uow.commit()
    async with desk.sessions() as s, s.begin():
        # The case's own letters were sent 40 days ago, beyond the 30 days kept.
        await s.exec(
            sa.update(OutboxMessage).values(status="sent", created_at=T0 - timedelta(days=40))  # type: ignore[call-overload]
        )
        s.add(
            InboundEmail(
                mailbox="INBOX", message_key="k1", raw=b"x", received_at=T0 - timedelta(days=400)
            )
        )
    long_ago = T0 - timedelta(days=31)
    await queue_mail(desk, "old-sent", SENDER, auto=True, at=long_ago, status="sent")
    await queue_mail(desk, "old-cancelled", SENDER, auto=False, at=long_ago, status="cancelled")
    await queue_mail(desk, "old-failed", SENDER, auto=False, at=long_ago, status="failed")
    await queue_mail(desk, "old-queued", SENDER, auto=False, at=long_ago)  # waiting its turn
    await queue_mail(
        desk, "recent-sent", SENDER, auto=True, at=T0 - timedelta(days=29), status="sent"
    )
    async with desk.sessions() as s:
        events_before = (await s.exec(select(func.count()).select_from(CaseEvent))).one()

    scans = Scans(desk)
    stats = await scans.run_due()
    async with desk.sessions() as s:
        keys = set((await s.exec(select(OutboxMessage.idempotency_key))).all())
        events_after = (await s.exec(select(func.count()).select_from(CaseEvent))).one()
        inbound = (await s.exec(select(func.count()).select_from(InboundEmail))).one()
    assert {"old-failed", "old-queued", "recent-sent"} <= keys
    assert not keys & {"old-sent", "old-cancelled"}
    assert not any(k.startswith(f"case:{opened.ref}") for k in keys)
    assert stats.pruned >= 3
    assert events_after == events_before and inbound == 1
    async with UnitOfWork(desk.sessions) as uow:
        assert await cases.verify(uow) == []
    async with desk.sessions() as s:  # the complainant's letter still finds the case
        found = await cases_repo.find_case_by_message_id(s, "<old@qq.com>")
    assert found is not None and found.id == opened.case.id

    # Once a day: a later tick the same day prunes nothing more.
    await queue_mail(desk, "old-sent-2", SENDER, auto=True, at=long_ago, status="sent")
    assert (await scans.run_due()).pruned == 0
    assert isinstance(desk.clock, FrozenClock)
    desk.clock.advance(days=1)
    assert (await scans.run_due()).pruned == 1


async def test_a_retention_of_zero_keeps_every_row(desk: Desk) -> None:
    desk.settings.outbox_retention_days = 0
    await queue_mail(
        desk, "ancient", SENDER, auto=True, at=T0 - timedelta(days=4000), status="sent"
    )
    assert (await Scans(desk).run_due()).pruned == 0
    async with desk.sessions() as s:
        assert await outbox_repo.by_key(s, "ancient") is not None
