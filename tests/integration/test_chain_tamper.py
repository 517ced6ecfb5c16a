"""Rewriting a case history behind the application, on both databases: `cases verify` tells.

The attacker here has the database (psql, a restored dump, a replication role) but not the
history key. Each test does one thing the old chain let through unseen.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from bot.clock import FrozenClock
from bot.config import load_settings
from bot.desk import Desk, load_calendar
from bot.domain.history import event_hash
from bot.main.cli import main
from bot.profiles import load_profile
from bot.services import cases
from bot.services.cases import Complainant
from storage.db import session_factory
from storage.models import Case, CaseEvent, CaseHead, CaseMessageId, Deadline, OutboxMessage
from storage.unit_of_work import UnitOfWork

RECEIVED_AT = datetime(2026, 9, 28, 2, 0, tzinfo=UTC)
KEY = "k" * 40


@pytest.fixture
async def desk(engine: AsyncEngine, database_url: str, data_dir: Path) -> AsyncIterator[Desk]:
    settings = load_settings(
        data_dir=data_dir,
        database_url=database_url,
        staff_chat_id=-1001,
        mail_domain="desk.example.test",
        history_hmac_key=KEY,
    )
    yield Desk(
        settings=settings,
        profile=load_profile("ggbz"),
        calendar=load_calendar(settings),
        engine=engine,
        sessions=session_factory(engine),
        clock=FrozenClock(RECEIVED_AT),
    )


async def _open(desk: Desk, name: str, extra: int = 2) -> str:
    """A case with its received and acknowledged events and `extra` further letters."""
    async with UnitOfWork(desk.sessions) as uow:
        opened = await cases.open_case(
            desk,
            uow,
            kind="complaint",
            channel="email",
            complainant=Complainant(name=name, email=f"{name.lower()}@example.cn"),
            subject=None,
            description=f"{name} 的投诉",
        )
        for i in range(extra):
            await cases.add_information(desk, uow, opened.case, "complainant", f"补充 {i}")
    return opened.ref


async def _problems(desk: Desk, ref: str | None = None) -> list[tuple[str, int, str]]:
    async with UnitOfWork(desk.sessions) as uow:
        return [(p.ref, p.seq, p.reason) for p in await cases.verify(uow, ref)]


async def _case(desk: Desk, ref: str) -> Case:
    async with desk.sessions() as s:
        return (await s.exec(select(Case).where(Case.ref == ref))).one()


async def _events(desk: Desk, ref: str) -> list[CaseEvent]:
    case = await _case(desk, ref)
    async with desk.sessions() as s:
        query = select(CaseEvent).where(CaseEvent.case_id == case.id).order_by(col(CaseEvent.seq))
        return list((await s.exec(query)).all())


async def _tamper(engine: AsyncEngine, *statements: sa.Executable) -> None:
    """Run `statements` with the append-only guard lifted, as a table owner could."""
    async with engine.begin() as conn:
        pg = conn.dialect.name == "postgresql"
        if pg:
            await conn.exec_driver_sql(
                "ALTER TABLE case_event DISABLE TRIGGER case_event_append_only"
            )
        else:
            for action in ("update", "delete"):
                await conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS case_event_no_{action}")
        for statement in statements:
            await conn.execute(statement)
        if pg:  # the PostgreSQL database is shared by the session's tests: put the guard back
            await conn.exec_driver_sql(
                "ALTER TABLE case_event ENABLE ALWAYS TRIGGER case_event_append_only"
            )


async def test_intact_histories_verify(desk: Desk, caplog: pytest.LogCaptureFixture) -> None:
    a, b = await _open(desk, "Li"), await _open(desk, "Wang")
    async with UnitOfWork(desk.sessions) as uow:
        case = (await uow.session.exec(select(Case).where(Case.ref == a))).one()
        # Every service that changes a covered field seals it: none of this is an edit.
        await cases.provide_identity(desk, uow, case, "complainant", name="李雷", email="n@x.cn")
        await cases.assign(desk, uow, case, "staff:1", "staff-9")
        await cases.reply(desk, uow, case, "staff:1", "已收到")
        await cases.withdraw(desk, uow, case, "complainant", "已解决")
    assert await _problems(desk) == []
    assert await _problems(desk, b) == []
    assert "without a history event" not in caplog.text


async def test_edited_and_rehashed_chain_fails_its_signatures(
    desk: Desk, engine: AsyncEngine
) -> None:
    ref = await _open(desk, "Li", extra=3)
    events = await _events(desk, ref)
    # Rewrite event #2 and recompute every hash after it: the chain itself checks again.
    prev = events[0].hash
    statements = []
    for ev in events[1:]:
        if ev.seq == 2:
            ev.data = {"channels": [], "message_id": None}
        ev.prev_hash = prev
        ev.hash = event_hash(ev)
        prev = ev.hash
        statements.append(
            sa.update(CaseEvent)
            .where(col(CaseEvent.id) == ev.id)
            .values(data=ev.data, prev_hash=ev.prev_hash, hash=ev.hash)
        )
    await _tamper(engine, *statements)
    assert await _problems(desk) == [(ref, 2, "mac")]


async def test_deleted_last_events_are_a_truncation(desk: Desk, engine: AsyncEngine) -> None:
    ref, other = await _open(desk, "Li", extra=3), await _open(desk, "Wang")
    events = await _events(desk, ref)
    await _tamper(
        engine, sa.delete(CaseEvent).where(col(CaseEvent.id).in_([events[-1].id, events[-2].id]))
    )
    problems = await _problems(desk)
    assert problems == [(ref, len(events) - 1, "truncated")]
    async with UnitOfWork(desk.sessions) as uow:
        found = await cases.verify(uow, ref)
    assert "2 missing" in str(found[0])
    assert await _problems(desk, other) == []

    # The next letter does not paper over it: the numbering skips what was deleted.
    case = await _case(desk, ref)
    async with UnitOfWork(desk.sessions) as uow:
        event = await cases.add_information(desk, uow, case, "complainant", "又一封")
    assert event.seq == len(events) + 1
    reasons = {reason for _, _, reason in await _problems(desk, ref)}
    assert reasons == {"noted", "seq"}


async def test_every_event_deleted_is_told_by_the_head(desk: Desk, engine: AsyncEngine) -> None:
    ref = await _open(desk, "Li")
    case = await _case(desk, ref)
    await _tamper(engine, sa.delete(CaseEvent).where(col(CaseEvent.case_id) == case.id))
    assert await _problems(desk) == [(ref, 1, "truncated")]


async def test_forged_append_lies_beyond_the_signed_head(desk: Desk, engine: AsyncEngine) -> None:
    ref = await _open(desk, "Li")
    last = (await _events(desk, ref))[-1]
    forged = CaseEvent(
        case_id=last.case_id,
        seq=last.seq + 1,
        at=last.at + timedelta(hours=1),
        actor="system",
        type="withdrawn",
        data={"note": "撤回", "closed": []},
        prev_hash=last.hash,
        case_digest=last.case_digest,
        hash="",
        mac="0" * 64,
    )
    forged.hash = event_hash(forged)
    # Inserting needs no lifted guard: the table only refuses changes.
    async with session_factory(engine)() as s, s.begin():
        s.add(forged)
    assert await _problems(desk) == [(ref, last.seq + 1, "forged")]


async def test_case_row_edited_directly_is_named_field_by_field(
    desk: Desk, engine: AsyncEngine
) -> None:
    ref, other = await _open(desk, "Li"), await _open(desk, "Wang")
    async with engine.begin() as conn:  # where staff replies go now: the attacker's address
        await conn.execute(
            sa.update(Case)
            .where(col(Case.ref) == ref)
            .values(complainant_email="attacker@evil.test", complainant_name="X")
        )
    async with UnitOfWork(desk.sessions) as uow:
        found = await cases.verify(uow)
    assert [(p.ref, p.reason) for p in found] == [(ref, "case_row")]
    assert found[0].detail == "complainant_email, complainant_name"

    # A staff reply appended afterwards does not seal the edit: it is kept on the head.
    case = await _case(desk, ref)
    async with UnitOfWork(desk.sessions) as uow:
        await cases.add_information(desk, uow, case, "complainant", "补充")
    async with UnitOfWork(desk.sessions) as uow:
        found = await cases.verify(uow)
    assert [(p.ref, p.reason) for p in found] == [(ref, "noted")]
    assert "case row edited outside the history: complainant_email, complainant_name" in str(
        found[0]
    )
    assert await _problems(desk, other) == []


async def test_head_deleted_or_edited(desk: Desk, engine: AsyncEngine) -> None:
    a, b = await _open(desk, "Li"), await _open(desk, "Wang")
    ca, cb = await _case(desk, a), await _case(desk, b)
    async with engine.begin() as conn:
        await conn.execute(sa.delete(CaseHead).where(col(CaseHead.case_id) == ca.id))
        await conn.execute(sa.update(CaseHead).where(col(CaseHead.case_id) == cb.id).values(seq=99))
    assert await _problems(desk) == [(a, 4, "checkpoint"), (b, 99, "checkpoint")]


async def test_cli_reports_and_exits_non_zero_with_json(
    desk: Desk,
    engine: AsyncEngine,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ref = await _open(desk, "Li")
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("DATA_DIR", str(desk.settings.data_dir))
    monkeypatch.setenv("HISTORY_HMAC_KEY", KEY)
    assert await asyncio.to_thread(main, ["cases", "verify", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"checked": 1, "broken": 0, "problems": []}

    async with engine.begin() as conn:
        await conn.execute(sa.update(Case).where(col(Case.ref) == ref).values(kind="appeal"))
    assert await asyncio.to_thread(main, ["cases", "verify", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["broken"] == 1
    (problem,) = report["problems"]
    assert problem["ref"] == ref and problem["reason"] == "case_row"
    assert problem["detail"] == "kind" and "edited outside the history" in problem["message"]
    assert await asyncio.to_thread(main, ["cases", "verify"]) == 1
    assert "✗" in capsys.readouterr().out

    # Another key signs nothing here: said once per case, not as a list of forgeries.
    monkeypatch.setenv("HISTORY_HMAC_KEY", "another key, 32 characters long!")
    assert await asyncio.to_thread(main, ["cases", "verify", "--json"]) == 1
    (problem,) = json.loads(capsys.readouterr().out)["problems"]
    assert problem["reason"] == "key" and "HISTORY_HMAC_KEY" in problem["message"]

    # No key at all: one line, exit 2, and no key made up on the spot.
    monkeypatch.delenv("HISTORY_HMAC_KEY")
    monkeypatch.setenv("DATA_DIR", str(desk.settings.data_dir / "elsewhere"))
    assert await asyncio.to_thread(main, ["cases", "verify"]) == 2
    assert "HISTORY_HMAC_KEY" in capsys.readouterr().err
    assert not (desk.settings.data_dir / "elsewhere").exists()


@pytest.mark.parametrize(
    "backend", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
async def test_replication_role_lifts_no_guard_and_what_it_edits_is_told(
    desk: Desk, engine: AsyncEngine
) -> None:
    """`session_replication_role = replica` skips ordinary triggers and foreign keys: the
    append-only guard holds anyway (ENABLE ALWAYS); what has no guard is told by verify."""
    a, b, c = await _open(desk, "Li"), await _open(desk, "Wang"), await _open(desk, "Zhao")
    ca, cb, cc = await _case(desk, a), await _case(desk, b), await _case(desk, c)
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        async with engine.begin() as conn:
            await conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
            await conn.execute(sa.delete(CaseEvent).where(col(CaseEvent.case_id) == ca.id))
    async with engine.begin() as conn:
        await conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
        # A's reply channel moved to Telegram, B's head rewound, C's row deleted (no FK now).
        await conn.execute(sa.update(Case).where(col(Case.id) == ca.id).values(channel="telegram"))
        await conn.execute(sa.update(CaseHead).where(col(CaseHead.case_id) == cb.id).values(seq=1))
        await conn.execute(sa.delete(Case).where(col(Case.id) == cc.id))
    assert await _problems(desk) == [
        (a, 4, "case_row"),
        (b, 1, "checkpoint"),
        (f"case id {cc.id}", 0, "case_deleted"),
    ]


async def test_stale_objects_and_kept_sessions_seal_what_the_row_holds(desk: Desk) -> None:
    """One writer holds a case loaded before another changed and sealed it (two instances):
    its append seals the row as stored, and is not taken for an edit."""
    ref = await _open(desk, "Li", extra=0)
    async with UnitOfWork(desk.sessions) as slow:
        stale = (await slow.session.exec(select(Case).where(Case.ref == ref))).one()
        await cases.add_information(desk, slow, stale, "complainant", "一")
        await slow.commit()  # the session (and its copy of the head) lives on
        held = await slow.session.get(CaseHead, stale.id)  # kept in its identity map
        async with UnitOfWork(desk.sessions) as fast:
            case = (await fast.session.exec(select(Case).where(Case.ref == ref))).one()
            await cases.assign(desk, fast, case, "staff:1", "staff-9")
        assert stale.assignee is None and held is not None and held.seq == 3
        await cases.add_information(desk, slow, stale, "complainant", "二")
    assert await _problems(desk) == []


async def test_export_of_heads_tells_a_rewound_database(
    desk: Desk,
    engine: AsyncEngine,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A database put back to an older, validly signed state (the events after a head deleted
    and that older head restored; a case deleted with everything) passes the heads: only a
    copy of the heads kept elsewhere tells it."""
    a, b = await _open(desk, "Li", extra=0), await _open(desk, "Wang")
    ca, cb = await _case(desk, a), await _case(desk, b)
    async with desk.sessions() as s:  # what someone with the database kept aside
        old = (await s.exec(select(CaseHead).where(CaseHead.case_id == ca.id))).one()
    async with UnitOfWork(desk.sessions) as uow:
        for text in ("一", "二"):
            await cases.add_information(desk, uow, await uow.session.merge(ca), "complainant", text)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("DATA_DIR", str(desk.settings.data_dir))
    monkeypatch.setenv("HISTORY_HMAC_KEY", KEY)
    exported = tmp_path / "heads.json"
    assert await asyncio.to_thread(main, ["cases", "heads", "--out", str(exported)]) == 0
    export = json.loads(exported.read_text(encoding="utf-8"))
    assert [(h["ref"], h["seq"]) for h in export["heads"]] == [(a, 4), (b, 4)]
    assert "2 heads written" in capsys.readouterr().err

    restore = {k: getattr(old, k) for k in ("seq", "head_hash", "fields", "note", "key_id", "mac")}
    await _tamper(
        engine,
        sa.delete(CaseEvent).where(col(CaseEvent.case_id) == ca.id, col(CaseEvent.seq) > 2),
        sa.update(CaseHead).where(col(CaseHead.case_id) == ca.id).values(**restore),
        *(
            sa.delete(table).where(table.case_id == cb.id)  # type: ignore[attr-defined]
            for table in (Deadline, OutboxMessage, CaseMessageId, CaseEvent, CaseHead)
        ),
        sa.delete(Case).where(col(Case.id) == cb.id),
    )
    assert await _problems(desk) == []  # consistent, and signed: the heads cannot tell
    assert await asyncio.to_thread(main, ["cases", "verify", "--heads", str(exported)]) == 1
    out = capsys.readouterr().out
    assert f"{a}: event #4 (id None): the event the export of heads names is gone" in out
    assert f"{b}: event #4 (id None): in the export of heads, now gone" in out
    assert "1 cases checked, 2 with a broken history" in out

    export["heads"][0]["seq"] = 2  # the copy itself edited to match
    exported.write_text(json.dumps(export), encoding="utf-8")
    assert await asyncio.to_thread(main, ["cases", "verify", "--heads", str(exported)]) == 2
    assert "was edited" in capsys.readouterr().err


async def test_a_covered_field_changed_without_an_event_is_logged_and_reported(
    desk: Desk, caplog: pytest.LogCaptureFixture
) -> None:
    """What the services must never do (change where replies go without recording it) is
    caught twice: an error logged at commit, and verify afterwards."""
    ref = await _open(desk, "Li", extra=0)
    async with UnitOfWork(desk.sessions) as uow:
        case = (await uow.session.exec(select(Case).where(Case.ref == ref))).one()
        case.complainant_email = "elsewhere@example.cn"
        uow.session.add(case)
    assert "complainant_email changed without a history event" in caplog.text
    assert await _problems(desk) == [(ref, 2, "case_row")]
