"""Application documents end to end: checklist, uploads checked on the bytes, staff review from
the staff chat (one item rejected and replaced), notices through the outbox, stage and status."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from sqlmodel import select
from telegram.ext import Application as TelegramApp

from bot.delivery.telegram import TelegramSender
from bot.delivery.telegram_pace import RateLimiter
from bot.desk import Desk
from bot.emulator import Emulator, FakeUser
from bot.outbox.worker import Outbox
from storage.models import Application, Document, StoredFile
from tests.fixtures.telegram_app import STAFF_CHAT, STAFF_ID, expect, running, start_en, start_zh

PDF = b"%PDF-1.7\n" + b"x" * 2000 + b"\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10" + b"\x00" * 100
EXE = b"MZ\x90\x00\x03\x00\x00\x00" + b"\x00" * 500  # a Windows executable


def docx() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", "<w:document/>")
    return buf.getvalue()


def outbox_for(desk: Desk, app: TelegramApp) -> Outbox:
    """The real outbox worker and Telegram sender, through the running app's bot."""
    sender = TelegramSender(app.bot, RateLimiter(1000, private_interval=0, group_interval=0))
    # The desk's settings: the staff chat, and DATA_DIR the documents are sent from.
    return Outbox(desk.sessions, {"telegram": sender}, desk.clock, settings=desk.settings)


async def upload(
    user: FakeUser, number: int, content: bytes, name: str, mime: str, **kw: int
) -> None:
    await user.press(f"dc:{ITEMS[number - 1]}")
    await expect(user, "upload" if user.user.get("language_code") == "en" else "请上传")
    await user.upload(content, name, mime, **kw)


ITEMS = [
    "application_form",
    "legal_status",
    "licences",
    "org_chart",
    "process_flow",
    "running_evidence",
    "penalties_spot_checks",
    "system_documents",
]


async def test_checklist_upload_review_replace_until_under_review(
    bot_desk: Desk, emulator: Emulator, data_dir: Path
) -> None:
    user = emulator.user(60, "Ann", language_code="en")
    staff = emulator.user(STAFF_ID, "Mei", chat_type="supergroup", chat_id=STAFF_CHAT)
    intruder = emulator.user(61, "Eve", chat_type="supergroup", chat_id=STAFF_CHAT)
    async with running(bot_desk, emulator) as app:
        outbox = outbox_for(bot_desk, app)
        await start_en(user)
        await user.send("/status")
        await expect(user, "no application yet")
        await user.press("Application documents")
        await expect(user, "full name")
        await user.send("Acme <Ltd>")
        # Opening the checklist creates nothing: the applicant sees what is needed, then starts.
        offer = await expect(user, "needs these documents", "Start the application")
        assert "1. Signed application form" in offer.text and "Acme &lt;Ltd&gt;" not in offer.text
        async with bot_desk.sessions() as session:
            assert (await session.exec(select(Application))).all() == []
        await user.send("/status")
        await expect(user, "no application yet")
        await user.send("/documents")
        await expect(user, "Start the application")
        await user.press("📝 Start the application")
        await expect(user, "application has been opened")
        checklist = await expect(user, "Received 0/8, accepted 0/8")
        assert len(checklist.buttons) == 9
        await outbox.drain()
        alert = await expect(staff, "新申请", "Acme <Ltd>")  # staff texts: DEFAULT_LOCALE
        assert "Ann" in alert.text

        # Bad uploads: refused with the reason, nothing stored.
        await upload(user, 1, EXE, "form.pdf", "application/pdf")
        await expect(user, "refused: by its content it is not a PDF")
        await user.upload(b"%PDF-" + b"0" * 10, "big.pdf", "application/pdf", file_size=25_000_000)
        await expect(user, "too big (25 MB); the limit is 20 MB")
        await user.send("here it comes")
        await expect(user, "send a file or a photo")
        async with bot_desk.sessions() as session:
            assert (await session.exec(select(StoredFile))).all() == []

        # Every item, a PDF, a photo and a Word document among them.
        await user.upload(PDF, "申请书.pdf", "application/pdf")
        await expect(user, "Received 1/8")
        await upload(user, 2, PNG, "licence.png", "image/png")
        await expect(user, "Received 2/8")
        await user.press("dc:licences")
        await expect(user, "upload")
        await user.upload_photo(PNG)
        await expect(user, "Received 3/8")
        await upload(user, 4, docx(), "org chart.docx", "application/octet-stream")
        await expect(user, "Received 4/8")
        for n in range(5, 9):
            await upload(user, n, PDF + bytes([n]), f"item{n}.pdf", "application/pdf")
            last = await expect(user, f"Received {n}/8")
        assert "✅" not in last.text
        async with bot_desk.sessions() as session:
            stage = (await session.exec(select(Application.stage))).one()
            files = (await session.exec(select(StoredFile))).all()
        assert stage == "documents_complete"
        assert {f.content_type for f in files} >= {"application/pdf", "image/png"}
        for f in files:  # by content hash under the data folder, never the sender's name
            assert (data_dir / f.path).read_bytes() and f.path.endswith(f.sha256)

        await outbox.drain()
        prompts = [r for r in staff.replies if "待审核资料" in r.text]
        assert len(prompts) == 8

        # A non-staff member of the staff chat presses a staff button: refused, nothing changes.
        await intruder.press("sd:a:1", message_id=prompts[0].message_id)
        answers = emulator.callback_answers
        assert await emulator.wait_for(
            lambda: any(answers[k] for k in answers if k.startswith("61-"))
        )
        answer = next(answers[k] for k in answers if k.startswith("61-"))
        assert answer["text"] == "此操作仅限工作人员。" and answer["show_alert"] is True
        async with bot_desk.sessions() as session:
            assert {d.status for d in (await session.exec(select(Document))).all()} == {"received"}

        # Staff: reject item 2 with a reason, accept the rest.
        await staff.press("sd:r:2", message_id=prompts[1].message_id)
        reasons = await staff.next_reply()
        while not reasons.edited:  # skip the prompts already looked at
            reasons = await staff.next_reply()
        assert reasons.message_id == prompts[1].message_id and "文件已过期" in reasons.buttons
        await staff.press("sd:x:2:expired", message_id=prompts[1].message_id)
        await expect(staff, "已退回（Mei）")
        for prompt in prompts[:1] + prompts[2:]:
            await staff.press(prompt.buttons[0], message_id=prompt.message_id)
            await expect(staff, "已通过（Mei）")
        await outbox.drain()
        notice = await expect(user, "was not accepted: expired")
        assert "Proof of legal status" in notice.text
        await expect(user, "has been accepted")

        await user.send("/status")
        status = await expect(user, "Application AP-")
        assert "Stage: draft" in status.text and "Received 7/8, accepted 7/8" in status.text
        assert "Proof of legal status" in status.text.split("Next step")[1]

        # Replace the rejected item; staff accept it; the application is under review.
        await user.send("/documents")
        listing = await expect(user, "Received 7/8")
        assert "not accepted: expired" in listing.text
        await upload(user, 2, PDF + b"new", "licence-2026.pdf", "application/pdf")
        await expect(user, "Received 8/8, accepted 7/8")
        await outbox.drain()
        prompt = await expect(staff, "licence-2026.pdf")
        await staff.press(prompt.buttons[0], message_id=prompt.message_id)
        done = await expect(staff, "已通过（Mei）")
        assert "已进入评审阶段" in done.text
        await outbox.drain()
        await expect(user, "now under review")
        await user.send("/status")
        status = await expect(user, "Stage: under review")
        assert "Nothing to do" in status.text
    async with bot_desk.sessions() as session:
        docs = (await session.exec(select(Document).order_by(Document.id))).all()
    assert [d.status for d in docs].count("replaced") == 1 and docs[1].reason == "expired"


async def test_documents_in_chinese_and_double_press_is_harmless(
    bot_desk: Desk, emulator: Emulator
) -> None:
    user = emulator.user(70, "王")
    staff = emulator.user(STAFF_ID, "梅", chat_type="supergroup", chat_id=STAFF_CHAT)
    async with running(bot_desk, emulator) as app:
        outbox = outbox_for(bot_desk, app)
        await start_zh(user)
        await user.press("申请资料")
        await expect(user, "全称")
        await user.send("示例公司")
        await expect(user, "申请认证需要提交以下资料", "示例公司")
        await user.press("📝 开始申请")
        await expect(user, "已为贵组织创建申请")
        await expect(user, "已收到 0/8，已审核通过 0/8")
        await user.press("dc:org_chart")
        await expect(user, "请上传“组织机构图及职责”")
        await user.upload(PDF, "组织图.pdf", "application/pdf")
        await expect(user, "已收到“组织机构图及职责”：组织图.pdf")
        await expect(user, "已收到 1/8")
        await outbox.drain()
        # The prompt is the document itself, from the stored file, captioned with its item.
        prompt = await expect(staff, "待审核资料", "组织机构图及职责", "组织图.pdf")
        assert prompt.method == "sendDocument" and prompt.file is not None
        assert prompt.file.content == PDF and prompt.file.file_name == "组织图.pdf"
        assert "申请 <b>AP-" in (prompt.raw or "") and "示例公司" in prompt.text
        assert prompt.buttons == ["✅ 通过", "❌ 退回"]  # no "open the file": it is here
        texts = [r for r in emulator.delivered(STAFF_CHAT) if r.method == "sendMessage"]
        assert not any("待审核资料" in r.text for r in texts)  # the file alone, no text beside
        await staff.press("❌ 退回", message_id=prompt.message_id)
        await expect(staff, "")  # the reasons
        await staff.press("« 返回", message_id=prompt.message_id)
        back = await expect(staff, "")
        assert back.buttons == ["✅ 通过", "❌ 退回"]
        first = prompt.message["reply_markup"]["inline_keyboard"][0][0]
        await staff.press("✅ 通过", message_id=prompt.message_id)
        done = await expect(staff, "已通过（梅）")
        assert done.method == "editMessageCaption" and "组织机构图及职责" in done.text
        # Pressed again from a screen that still shows the buttons: nothing changes.
        await staff._callback(prompt.message, first)
        await expect(staff, "此文件已处理过")
        async with bot_desk.sessions() as session:
            reviewed = (await session.exec(select(Document))).one()
        assert reviewed.reviewed_by == f"staff:{STAFF_ID}"  # an identity, not the display name
        await outbox.drain()
        await expect(user, "“组织机构图及职责”已审核通过")
        await user.send("/status")
        status = await expect(user, "当前阶段：草稿")
        assert "下一步：" in status.text
