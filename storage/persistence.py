"""python-telegram-bot persistence that keeps conversation states — and nothing else — in the
database, so a conversation resumes where it stopped after a restart; and the record of which
Telegram updates were handled (`UpdateLog`, `record_update`).

Business data (answers, documents, stages) lives in its own tables; user_data, chat_data,
bot_data and callback_data are not persisted at all. Within an update, states are written in the
update's unit of work (storage.unit_of_work), committed with everything else the update did.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession
from telegram.ext import BasePersistence, PersistenceInput
from telegram.ext._utils.types import CDCData, ConversationDict, ConversationKey

from storage.models import ConversationState, TelegramUpdate
from storage.sql import dialect_name, table_of
from storage.unit_of_work import current

log = logging.getLogger(__name__)

_NOTHING = PersistenceInput(bot_data=False, chat_data=False, user_data=False, callback_data=False)


def _key(key: ConversationKey) -> str:
    return json.dumps(list(key))


class DatabasePersistence(BasePersistence[dict[Any, Any], dict[Any, Any], dict[Any, Any]]):
    """Conversation states in the `conversation_state` table, one row per (name, key)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], update_interval: float = 60):
        super().__init__(store_data=_NOTHING, update_interval=update_interval)
        self.sessions = sessions
        # What this process last wrote per (name, key): PTB reports a state on every update even
        # when it did not change, and one process polls Telegram at a time, so an unchanged
        # state needs no write.
        self._written: dict[tuple[str, str], object] = {}
        # PTB writes the states an update changed concurrently (asyncio.gather); one session
        # takes one statement at a time (ending one flow and starting another changes two).
        self._lock = asyncio.Lock()

    async def get_conversations(self, name: str) -> ConversationDict:
        async with self.sessions() as session:
            rows = await session.exec(
                select(ConversationState).where(ConversationState.name == name)
            )
            states = {r.key: r.state for r in rows.all()}
        self._written.update({(name, k): v for k, v in states.items()})
        return {tuple(json.loads(k)): v for k, v in states.items()}

    async def update_conversation(
        self, name: str, key: ConversationKey, new_state: object | None
    ) -> None:
        cache_key = (name, _key(key))
        # No entry means no row (all rows are read at start): an ended conversation leaves none,
        # so the bookkeeping holds the conversations under way only.
        if self._written.get(cache_key) == new_state:
            return
        stmt, params = _state_statement(_dialect(self.sessions), name, cache_key[1], new_state)

        def written() -> None:
            if new_state is None:
                self._written.pop(cache_key, None)
            else:
                self._written[cache_key] = new_state

        uow = current()
        if uow is not None:  # within an update: in its transaction
            async with self._lock:
                await uow.write(stmt, params)
            uow.after_commit(written)
            return
        async with self.sessions() as session, session.begin():
            await (await session.connection()).execute(stmt, params)
        written()

    # Nothing else is persisted: the store_data flags say so, these satisfy the interface.
    async def get_user_data(self) -> dict[int, dict[Any, Any]]:
        return {}

    async def get_chat_data(self) -> dict[int, dict[Any, Any]]:
        return {}

    async def get_bot_data(self) -> dict[Any, Any]:
        return {}

    async def get_callback_data(self) -> CDCData | None:
        return None

    async def update_user_data(self, user_id: int, data: dict[Any, Any]) -> None:
        return None

    async def update_chat_data(self, chat_id: int, data: dict[Any, Any]) -> None:
        return None

    async def update_bot_data(self, data: dict[Any, Any]) -> None:
        return None

    async def update_callback_data(self, data: CDCData) -> None:
        return None

    async def drop_chat_data(self, chat_id: int) -> None:
        return None

    async def drop_user_data(self, user_id: int) -> None:
        return None

    async def refresh_user_data(self, user_id: int, user_data: dict[Any, Any]) -> None:
        return None

    async def refresh_chat_data(self, chat_id: int, chat_data: dict[Any, Any]) -> None:
        return None

    async def refresh_bot_data(self, bot_data: dict[Any, Any]) -> None:
        return None

    async def flush(self) -> None:
        return None  # every change is written when it happens


def _dialect(where: AsyncSession | async_sessionmaker[AsyncSession]) -> str:
    if isinstance(where, AsyncSession):
        return dialect_name(where)
    return str(where.kw["bind"].dialect.name)


def engine_of(sessions: async_sessionmaker[AsyncSession]) -> Any:
    """The engine a session factory binds to (for storage.writer.writer_for)."""
    return sessions.kw["bind"]


def _insert(dialect: str) -> Any:
    return pg_insert if dialect == "postgresql" else sqlite_insert


_STATES: dict[tuple[str, bool], sa.Executable] = {}


def _state_statement(
    dialect: str, name: str, key: str, state: object | None
) -> tuple[sa.Executable, dict[str, Any]]:
    """The conversation_state write: Core, no ORM bookkeeping per update; the statements built
    once per dialect (a reused statement is compiled once: storage.writer, SQLAlchemy's cache)."""
    params: dict[str, Any] = {"s_name": name, "s_key": key}
    if (dialect, state is None) not in _STATES:
        table = table_of(ConversationState)
        if state is None:
            _STATES[dialect, True] = sa.delete(table).where(
                table.c.name == sa.bindparam("s_name"), table.c.key == sa.bindparam("s_key")
            )
        else:
            stmt = _insert(dialect)(table).values(
                name=sa.bindparam("s_name"),
                key=sa.bindparam("s_key"),
                state=sa.bindparam("s_state", type_=table.c.state.type),
            )
            _STATES[dialect, False] = stmt.on_conflict_do_update(
                index_elements=["name", "key"], set_={"state": stmt.excluded.state}
            )
    if state is not None:
        params["s_state"] = state
    return _STATES[dialect, state is None], params


_RECORDS: dict[str, sa.Executable] = {}


def _record_statement(dialect: str) -> sa.Executable:
    """The update-id record, built once per dialect (parameters `update_id`, `received_at`):
    a reused statement keeps its cache key, so SQLAlchemy does not work it out per update."""
    if dialect not in _RECORDS:
        table = table_of(TelegramUpdate)
        _RECORDS[dialect] = (
            _insert(dialect)(table)
            .values(update_id=sa.bindparam("u_id"), received_at=sa.bindparam("u_at"))
            .on_conflict_do_nothing(index_elements=["update_id"])
        )
    return _RECORDS[dialect]


def _record_params(update_id: int, now: datetime) -> dict[str, Any]:
    return {"u_id": update_id, "u_at": now}


def update_record(
    sessions: async_sessionmaker[AsyncSession], update_id: int, now: datetime
) -> tuple[sa.Executable, dict[str, Any]]:
    """The statement that records an update id (no row changed: it was recorded before), for
    `UnitOfWork.first_in_commit`."""
    return _record_statement(_dialect(sessions)), _record_params(update_id, now)


async def record_update(session: AsyncSession, update_id: int, now: datetime) -> bool:
    """Remember an update id; False when it was handled before (Telegram redelivered it)."""
    conn = await session.connection()
    result = await conn.execute(
        _record_statement(conn.dialect.name), _record_params(update_id, now)
    )
    return bool(result.rowcount)


_TU = table_of(TelegramUpdate)
_SEEN = sa.select(_TU.c.update_id).where(_TU.c.update_id == sa.bindparam("u_id"))
_MAX_SEEN = sa.select(sa.func.max(_TU.c.update_id))


async def update_seen(session: AsyncSession, update_id: int) -> bool:
    """Whether an update id was recorded (handled) before: a read, no lock taken."""
    conn = await session.connection()
    return (await conn.execute(_SEEN, {"u_id": update_id})).first() is not None


class UpdateLog:
    """Which update ids were handled, asking the database only when it has to.

    Telegram numbers updates upwards, so an id above the highest one recorded cannot have been
    recorded: only one process polls Telegram (or takes its webhook) at a time and it records
    every id it handles, so it can keep that highest id in memory, read once at start. Older
    ids (a redelivery; Telegram picks a random next id after a week without updates) are looked
    up in the table.
    """

    def __init__(self) -> None:
        self._highest: int | None = None

    async def seen(self, session: AsyncSession, update_id: int) -> bool:
        if self._highest is None:
            conn = await session.connection()
            self._highest = (await conn.execute(_MAX_SEEN)).scalar_one_or_none() or 0
        if update_id > self._highest:
            return False
        return await update_seen(session, update_id)

    def is_new(self, update_id: int) -> bool:
        """True when the id is certainly new (above the highest known), without the database;
        False means `seen` must ask."""
        return self._highest is not None and update_id > self._highest

    def recorded(self, update_id: int) -> None:
        """An id is now in the table (its transaction committed)."""
        if self._highest is not None and update_id > self._highest:
            self._highest = update_id

    def forget(self) -> None:
        """The table was emptied (forget_updates): read the highest id again."""
        self._highest = None


async def forget_updates(session: AsyncSession) -> None:
    """Drop the remembered update ids: for a fresh emulator, whose ids start again from the same
    number (real Telegram's keep increasing)."""
    await session.exec(sa.delete(TelegramUpdate))
