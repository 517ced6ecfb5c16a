"""python-telegram-bot persistence that keeps conversation states — and nothing else — in the
database, so a conversation resumes where it stopped after a restart.

Business data (answers, documents, stages) lives in its own tables; user_data, chat_data,
bot_data and callback_data are not persisted at all.
"""

from __future__ import annotations

import json
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

_ABSENT = object()
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
        if self._written.get(cache_key, _ABSENT) == new_state:
            return
        table = ConversationState.__table__  # Core statements: no ORM bookkeeping per update
        async with self.sessions() as session, session.begin():
            conn = await session.connection()
            if new_state is None:
                await conn.execute(
                    sa.delete(table).where(table.c.name == name, table.c.key == cache_key[1])
                )
            else:
                insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
                stmt = insert(table).values(name=name, key=cache_key[1], state=new_state)
                stmt = stmt.on_conflict_do_update(
                    index_elements=["name", "key"], set_={"state": stmt.excluded.state}
                )
                await conn.execute(stmt)
        self._written[cache_key] = new_state

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


async def record_update(session: AsyncSession, update_id: int, now: datetime) -> bool:
    """Remember an update id; False when it was handled before (Telegram redelivered it)."""
    conn = await session.connection()
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stmt = (
        insert(TelegramUpdate.__table__)
        .values(update_id=update_id, received_at=now)
        .on_conflict_do_nothing(index_elements=["update_id"])
    )
    result = await conn.execute(stmt)
    return bool(result.rowcount)


async def forget_updates(session: AsyncSession) -> None:
    """Drop the remembered update ids: for a fresh emulator, whose ids start again from the same
    number (real Telegram's keep increasing)."""
    await session.exec(sa.delete(TelegramUpdate))
