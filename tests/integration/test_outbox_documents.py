"""A document through the outbox: queued as a stored-file reference, sent with sendDocument from
DATA_DIR by the worker and the real Telegram sender, to the emulator; a file gone or changed on
disk fails without sending other bytes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from bot.clock import FrozenClock
from bot.config import Settings, load_settings
from bot.delivery.telegram import TelegramSender, telegram_sender
from bot.desk import Desk
from bot.emulator import Emulator
from bot.main.desk import open_desk
from bot.outbox.messages import (
    Action,
    Letter,
    StaffNotice,
    TelegramDocument,
    enqueue,
    message_of,
)
from bot.outbox.worker import Outbox
from bot.services.staff_files import StaffFile, queue_files_for_staff
from storage.db import session_factory
from storage.files import store_bytes
from storage.models import OutboxMessage, StoredFile
from storage.repo.outbox import STAFF_LANE

T0 = datetime(2026, 9, 28, 2, 0, tzinfo=UTC)
STAFF = -100777
PDF = b"%PDF-1.7\n" + b"y" * 3000 + b"\n%%EOF\n"


@pytest.fixture
async def sender(emulator: Emulator) -> AsyncIterator[TelegramSender]:
    s = telegram_sender("123:TEST", base_url=emulator.base_url, per_second=50, group_interval=0)
    await s.bot.initialize()
    try:
        yield s
    finally:
        await s.bot.shutdown()


def _settings(database_url: str, data_dir: Path) -> Settings:
    return load_settings(data_dir=data_dir, database_url=database_url, staff_chat_id=STAFF)


def _outbox(engine: AsyncEngine, sender: TelegramSender, settings: Settings) -> Outbox:
    senders = {"telegram": sender}
    return Outbox(session_factory(engine), senders, FrozenClock(T0), settings=settings)  # type: ignore[arg-type]


async def _queue(engine: AsyncEngine, doc: TelegramDocument, key: str) -> OutboxMessage:
    async with session_factory(engine)() as s, s.begin():
        return await enqueue(s, doc, key=key, now=T0, lane=STAFF_LANE)


async def test_a_queued_document_reaches_the_chat_with_its_caption_and_buttons(
    engine: AsyncEngine,
    database_url: str,
    data_dir: Path,
    emulator: Emulator,
    sender: TelegramSender,
) -> None:
    emulator.user(9, "Staff", chat_type="supergroup", chat_id=STAFF)
    settings = _settings(database_url, data_dir)
    sha, path = store_bytes(data_dir, PDF)
    buttons = ((Action("接受", "sd:a:1"), Action("退回", "sd:r:1")),)
    doc = TelegramDocument(
        str(STAFF), path, "营业执照.pdf", "<b>营业执照</b> AP-1", buttons, sha, "application/pdf"
    )
    row = await _queue(engine, doc, "doc-1")
    assert row.payload is not None and "document" in row.payload and row.lane == STAFF_LANE
    assert len(str(row.payload)) < 500  # a reference, not the bytes
    outbox = _outbox(engine, sender, settings)
    stats = await outbox.drain()
    assert stats.sent == 1 and stats.failed == 0
    (reply,) = emulator.delivered(STAFF)
    assert reply.method == "sendDocument" and reply.file is not None
    assert reply.file.content == PDF and reply.file.file_name == "营业执照.pdf"
    assert reply.text == "营业执照 AP-1" and reply.buttons == ["接受", "退回"]
    assert reply.message["caption_entities"][0]["type"] == "bold"


async def test_a_document_gone_or_changed_on_disk_is_not_sent(
    engine: AsyncEngine,
    database_url: str,
    data_dir: Path,
    emulator: Emulator,
    sender: TelegramSender,
) -> None:
    chat = 4242
    emulator.user(chat, "Ann")
    settings = _settings(database_url, data_dir)
    sha, path = store_bytes(data_dir, PDF)
    (data_dir / path).write_bytes(b"%PDF-1.7 something else")  # changed after it was stored
    await _queue(engine, TelegramDocument(str(chat), path, "a.pdf", sha256=sha), "changed")
    gone = "files/00/00/" + "0" * 64
    await _queue(engine, TelegramDocument(str(chat), gone, "b.pdf"), "gone")
    outbox = _outbox(engine, sender, settings)
    stats = await outbox.drain()
    assert stats.sent == 0
    assert emulator.calls("sendDocument") == []
    assert any("changed on disk" in e for e in stats.errors)
    assert any("stored file missing" in e for e in stats.errors)


async def _file_alert(desk: Desk, data_dir: Path) -> list[OutboxMessage]:
    sha, path = store_bytes(data_dir, PDF)
    async with desk.sessions() as s, s.begin():
        file = StoredFile(sha256=sha, size=len(PDF), content_type="application/pdf", path=path)
        verdict = [{"text": "接受", "callback_data": "sd:a:9"}]
        view = [{"text": "查看", "callback_data": "sd:v:9"}]
        await queue_files_for_staff(
            desk, s, key="document-review:9", files=[StaffFile(file, "a.pdf", "<b>cap</b>")],
            text="<b>待审核</b>\n正文", buttons=[verdict], text_buttons=[verdict, view],
        )  # fmt: skip
    async with desk.sessions() as s:
        return list((await s.exec(select(OutboxMessage).order_by(col(OutboxMessage.id)))).all())


async def test_the_file_goes_to_the_staff_chat_and_the_text_to_the_other_staff_channels(
    database_url: str, data_dir: Path
) -> None:
    settings = _settings(database_url, data_dir).model_copy(
        update={"staff_alert_emails": ["staff@example.cn"]}
    )
    desk = await open_desk(settings, FrozenClock(T0))
    try:
        chat, mail = await _file_alert(desk, data_dir)
    finally:
        await desk.close()
    document, letter = message_of(chat), message_of(mail)
    assert isinstance(document, TelegramDocument) and document.caption == "<b>cap</b>"
    assert [a.data for row in document.actions for a in row] == ["sd:a:9"]
    assert chat.idempotency_key == "document-review:9" and chat.lane == STAFF_LANE
    assert isinstance(letter, Letter) and "正文" in letter.text and mail.lane == STAFF_LANE


async def test_without_a_staff_chat_the_text_is_kept_with_its_open_the_file_button(
    database_url: str, data_dir: Path
) -> None:
    settings = load_settings(data_dir=data_dir, database_url=database_url)
    desk = await open_desk(settings, FrozenClock(T0))
    try:
        (kept,) = await _file_alert(desk, data_dir)
    finally:
        await desk.close()
    notice = message_of(kept)
    assert isinstance(notice, StaffNotice) and "正文" in notice.text
    assert [a.data for row in notice.actions for a in row] == ["sd:a:9", "sd:v:9"]
