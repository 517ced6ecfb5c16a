"""Issue 10, items 1 and 2 and `certdesk email log`: only the very same letter is a duplicate,
every other letter is stored and handled, and one letter the database chokes on (a huge or
broken Message-ID) never stops the others, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import DataError
from sqlmodel import col, select

from bot.desk import Desk
from bot.main.cli import main
from bot.services.inbound_mail import letter_log
from handlers.email import intake
from storage.models import Case
from storage.repo import bulk
from storage.repo import inbound_email as inbound_repo
from storage.unit_of_work import UnitOfWork
from tests.fixtures.mail import Mailbox, SmtpSink
from tests.fixtures.mail_corpus import base_headers, ew, message
from tests.integration import test_email_intake as base
from tests.integration.test_email_intake import folder_count, letter

desk = base.desk  # the fixtures: real Dovecot, SMTP sink, the database under test
deliver = base.deliver

pytestmark = pytest.mark.dovecot


async def log(desk: Desk) -> list[dict[str, Any]]:
    async with UnitOfWork(desk.sessions) as uow:
        return [entry.to_json() for entry in await letter_log(uow)]


async def cases(desk: Desk) -> list[Case]:
    async with desk.sessions() as s:
        return list((await s.exec(select(Case).order_by(col(Case.id)))).all())


async def test_a_reused_message_id_from_another_sender_is_a_letter_of_its_own(
    desk: Desk, mailbox: Mailbox, deliver: Callable[[], asyncio.Future[int]]
) -> None:
    mailbox.append(letter("投诉", "审核员态度恶劣。", message_id="<same@qq.com>"))
    mailbox.append(
        letter("申诉", "我公司提出申诉。", sender="li@163.com", message_id="<same@qq.com>")
    )
    stats = await intake.run_once(desk)
    assert stats.cases == 2 and stats.duplicates == 0
    opened = await cases(desk)
    assert sorted(c.complainant_email or "" for c in opened) == ["li@163.com", "zhang.wei@qq.com"]
    assert await deliver() == 2  # both senders are acknowledged
    assert folder_count(mailbox, "INBOX") == 0 and folder_count(mailbox, "Processed") == 2


async def test_letters_without_message_id_and_with_the_same_headers_are_both_handled(
    desk: Desk, mailbox: Mailbox, deliver: Callable[[], asyncio.Future[int]]
) -> None:
    headers = [*base_headers("appeal", message_id=None), ("Content-Type", "text/plain")]
    mailbox.append(message(headers, b"I appeal against the decision of March."))
    mailbox.append(message(headers, b"I appeal against the suspension of our certificate."))
    stats = await intake.run_once(desk)
    assert stats.cases == 2 and stats.duplicates == 0
    texts = sorted(c.description or "" for c in await cases(desk))
    assert "March" in texts[0] and "suspension" in texts[1]
    assert await deliver() == 2


async def test_only_the_very_same_bytes_are_a_duplicate_and_the_log_shows_it(
    desk: Desk, mailbox: Mailbox
) -> None:
    raw = letter("投诉", "我要投诉。", message_id="<twice@qq.com>")
    first = mailbox.append(raw)
    again = mailbox.append(raw)
    other = mailbox.append(letter("请问", "请问如何查询证书？", message_id="<twice@qq.com>"))
    stats = await intake.run_once(desk)
    assert stats.cases == 1 and stats.duplicates == 1 and stats.enquiries == 1
    rows = {row["uid"]: row for row in await log(desk)}
    assert set(rows) == {first, again, other}
    ref = (await cases(desk))[0].ref
    assert rows[first]["disposition"] == "case" and rows[first]["case_ref"] == ref
    assert rows[again]["disposition"] == "duplicate" and rows[again]["case_ref"] == ref
    assert rows[other]["disposition"] == "enquiry" and rows[other]["case_ref"] is None
    for row in rows.values():
        assert row["message_id"] == "<twice@qq.com>" and row["from"] == "zhang.wei@qq.com"
        assert row["mailbox"].endswith("/INBOX") and row["received_at"].startswith("2026-09-28T")
        assert isinstance(row["problems"], list)
    assert rows[first]["subject"] == "投诉"
    # A second pass: nothing is seen twice more.
    again_stats = await intake.run_once(desk)
    assert again_stats.handled == 0 and again_stats.duplicates == 0
    assert len(await log(desk)) == 3


def test_email_log_command_prints_one_row_per_letter(
    database_url: str,
    data_dir: Path,
    mailbox: Mailbox,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = {
        "DATABASE_URL": database_url,
        "DATA_DIR": str(data_dir),
        "IMAP_HOST": mailbox.host,
        "IMAP_PORT": str(mailbox.port),
        "IMAP_SSL": "false",
        "IMAP_USER": mailbox.user,
        "IMAP_PASSWORD": mailbox.password,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    raw = letter("申诉", "我公司提出申诉。", message_id="<cli-log@qq.com>")
    mailbox.append(raw)
    mailbox.append(raw)
    mailbox.append(b"\x00\xff\xfe garbage\r\nno headers here\r\n\xff\xff")
    assert main(["email", "fetch", "--once"]) == 0
    capsys.readouterr()
    assert main(["email", "log", "--json"]) == 0
    out = capsys.readouterr().out
    out.encode("utf-8")
    rows = json.loads(out)
    assert [r["disposition"] for r in rows] == ["case", "duplicate", "quarantined"]
    assert rows[0]["case_ref"] and rows[0]["case_ref"] == rows[1]["case_ref"]
    assert {"uid", "mailbox", "message_id", "from", "subject", "received_at"} <= set(rows[0])
    assert rows[2]["problems"] and rows[2]["from"] is None
    assert main(["email", "log"]) == 0
    text = capsys.readouterr().out
    assert "duplicate" in text and "3 letters" in text


def with_message_id(value: bytes, body: str, sender: str = "zhang.wei@qq.com") -> bytes:
    headers = [*base_headers(ew("投诉", "utf-8"), sender=sender, message_id=None)]
    headers += [("Message-ID", value), ("Content-Type", "text/plain; charset=utf-8")]
    return message(headers, body.encode())


async def test_huge_and_broken_message_ids_never_stop_the_intake(
    desk: Desk, mailbox: Mailbox, smtp_server: SmtpSink, deliver: Callable[[], asyncio.Future[int]]
) -> None:
    huge = b"<" + b"x" * 3000 + b"@qq.com>"  # over PostgreSQL's btree limit of ~2.7 KB
    mailbox.append(with_message_id(huge, "我要投诉一，审核员迟到。"))
    mailbox.append(with_message_id(b"<nul\x00id@qq.com>", "我要投诉二。", "a@qq.com"))
    mailbox.append(with_message_id(b"<high\x80\xffid@qq.com>", "我要投诉三。", "b@qq.com"))
    mailbox.append(letter("投诉", "我要投诉四。", sender="c@qq.com", message_id="<ok@qq.com>"))
    stats = await intake.run_once(desk)
    assert stats.cases == 4 and stats.quarantined == 0 and stats.not_stored == 0
    assert folder_count(mailbox, "INBOX") == 0 and folder_count(mailbox, "Processed") == 4
    rows = await log(desk)
    assert [r["disposition"] for r in rows] == ["case"] * 4
    ids = [r["message_id"] for r in rows]
    assert ids[0] == huge.decode() and "\x00" not in ids[1] and "\ufffd" in ids[2]
    assert any("message_id_too_long" in p for p in rows[0]["problems"])
    # Everyone is acknowledged; the huge id is not put into a header line of ours.
    assert await deliver() == 4
    sent = await smtp_server.wait_for(4)
    assert all(max(len(line) for line in m.content.split(b"\r\n")) <= 998 for m in sent)
    assert not any("连接" in text for text in await base.staff_texts(desk))


async def test_a_letter_the_database_refuses_is_retried_alone_and_staff_told_why(
    desk: Desk, mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Fault injection: the database refuses the first insert of one letter, or every insert.
    real = inbound_repo.store_raw
    refused: dict[str, int] = {"<once@qq.com>": 1, "<never@qq.com>": 99}

    async def store_raw(session: Any, **values: Any) -> Any:
        mid = values["message_id"]
        if refused.get(mid, 0) > 0 or (mid is None and refused["<never@qq.com>"] > 50):
            if mid is not None:
                refused[mid] -= 1
            if mid is not None or b"never" in values["raw"]:
                orig = Exception("value too long for type character varying(3)")
                raise DataError("INSERT …", {"secret": "张伟"}, orig)
        return await real(session, **values)

    real_all = bulk.insert_new

    async def insert_new(session: Any, table: Any, rows: Any, key: str) -> Any:
        # The letters are stored together first: one refused letter fails them all, and then
        # each is stored alone (store_raw above).
        if any(refused.get(row["message_id"], 0) > 0 for row in rows):
            orig = Exception("value too long for type character varying(3)")
            raise DataError("INSERT …", {"secret": "张伟"}, orig)
        return await real_all(session, table, rows, key)

    monkeypatch.setattr(inbound_repo, "store_raw", store_raw)
    monkeypatch.setattr(bulk, "insert_new", insert_new)
    for name in ("before", "once", "never", "after"):
        mailbox.append(letter("投诉", f"我要投诉{name}。", message_id=f"<{name}@qq.com>"))
    stats = await intake.run_once(desk)
    assert stats.cases == 3 and stats.not_stored == 1
    assert folder_count(mailbox, "INBOX") == 1 and folder_count(mailbox, "Processed") == 3
    rows = {r["message_id"]: r for r in await log(desk)}
    assert set(rows) == {"<before@qq.com>", "<once@qq.com>", "<after@qq.com>"}
    assert any(p.startswith("store_failed") for p in rows["<once@qq.com>"]["problems"])
    (alert,) = [t for t in await base.staff_texts(desk) if "UID" in t]
    assert "value too long" in alert and "张伟" not in alert and "连接" not in alert


async def test_a_mixed_flood_loses_no_letter_and_takes_only_exact_copies_as_duplicates(
    desk: Desk, mailbox: Mailbox
) -> None:
    desk.settings.auto_replies_per_sender_per_hour = 1000
    letters: list[bytes] = []
    for n in range(40):  # one Message-ID, forty senders and bodies
        letters.append(
            letter("投诉", f"第{n}封投诉。", sender=f"s{n}@qq.com", message_id="<reused@qq.com>")
        )
    headers = [*base_headers("complaint", message_id=None), ("Content-Type", "text/plain")]
    letters += [message(headers, f"complaint number {n}".encode()) for n in range(40)]
    letters += [
        with_message_id(b"<" + b"h" * (3000 + n) + b"@qq.com>", f"投诉{n}") for n in range(5)
    ]
    letters += [
        with_message_id(f"<n{n}\x00\x80@qq.com>".encode("latin-1"), "投诉") for n in range(5)
    ]
    copies = letters[::9]  # the very same bytes delivered again
    for raw in letters + copies:
        mailbox.append(raw)
    stats = await intake.run_once(desk)
    assert stats.duplicates == len(copies) and stats.not_stored == 0
    assert stats.cases == len(letters) and stats.quarantined == 0
    rows = await log(desk)
    assert len(rows) == len(letters) + len(copies)
    assert sum(r["disposition"] == "duplicate" for r in rows) == len(copies)
    assert folder_count(mailbox, "INBOX") == 0
