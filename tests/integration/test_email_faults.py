"""Issue 10, items 14, 15, 16: our own mail come back without its loop header is never
answered; a letter of hundreds of files keeps a few; a full disk defers the letter whose files
cannot be written (staff told the cause), the others go through, and `email fetch --once` on a
full SQLite disk says so in one line."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlmodel import func, select

from bot.desk import Desk
from bot.main.cli import main
from handlers.email import intake
from handlers.email.mime import MAX_ATTACHMENTS
from storage.models import Case, InboundEmail, StoredFile
from tests.fixtures.mail import Mailbox
from tests.fixtures.mail_corpus import (
    base_headers,
    ew,
    file_part,
    message,
    mixed_headers,
    multipart,
    pdf_bytes,
    text_part,
)
from tests.integration import test_email_intake as base
from tests.integration.test_email_intake import DOMAIN, INBOX_ADDRESS, folder_count, letter

desk = base.desk  # the fixtures: real Dovecot, SMTP sink, the database under test
deliver = base.deliver

pytestmark = pytest.mark.dovecot


@contextlib.contextmanager
def small_disk(size: str) -> Iterator[Path]:
    """A real file system of `size` (tmpfs), to be filled up: ENOSPC as a full disk gives it."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    root = Path(tempfile.mkdtemp(prefix="certdesk-small-disk-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(root)], check=True)
    try:
        yield root
    finally:
        subprocess.run(["umount", "-l", str(root)], check=False)
        shutil.rmtree(root, ignore_errors=True)


def fill(disk: Path) -> Path:
    """Take every free byte of `disk`; the file to delete to free them again."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 4096)
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0")
    finally:
        os.close(fd)
    return filler


def with_files(subject: str, files: list[bytes], message_id: str) -> bytes:
    return message(
        [*base_headers(ew(subject, "utf-8"), message_id=message_id), mixed_headers()],
        multipart(
            "mixed",
            [
                text_part("我要投诉，证据见附件。", "utf-8"),
                *(
                    file_part(data, "application/pdf", f'filename="e{n}.pdf"')
                    for n, data in enumerate(files)
                ),
            ],
        ),
    )


async def test_our_own_mail_come_back_without_the_loop_header_is_never_answered(
    desk: Desk, mailbox: Mailbox, deliver: Callable[[], asyncio.Future[int]]
) -> None:
    # A relay stripped X-Certdesk-Loop and Auto-Submitted from our acknowledgement.
    ours = letter(
        "[TS-2026-7K3F9Q] 我们已收到您的投诉",
        "我们已收到您的投诉。",
        sender="relay@forwarder.example",
        message_id=f"<ts-2026-7k3f9q.0011223344556677@{DOMAIN}>",
    )
    from_us = letter(
        "投诉受理通知", "我们已收到您的投诉。", sender=INBOX_ADDRESS, message_id="<r@x>"
    )
    mailbox.append(ours)
    mailbox.append(from_us)
    stats = await intake.run_once(desk)
    assert stats.automatic == 2 and stats.cases == 0 and stats.enquiries == 0
    assert await deliver() == 0
    assert not await base.staff_texts(desk)


async def test_a_letter_of_hundreds_of_files_keeps_a_few_and_notes_the_rest(
    desk: Desk, mailbox: Mailbox, deliver: Callable[[], asyncio.Future[int]]
) -> None:
    files = [pdf_bytes() + f"% {n}\n".encode() for n in range(300)]
    mailbox.append(with_files("投诉材料", files, "<flood@qq.com>"))
    stats = await intake.run_once(desk)
    assert stats.cases == 1
    async with desk.sessions() as s:
        stored = (await s.exec(select(func.count()).select_from(StoredFile))).one()
        row = (await s.exec(select(InboundEmail))).one()
    assert stored == MAX_ATTACHMENTS
    assert any(p.startswith("too_many_attachments: 275") for p in row.problems or [])
    assert await deliver() == 1


async def test_a_full_disk_defers_the_letter_with_a_file_and_the_others_go_through(
    desk: Desk, mailbox: Mailbox, deliver: Callable[[], asyncio.Future[int]]
) -> None:
    with small_disk("256k") as disk:
        desk.settings.data_dir = disk
        filler = fill(disk)
        mailbox.append(letter("投诉", "第一封。", sender="a@qq.com", message_id="<a@qq.com>"))
        scan = pdf_bytes() + os.urandom(40_000)
        mailbox.append(with_files("投诉材料", [scan], "<file@qq.com>"))
        mailbox.append(letter("投诉", "第三封。", sender="c@qq.com", message_id="<c@qq.com>"))
        stats = await intake.run_once(desk)
        assert stats.cases == 2 and stats.deferred == 1 and stats.quarantined == 0
        assert folder_count(mailbox, "INBOX") == 1 and folder_count(mailbox, "Processed") == 2
        alerts = [t for t in await base.staff_texts(desk) if "附件无法保存" in t]
        assert len(alerts) == 1 and "No space left on device" in alerts[0]
        assert not any("连接" in t for t in await base.staff_texts(desk))

        again = await intake.run_once(desk)  # still full: tried again, staff not told twice
        assert again.deferred == 1 and again.cases == 0
        assert sum("附件无法保存" in t for t in await base.staff_texts(desk)) == 1

        filler.unlink()  # space again: the letter goes through whole
        done = await intake.run_once(desk)
        assert done.cases == 1 and done.deferred == 0
        assert folder_count(mailbox, "INBOX") == 0
        async with desk.sessions() as s:
            opened = (await s.exec(select(func.count()).select_from(Case))).one()
            kept = (await s.exec(select(StoredFile))).one()
        assert opened == 3 and (disk / kept.path).read_bytes() == scan
    assert await deliver() == 3


def test_email_fetch_once_on_a_full_sqlite_disk_is_one_line(
    request: pytest.FixtureRequest,
    mailbox: Mailbox,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    template: Path = request.getfixturevalue("_sqlite_template")
    size = template.stat().st_size
    with small_disk(f"{size // 1024 + 64}k") as disk:
        shutil.copyfile(template, disk / "certdesk.db")
        env = {
            "DATABASE_URL": f"sqlite+aiosqlite:///{disk / 'certdesk.db'}",
            "DATA_DIR": str(disk / "data"),
            "IMAP_HOST": mailbox.host,
            "IMAP_PORT": str(mailbox.port),
            "IMAP_SSL": "false",
            "IMAP_USER": mailbox.user,
            "IMAP_PASSWORD": mailbox.password,
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        (disk / "data").mkdir()
        fill(disk)
        mailbox.append(letter("申诉", "我公司提出申诉。" * 200, message_id="<full@qq.com>"))
        assert main(["email", "fetch", "--once"]) == 2
        captured = capsys.readouterr()
        assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
        assert "full" in captured.err and captured.err.startswith("certdesk: ")
        assert folder_count(mailbox, "INBOX") == 1  # nothing lost: the letter waits


async def test_a_huge_display_name_and_subject_keep_the_staff_message_short(
    desk: Desk, mailbox: Mailbox
) -> None:
    name = ew("王" * 5000, "utf-8")
    raw = message(
        [
            ("From", f"{name} <long@qq.com>"),
            ("To", INBOX_ADDRESS),
            ("Subject", ew("请问" * 3000, "utf-8")),
            ("Message-ID", "<long@qq.com>"),
            ("Content-Type", "text/plain; charset=utf-8"),
        ],
        "请问如何查询证书？".encode(),
    )
    mailbox.append(raw)
    stats = await intake.run_once(desk)
    assert stats.enquiries == 1
    (text,) = await base.staff_texts(desk)
    assert len(text) < 4096 and "long@qq.com" in text and "…" in text
