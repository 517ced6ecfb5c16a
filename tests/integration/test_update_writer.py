"""The Telegram update's one-call commit (storage.writer): what it writes reads back as the ORM
would have written it, a repeated update id writes nothing, a failing statement takes the whole
batch back, and on SQLite a write lock held elsewhere never makes the event loop wait."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from storage.db import session_factory
from storage.models import ConversationState, Organisation, TelegramUpdate
from storage.persistence import _state_statement, update_record
from storage.repo.contacts import eligibility_update
from storage.writer import SqliteWriter, writer_for

NOW = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)


async def _organisation(engine: AsyncEngine) -> int:
    async with session_factory(engine)() as session:
        org = Organisation(name="基准测试公司", created_at=NOW)
        session.add(org)
        await session.commit()
        assert org.id is not None
        return org.id


async def test_writes_read_back_as_the_orm_writes_them(engine: AsyncEngine) -> None:
    sessions = session_factory(engine)
    org_id = await _organisation(engine)
    writer = writer_for(engine)
    answers = {"_scheme": "hg", "licence": True, "since": "2026-01-05"}
    verdict = {"status": "eligible", "failures": []}
    dialect = engine.dialect.name
    try:
        done = await writer.run(
            update_record(sessions, 501, NOW),
            [
                eligibility_update(org_id, answers, verdict, NOW),
                _state_statement(dialect, "eligibility", "[7, 7]", "eligibility.ask"),
            ],
        )
        assert done is True
        # The same update again (a redelivery): nothing of the batch is written.
        again = await writer.run(
            update_record(sessions, 501, NOW), [eligibility_update(org_id, {}, None, None)]
        )
        assert again is False
        async with sessions() as session:
            row = await session.get(TelegramUpdate, 501)
            assert row is not None and row.received_at == NOW  # aware UTC, as stored by the ORM
            org = await session.get(Organisation, org_id)
            assert org is not None
            assert org.eligibility_answers == answers
            assert org.eligibility_verdict == verdict
            assert org.eligibility_checked_at == NOW
            states = (await session.exec(select(ConversationState))).all()
            assert [(s.name, s.key, s.state) for s in states] == [
                ("eligibility", "[7, 7]", "eligibility.ask")
            ]
        # A new state replaces the row; an ended conversation deletes it.
        await writer.run(None, [_state_statement(dialect, "eligibility", "[7, 7]", "x")])
        async with sessions() as session:
            states = (await session.exec(select(ConversationState))).all()
            assert [s.state for s in states] == ["x"]
        await writer.run(None, [_state_statement(dialect, "eligibility", "[7, 7]", None)])
        async with sessions() as session:
            assert (await session.exec(select(ConversationState))).all() == []
    finally:
        await writer.close()


async def test_a_failing_statement_takes_the_whole_batch_back(engine: AsyncEngine) -> None:
    sessions = session_factory(engine)
    writer = writer_for(engine)
    table = ConversationState.__table__  # type: ignore[attr-defined]
    broken = sa.insert(table).values(name=None, key="[1, 1]", state="x")  # name is NOT NULL
    try:
        with pytest.raises(sa.exc.IntegrityError):
            await writer.run(update_record(sessions, 777, NOW), [(broken, None)])
        async with sessions() as session:
            assert await session.get(TelegramUpdate, 777) is None
        # The writer goes on: the next batch commits.
        assert await writer.run(update_record(sessions, 778, NOW), []) is True
    finally:
        await writer.close()


async def test_a_held_write_lock_sends_the_batch_to_the_writer_thread(
    engine: AsyncEngine, backend: str
) -> None:
    if backend != "sqlite":
        pytest.skip("SQLite's write lock")
    sessions = session_factory(engine)
    writer = writer_for(engine)
    assert isinstance(writer, SqliteWriter)
    other = sqlite3.connect(writer.path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another writer holds the lock
        other.execute("INSERT INTO telegram_update (update_id, received_at) VALUES (1, 'x')")
        task = asyncio.create_task(writer.run(update_record(sessions, 900, NOW), []))
        await asyncio.sleep(0)  # one turn of the loop: the batch is tried, then handed over
        assert writer.handed_to_thread == 1
        assert not task.done()  # it waits in the writer's thread, the loop goes on
        other.execute("COMMIT")
        assert await task is True
        async with sessions() as session:
            assert await session.get(TelegramUpdate, 900) is not None
        # With the lock free again, the next batch is written on the loop's thread.
        assert await writer.run(update_record(sessions, 901, NOW), []) is True
        assert writer.handed_to_thread == 1
    finally:
        other.close()
        await writer.close()
