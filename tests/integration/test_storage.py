"""Storage on both databases: migrations, round trips, unique keys, queries."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, delete, func, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.db import (
    NotMigrated,
    check_migrated,
    current_revisions,
    head_revisions,
    make_engine,
    session_factory,
    upgrade,
    upgrade_async,
)
from storage.models import (
    Case,
    CaseEvent,
    Certificate,
    Deadline,
    InboundEmail,
    OutboxMessage,
)
from storage.repo.outbox import enqueue
from tests.fixtures.db import run_isolated

T0 = datetime(2026, 9, 15, 1, 30, tzinfo=UTC)


async def test_upgrade_to_head_then_check_passes(unmigrated_database_url: str) -> None:
    await upgrade_async(unmigrated_database_url)
    await upgrade_async(unmigrated_database_url)  # a second run is a no-op
    engine = make_engine(unmigrated_database_url)
    try:
        await check_migrated(engine)
        assert await current_revisions(engine) == head_revisions()
    finally:
        await engine.dispose()


def test_blocking_upgrade_as_the_cli_calls_it(unmigrated_database_url: str) -> None:
    upgrade(unmigrated_database_url)

    async def check() -> None:
        engine = make_engine(unmigrated_database_url)
        try:
            await check_migrated(engine)
        finally:
            await engine.dispose()

    run_isolated(check)


async def test_blocking_upgrade_refuses_to_run_inside_a_loop(unmigrated_database_url: str) -> None:
    with pytest.raises(RuntimeError, match="upgrade_async"):
        upgrade(unmigrated_database_url)


async def test_unmigrated_database_is_refused_without_leaking_password(
    unmigrated_database_url: str, backend: str
) -> None:
    url = make_url(unmigrated_database_url)
    if backend == "postgres":
        url = url.set(password="s3cret-pw")  # trust auth ignores it; the message must hide it
    engine = make_engine(url)
    try:
        with pytest.raises(NotMigrated) as info:
            await check_migrated(engine)
    finally:
        await engine.dispose()
    message = str(info.value)
    assert "is not migrated: run `certdesk db upgrade`" in message
    assert url.database in message
    assert "s3cret-pw" not in message
    assert "\n" not in message
    if backend == "sqlite":  # the check must not create an empty database file
        assert not Path(url.database).exists()


async def test_unknown_revision_is_refused(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = 'ffff'"))
    with pytest.raises(NotMigrated, match="unknown to this version of certdesk"):
        await check_migrated(engine)


def _diff(conn: Connection) -> list[object]:
    mc = MigrationContext.configure(conn, opts={"compare_type": True})
    return compare_metadata(mc, SQLModel.metadata)


async def test_models_and_migrations_agree(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        assert await conn.run_sync(_diff) == []


async def test_case_with_events_round_trips(engine: AsyncEngine) -> None:
    factory = session_factory(engine)
    data = {"text": "投诉：审核员迟到，未出示证件。", "attachments": ["附件一.pdf"], "n": 3}
    async with factory() as s:
        case = Case(
            ref="TS-2026-0001",
            kind="complaint",
            channel="email",
            status="received",
            complainant_name="张三",
            complainant_email="zhang@example.cn",
            complainant_chat_id=7_000_000_001,  # beyond 32 bits
            subject="关于审核的投诉",
            description="审核员未按时到场。",
            audit_team=["李四", "王五"],
            thread_message_ids=["<a@example.cn>"],
            created_at=T0,
        )
        s.add(case)
        await s.flush()
        assert case.id is not None
        for seq, kind in enumerate(["received", "acknowledged"], start=1):
            s.add(
                CaseEvent(
                    case_id=case.id,
                    seq=seq,
                    at=T0 + timedelta(minutes=seq),
                    actor="system",
                    type=kind,
                    data=data,
                    prev_hash=None if seq == 1 else "a" * 64,
                    hash=str(seq) * 64,
                )
            )
        await s.commit()
        case_id = case.id

    async with factory() as s:
        got = await s.get(Case, case_id)
        assert got is not None
        assert got.subject == "关于审核的投诉"
        assert got.audit_team == ["李四", "王五"]
        assert got.complainant_chat_id == 7_000_000_001
        assert got.created_at == T0
        assert got.created_at.tzinfo is not None
        assert got.out_of_time is False
        events = (
            await s.exec(select(CaseEvent).where(CaseEvent.case_id == case_id).order_by("seq"))
        ).all()
        assert [e.type for e in events] == ["received", "acknowledged"]
        assert events[0].data == data
        assert events[1].at == T0 + timedelta(minutes=2)
        assert events[1].at.utcoffset() == timedelta(0)

        s.add(CaseEvent(case_id=case_id, seq=2, at=T0, actor="x", type="dup", hash="0" * 64))
        with pytest.raises(IntegrityError):
            await s.flush()
        await s.rollback()


async def test_case_events_cannot_be_changed_or_deleted(session: AsyncSession) -> None:
    case = Case(ref="TS-2", kind="appeal", channel="telegram", status="received")
    session.add(case)
    await session.flush()
    assert case.id is not None
    session.add(CaseEvent(case_id=case.id, seq=1, at=T0, actor="system", type="x", hash="1" * 64))
    await session.commit()
    for stmt in (
        update(CaseEvent).values(actor="someone else"),
        delete(CaseEvent),
    ):
        with pytest.raises(DBAPIError, match="case_event is append-only"):
            await session.exec(stmt)
        await session.rollback()


async def test_naive_datetime_is_refused(session: AsyncSession) -> None:
    session.add(
        Case(
            ref="TS-1",
            kind="appeal",
            channel="telegram",
            status="received",
            created_at=datetime(2026, 1, 1),
        )
    )
    with pytest.raises(StatementError, match="naive datetime"):
        await session.flush()


def _certificate(number: str) -> Certificate:
    return Certificate(
        number=number,
        holder="武汉某某有限公司",
        standard="GB/T 39604-2020",
        decided_on=date(2026, 1, 10),
        expires_on=date(2029, 1, 9),
        updated_at=T0,
    )


async def test_duplicate_certificate_number_is_refused(session: AsyncSession) -> None:
    session.add(_certificate("GGBZ-SR-2026-001"))
    await session.commit()
    session.add(_certificate("GGBZ-SR-2026-001"))
    with pytest.raises(IntegrityError):
        await session.commit()


def _email(uid: int, key: str) -> InboundEmail:
    return InboundEmail(
        mailbox="INBOX",
        uidvalidity=1_700_000_000,
        uid=uid,
        message_id=key,
        message_key=key,
        raw="Subject: 投诉\r\n\r\n正文".encode(),
        received_at=T0,
    )


async def test_duplicate_imap_uid_is_refused(session: AsyncSession) -> None:
    session.add(_email(7, "<1@example.cn>"))
    await session.commit()
    stored = (await session.exec(select(InboundEmail))).one()
    assert stored.raw.decode() == "Subject: 投诉\r\n\r\n正文"
    session.add(_email(7, "<2@example.cn>"))
    with pytest.raises(IntegrityError):
        await session.commit()


async def test_enqueue_twice_with_one_key_returns_the_first_row(engine: AsyncEngine) -> None:
    factory = session_factory(engine)
    async with factory() as s:
        first = await enqueue(
            s,
            channel="telegram",
            recipient="7000000001",
            payload={"text": "您的投诉已受理"},
            idempotency_key="case:1:ack",
            now=T0,
        )
        again = await enqueue(
            s,
            channel="telegram",
            recipient="7000000001",
            payload={"text": "different"},
            idempotency_key="case:1:ack",
            now=T0,
        )
        assert again.id == first.id
        await s.commit()
    async with factory() as s:  # and after commit, from another transaction
        third = await enqueue(
            s,
            channel="email",
            recipient="x@example.cn",
            payload={},
            idempotency_key="case:1:ack",
        )
        await s.commit()
        assert third.id == first.id
        assert third.payload == {"text": "您的投诉已受理"}
        assert third.status == "queued"
        assert third.next_attempt_at == T0
        count = (await s.exec(select(func.count()).select_from(OutboxMessage))).one()
        assert count == 1


async def test_open_deadlines_due_before_a_date(session: AsyncSession, backend: str) -> None:
    def deadline(rule: str, due: date, closed: bool) -> Deadline:
        return Deadline(
            rule_id=rule,
            clause="GGBZ §8.5.3",
            unit="working_days",
            count=30,
            start_on=date(2026, 9, 15),
            due_on=due,
            closed_at=T0 if closed else None,
            closed_by="staff" if closed else None,
        )

    session.add_all(
        [
            deadline("open-due", date(2026, 11, 2), closed=False),
            deadline("closed-due", date(2026, 10, 30), closed=True),
            deadline("open-later", date(2026, 12, 24), closed=False),
        ]
    )
    await session.commit()

    query = (
        select(Deadline)
        .where(Deadline.closed_at.is_(None), Deadline.due_on <= date(2026, 11, 2))
        .order_by(Deadline.due_on)
    )
    assert [d.rule_id for d in (await session.exec(query)).all()] == ["open-due"]

    # The scan can use the partial index of open deadlines.
    conn = await session.connection()
    if backend == "postgres":
        await conn.execute(text("SET LOCAL enable_seqscan = off"))
        plan = await conn.exec_driver_sql(
            "EXPLAIN SELECT * FROM deadline WHERE closed_at IS NULL AND due_on <= '2026-11-02'"
        )
    else:
        plan = await conn.exec_driver_sql(
            "EXPLAIN QUERY PLAN SELECT * FROM deadline "
            "WHERE closed_at IS NULL AND due_on <= '2026-11-02'"
        )
    assert "ix_deadline_open_due_on" in " ".join(str(row) for row in plan.all())
