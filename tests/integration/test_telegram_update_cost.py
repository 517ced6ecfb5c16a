"""What an eligibility answer costs the database: one commit through the writer (the update id
and the answer together), no ORM session, no pool connection on SQLite (the writer's own), one
on PostgreSQL (the Core writer's); no job armed for it and no bookkeeping left behind."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlmodel import select

from bot.desk import Desk
from bot.emulator import Emulator
from bot.main.app import CertdeskApplication
from storage.models import Organisation
from storage.persistence import engine_of
from storage.writer import Statement
from tests.fixtures.telegram_app import expect, running, start_zh


async def test_an_answer_is_one_writer_call_and_no_session(
    bot_desk: Desk, emulator: Emulator, backend: str
) -> None:
    user = emulator.user(60, "钱")
    engine = engine_of(bot_desk.sessions)
    checkouts: list[object] = []

    def checked_out(*_: Any) -> None:
        checkouts.append(object())

    async with running(bot_desk, emulator) as app:
        assert isinstance(app, CertdeskApplication) and app.writer is not None
        await start_zh(user)
        await user.press("申请资格自评")
        await expect(user, "全称")
        await user.send("成本测试有限公司")
        question = await expect(user, "1/13")
        await app.update_queue.join()
        writer_calls: list[int] = []
        run = app.writer.run

        async def counted(first: Statement | None, statements: Any) -> bool:
            writer_calls.append(len(statements) + (first is not None))
            return await run(first, statements)

        app.writer.run = counted  # type: ignore[method-assign]
        sa.event.listen(engine.sync_engine, "checkout", checked_out)
        try:
            for n, cond in ((2, "legal_person"), (3, "licences")):
                await user.press(f"el:y:{cond}", message_id=question.message_id)
                question = await expect(user, f"{n}/13")
                await app.update_queue.join()
        finally:
            sa.event.remove(engine.sync_engine, "checkout", checked_out)
        assert [j.name for j in app.job_queue.jobs()] == ["idle_flows"]  # type: ignore[union-attr]
        # PTB's notes for a persistence of user and chat data (ours keeps neither) stay empty,
        # not one entry per user ever seen.
        assert not app._user_ids_to_be_updated_in_persistence
        assert not app._chat_ids_to_be_updated_in_persistence
    # Per answer: one call with the update id and the answer (the state did not change).
    assert writer_calls == [2, 2]
    assert len(checkouts) == (0 if backend == "sqlite" else 2)
    async with bot_desk.sessions() as session:
        org = (await session.exec(select(Organisation))).one()
    assert org.eligibility_answers is not None
    assert org.eligibility_answers["legal_person"] is True
    assert org.eligibility_answers["licences"] is True
