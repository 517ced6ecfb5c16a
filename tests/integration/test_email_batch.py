"""The intake's set-based batches: cases opened, replies joined (to a case of the database, to a
case opened by a letter of the same batch, twice to one case), and the histories they leave are
the ones `cases verify` accepts — events chained and signed, heads sealing the case rows."""

from __future__ import annotations

import os
import signal
from typing import Any

import pytest
from sqlmodel import col, select

from bot.desk import Desk
from bot.services.cases import verify
from bot.services.inbound_mail import batch_plan
from handlers.email import intake
from storage.models import Case, CaseEvent, CaseHead, InboundEmail, OutboxMessage
from storage.unit_of_work import UnitOfWork
from tests.fixtures.mail import Mailbox
from tests.integration.test_email_intake import desk, folder_count, letter  # noqa: F401

pytestmark = pytest.mark.dovecot


def reply(body: str, sender: str, message_id: str, answers: str) -> bytes:
    extra = [("In-Reply-To", answers), ("References", answers)]
    return letter("回复：补充", body, sender=sender, message_id=message_id, extra=extra)


async def test_one_batch_opens_joins_and_leaves_verified_histories(
    desk: Desk,  # noqa: F811
    mailbox: Mailbox,
) -> None:
    # A case in the database before the batch (opened by a first pass).
    mailbox.append(letter("投诉", "第一封。", sender="old@qq.com", message_id="<old@qq.com>"))
    first = await intake.run_once(desk)
    assert first.cases == 1
    # One batch: a new case, a reply to it in the same batch, a reply to the older case, a
    # second reply to the older case, and a letter from another sender.
    mailbox.append(letter("投诉", "新的投诉。", sender="new@qq.com", message_id="<new@qq.com>"))
    mailbox.append(reply("对新投诉的补充。", "new@qq.com", "<new-2@qq.com>", "<new@qq.com>"))
    mailbox.append(reply("对旧投诉的补充。", "old@qq.com", "<old-2@qq.com>", "<old@qq.com>"))
    mailbox.append(reply("再补充。", "old@qq.com", "<old-3@qq.com>", "<old-2@qq.com>"))
    mailbox.append(letter("申诉", "另一封。", sender="other@qq.com", message_id="<other@qq.com>"))
    stats = await intake.run_once(desk)
    assert (stats.cases, stats.replies, stats.quarantined) == (2, 3, 0)

    async with UnitOfWork(desk.sessions) as uow:
        s = uow.session
        rows = {r.message_id: r for r in (await s.exec(select(InboundEmail))).all()}
        assert rows["<new-2@qq.com>"].case_id == rows["<new@qq.com>"].case_id
        assert rows["<old-2@qq.com>"].case_id == rows["<old@qq.com>"].case_id
        assert rows["<old-3@qq.com>"].case_id == rows["<old@qq.com>"].case_id
        old_id = rows["<old@qq.com>"].case_id
        events = (
            await s.exec(
                select(CaseEvent).where(CaseEvent.case_id == old_id).order_by(col(CaseEvent.seq))
            )
        ).all()
        assert [e.type for e in events] == [
            "received",
            "acknowledged",
            "information_added",
            "information_added",
        ]
        head = await s.get(CaseHead, old_id)
        assert head is not None and head.seq == 4 and head.head_hash == events[-1].hash
        new = await s.get(Case, rows["<new@qq.com>"].case_id)
        assert new is not None and "<new-2@qq.com>" in (new.thread_message_ids or [])
        # Every letter acknowledged once, each reply in its thread.
        acks = (
            await s.exec(select(OutboxMessage).where(col(OutboxMessage.channel) == "email"))
        ).all()
        assert len(acks) == 6
        assert await verify(uow) == []


@pytest.mark.parametrize("alone", [False, True], ids=["batch", "alone"])
async def test_a_reference_written_only_in_the_body_files_the_letter_under_its_case(
    desk: Desk,  # noqa: F811
    mailbox: Mailbox,
    monkeypatch: pytest.MonkeyPatch,
    alone: bool,
) -> None:
    mailbox.append(letter("投诉", "第一封。", sender="old@qq.com", message_id="<old@qq.com>"))
    assert (await intake.run_once(desk)).cases == 1
    async with UnitOfWork(desk.sessions) as uow:
        ref = (await uow.session.exec(select(Case))).one().ref
    if alone:  # as a letter with files: through `act`, on its own
        monkeypatch.setattr(batch_plan, "_simple", lambda letter: False)
    # No tag in the subject, no threading headers: the reference typed in the body, as people
    # do (lower case, spaces); from the case's own address it joins, from another it does not.
    typed = ref.lower().replace("-", " ")
    body = f"您好，我的案件编号是 {typed}，现补充说明。"
    mailbox.append(letter("补充材料", body, sender="old@qq.com", message_id="<more@qq.com>"))
    mailbox.append(letter("补充材料", body, sender="else@qq.com", message_id="<else@qq.com>"))
    stats = await intake.run_once(desk)
    assert stats.replies == 1 and stats.cases == 0
    async with UnitOfWork(desk.sessions) as uow:
        rows = {r.message_id: r for r in (await uow.session.exec(select(InboundEmail))).all()}
        case = (await uow.session.exec(select(Case))).one()
        assert rows["<more@qq.com>"].case_id == case.id
        assert rows["<else@qq.com>"].case_id != case.id
        assert await verify(uow) == []


@pytest.mark.parametrize("child", ["alive", "killed"])
async def test_letters_parsed_in_the_worker_process_are_filed_as_parsed_here(
    desk: Desk,  # noqa: F811
    mailbox: Mailbox,
    child: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As the service runs the intake: chunks parsed in the desk's worker process. A child that
    # died before the pass costs nothing: its chunk is parsed in a thread, a new child after.
    in_child: list[str] = []
    run = desk.worker.run

    async def counted(fn: Any, *args: Any) -> Any:
        in_child.append(type(fn).__name__)
        return await run(fn, *args)

    monkeypatch.setattr(desk.worker, "run", counted)
    try:
        await desk.worker.start()
        first = await run(os.getpid)
        assert first != os.getpid()
        if child == "killed":
            os.kill(first, signal.SIGKILL)
        mailbox.append(letter("投诉", "新的投诉。", sender="new@qq.com", message_id="<new@qq.com>"))
        mailbox.append(reply("补充。", "new@qq.com", "<new-2@qq.com>", "<new@qq.com>"))
        other = letter("申诉", "另一封。", sender="other@qq.com", message_id="<other@qq.com>")
        mailbox.append(other)
        stats = await intake.run_once(desk)
        assert (stats.cases, stats.replies, stats.quarantined, stats.moved) == (2, 1, 0, 3)
        assert "ParseAhead" in in_child  # the chunk went to the worker
        async with UnitOfWork(desk.sessions) as uow:
            rows = {r.message_id: r for r in (await uow.session.exec(select(InboundEmail))).all()}
            assert rows["<new-2@qq.com>"].case_id == rows["<new@qq.com>"].case_id
            assert {r.from_addr for r in rows.values()} == {"new@qq.com", "other@qq.com"}
            assert await verify(uow) == []
        assert await run(os.getpid) != os.getpid()  # a child again (a new one if killed)
    finally:
        await desk.worker.close()


_REFUSE = {
    "sqlite": [
        "CREATE TRIGGER refuse_bad BEFORE INSERT ON outbox_message"
        " WHEN NEW.recipient = 'bad@qq.com' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION refuse_bad() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        " IF NEW.recipient = 'bad@qq.com' THEN RAISE EXCEPTION 'refused by the test'; END IF;"
        " RETURN NEW; END $$",
        "CREATE TRIGGER refuse_bad BEFORE INSERT ON outbox_message"
        " FOR EACH ROW EXECUTE FUNCTION refuse_bad()",
    ],
}


async def test_a_write_refused_mid_batch_undoes_the_batch_and_each_letter_goes_alone(
    desk: Desk,  # noqa: F811
    mailbox: Mailbox,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The database itself refuses one letter's acknowledgement, written while the batch's
    # other writes are still in flight: the whole batch is undone, each letter acted upon alone.
    async with desk.engine.begin() as conn:
        for sql in _REFUSE[desk.engine.dialect.name]:
            await conn.exec_driver_sql(sql)
    mailbox.append(letter("投诉", "第一封。", sender="a@qq.com", message_id="<a@qq.com>"))
    mailbox.append(letter("投诉", "拒收的。", sender="bad@qq.com", message_id="<bad@qq.com>"))
    mailbox.append(letter("申诉", "第三封。", sender="c@qq.com", message_id="<c@qq.com>"))
    mailbox.append(reply("补充。", "a@qq.com", "<a-2@qq.com>", "<a@qq.com>"))
    stats = await intake.run_once(desk)
    assert "acting on each alone" in caplog.text
    assert (stats.cases, stats.replies, stats.quarantined) == (2, 1, 1)
    assert folder_count(mailbox, "INBOX") == 0
    async with UnitOfWork(desk.sessions) as uow:
        s = uow.session
        rows = {r.message_id: r for r in (await s.exec(select(InboundEmail))).all()}
        assert rows["<bad@qq.com>"].status == "quarantined" and rows["<bad@qq.com>"].case_id is None
        assert rows["<a-2@qq.com>"].case_id == rows["<a@qq.com>"].case_id is not None
        cases = (await s.exec(select(Case))).all()
        assert sorted(c.complainant_email or "" for c in cases) == ["a@qq.com", "c@qq.com"]
        acks = (
            await s.exec(select(OutboxMessage).where(col(OutboxMessage.channel) == "email"))
        ).all()
        assert sorted(a.recipient for a in acks) == ["a@qq.com", "a@qq.com", "c@qq.com"]
        assert await verify(uow) == []
