"""The real PTB Application against the emulator, over HTTP: no mocked Update or Bot."""

from __future__ import annotations

import asyncio
import datetime as dtm
import html
import io
from pathlib import Path

import aiohttp
import pytest
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest, RetryAfter
from telegram.ext import (
    AIORateLimiter,
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot.emulator import Emulator, NoReplyError, bot_builder, run_app
from bot.emulator.terminal import HELP, chat

# Until tests/conftest.py registers it for the whole suite.

KEYBOARD = InlineKeyboardMarkup(
    [
        [InlineKeyboardButton("资格自评", callback_data="self-check")],
        [InlineKeyboardButton("报价", callback_data="quote")],
    ]
)


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await update.effective_message.reply_text(
        "<b>欢迎</b>", parse_mode=ParseMode.HTML, reply_markup=KEYBOARD
    )


async def pressed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    await query.answer()
    await query.edit_message_text(f"你选择了 {query.data}")


async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    text = update.effective_message.text
    # Unescaped on purpose when the text asks for it: the emulator must refuse it.
    shown = text if text.startswith("raw:") else html.escape(text)
    await update.effective_message.reply_text(f"<i>{shown}</i>", parse_mode=ParseMode.HTML)


async def document(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    doc = update.effective_message.document
    data = await (await doc.get_file()).download_as_bytearray()
    await update.effective_message.reply_document(
        bytes(data), filename=f"echo-{doc.file_name}", caption=f"{len(data)} bytes"
    )


def echo_app(emulator: Emulator, **builder: object) -> Application:
    b = bot_builder(emulator)
    for name, value in builder.items():
        b = getattr(b, name)(value)
    app = b.build()
    app.add_handler(CommandHandler("start", start))
    app.add_handler(CallbackQueryHandler(pressed))
    app.add_handler(MessageHandler(filters.Document.ALL, document))
    app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, echo))
    return app


async def test_start_reply_and_button_edit(emulator: Emulator) -> None:
    async with run_app(echo_app(emulator)):
        user = emulator.user(42, "王芳")
        await user.send("/start")
        welcome = await user.next_reply()
        assert welcome.text == "欢迎"
        assert welcome.raw == "<b>欢迎</b>"
        assert welcome.buttons == ["资格自评", "报价"]
        assert welcome.message["entities"] == [{"type": "bold", "offset": 0, "length": 2}]

        update = await user.press("资格自评")
        edit = await user.next_reply()
        assert edit.edited and edit.message_id == welcome.message_id
        assert edit.text == "你选择了 self-check"
        assert edit.buttons == []  # editMessageText without markup drops the keyboard
        query_id = update["callback_query"]["id"]
        assert emulator.callback_answers[query_id] == {"callback_query_id": query_id}
        with pytest.raises(LookupError, match="no button"):
            await user.press("报价")  # the keyboard is gone


async def test_echo_escapes_and_group_chat(emulator: Emulator) -> None:
    async with run_app(echo_app(emulator)):
        alice = emulator.user(1, "Alice", chat_type="group", chat_id=-500)
        await alice.send("a < b & c")
        assert (await alice.next_reply()).text == "a < b & c"
        assert emulator.delivered(-500)[-1].message["chat"]["type"] == "group"


async def test_document_round_trip(emulator: Emulator) -> None:
    content = bytes(range(256)) * 40
    async with run_app(echo_app(emulator)):
        user = emulator.user(7)
        await user.upload(content, "申请书.pdf", "application/pdf")
        reply = await user.next_reply()
        assert reply.method == "sendDocument"
        assert reply.file is not None and reply.file.content == content
        assert reply.file.file_name == "echo-申请书.pdf"
        assert reply.text == f"{len(content)} bytes"
        assert [c.status for c in emulator.calls("getFile")] == [200]


async def test_files_by_id_photos_and_size_limit(emulator: Emulator) -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"\0\0\0\rIHDR" + (640).to_bytes(4) + (480).to_bytes(4)
    async with run_app(bot_builder(emulator).build()) as app:
        user = emulator.user(8)
        update = await user.upload(b"%PDF", "big.pdf", "application/pdf", file_size=21 << 20)
        file_id = update["message"]["document"]["file_id"]
        with pytest.raises(BadRequest, match=r"(?i)file is too big"):
            await app.bot.get_file(file_id)
        forwarded = await app.bot.send_document(
            user.chat_id, file_id, caption="<b>x</b>", parse_mode=ParseMode.HTML
        )
        assert forwarded.document.file_id == file_id and forwarded.caption == "x"
        photo = await app.bot.send_photo(user.chat_id, png)
        assert (photo.photo[-1].width, photo.photo[-1].height) == (640, 480)
        assert [r.method for r in user.replies] == ["sendDocument", "sendPhoto"]
        sent = await app.bot.get_file(photo.photo[-1].file_id)
        assert bytes(await sent.download_as_bytearray()) == png


async def test_json_and_query_string_requests(emulator: Emulator) -> None:
    user = emulator.user(4)
    async with aiohttp.ClientSession() as http:
        url = f"{emulator.base_url}123:TEST/sendMessage"
        async with http.post(url, json={"chat_id": user.chat_id, "text": "123"}) as resp:
            assert (await resp.json())["result"]["text"] == "123"
        async with http.get(url, params={"chat_id": str(user.chat_id), "text": "q"}) as resp:
            assert resp.status == 200
        async with http.post(f"{emulator.base_url}123:TEST/noSuchMethod") as resp:
            assert resp.status == 404
            assert await resp.json() == {
                "ok": False,
                "error_code": 404,
                "description": "Not Found: method not found",
            }
    assert [r.text for r in user.replies] == ["123", "q"]


async def test_unescaped_html_is_refused_like_telegram(emulator: Emulator) -> None:
    errors: list[Exception] = []
    failed = asyncio.Event()

    async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        failed.set()

    app = echo_app(emulator)
    app.add_error_handler(on_error)
    async with run_app(app, errors=errors):
        user = emulator.user(9)
        await user.send("raw: 1 < 2")
        await asyncio.wait_for(failed.wait(), 5)
    assert isinstance(errors[0], BadRequest)
    assert "can't parse entities" in str(errors[0]).lower()
    assert emulator.calls("sendMessage")[-1].status == 400
    assert user.replies == []


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("<b>x</b> &amp; <a href='https://e.x/?a=1&amp;b=2'>l</a> &#20013;", True),
        ("<pre><code class='language-py'>x</code></pre><tg-spoiler>s</tg-spoiler>", True),
        ("<span class='tg-spoiler'>s</span><blockquote expandable>q</blockquote>", True),
        ("R&D", False),
        ("a<br>b", False),
        ("<b>x</i>", False),
        ("<b>x", False),
        ("</b>", False),
        ("<span>x</span>", False),
        ("&nbsp;", False),
    ],
)
async def test_html_checks(emulator: Emulator, text: str, ok: bool) -> None:
    async with run_app(bot_builder(emulator).build()) as app:
        user = emulator.user(3)
        if ok:
            await app.bot.send_message(user.chat_id, text, parse_mode=ParseMode.HTML)
        else:
            with pytest.raises(BadRequest, match=r"(?i)can't parse entities"):
                await app.bot.send_message(user.chat_id, text, parse_mode=ParseMode.HTML)


async def test_telegram_limits(emulator: Emulator) -> None:
    async with run_app(bot_builder(emulator).build()) as app:
        user = emulator.user(5)
        bot = app.bot
        await bot.send_message(user.chat_id, "字" * 4096)
        with pytest.raises(BadRequest, match=r"(?i)message is too long"):
            await bot.send_message(user.chat_id, "字" * 4097)
        with pytest.raises(BadRequest, match=r"(?i)chat not found"):
            await bot.send_message(999, "hi")
        too_long = InlineKeyboardMarkup([[InlineKeyboardButton("x", callback_data="d" * 65)]])
        with pytest.raises(BadRequest, match=r"(?i)button_data_invalid"):
            await bot.send_message(user.chat_id, "hi", reply_markup=too_long)
        sent = await bot.send_message(user.chat_id, "same")
        with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
            await bot.edit_message_text("same", user.chat_id, sent.message_id)
        assert await bot.delete_message(user.chat_id, sent.message_id)
        with pytest.raises(BadRequest, match=r"(?i)message to delete not found"):
            await bot.delete_message(user.chat_id, sent.message_id)
        assert [m.message_id for m in emulator.delivered(user.chat_id)] == [1, 2]


async def test_429_then_retry_succeeds(emulator: Emulator) -> None:
    async with run_app(bot_builder(emulator).build()) as app:
        user = emulator.user(11)
        emulator.fail_next("sendMessage", status=429, retry_after=1)
        with pytest.raises(RetryAfter) as caught:
            await app.bot.send_message(user.chat_id, "hello")
        assert caught.value.retry_after == dtm.timedelta(seconds=1)
        await app.bot.send_message(user.chat_id, "hello")
        assert [c.status for c in emulator.calls("sendMessage")] == [429, 200]
        assert [r.text for r in emulator.delivered(user.chat_id)] == ["hello"]


async def test_rate_limiter_retries_after_429(emulator: Emulator) -> None:
    # A fractional retry_after (Telegram sends whole seconds) keeps the limiter's wait short.
    app = bot_builder(emulator).rate_limiter(AIORateLimiter(max_retries=2)).build()
    async with run_app(app):
        user = emulator.user(12)
        emulator.fail_next("sendMessage", n=1, status=429, retry_after=0.01)
        await app.bot.send_message(user.chat_id, "once")
        assert [c.status for c in emulator.calls("sendMessage")] == [429, 200]


async def test_faults_and_flood_control(emulator: Emulator) -> None:
    async with run_app(bot_builder(emulator).build()) as app:
        user = emulator.user(13)
        emulator.fail_next("sendMessage", status=502, after_delivery=True)
        with pytest.raises(Exception, match="Bad Gateway"):
            await app.bot.send_message(user.chat_id, "maybe")
        assert [r.text for r in emulator.delivered(user.chat_id)] == ["maybe"]  # sent anyway

        emulator.rate_limit(per_chat_per_second=2)
        results = await asyncio.gather(
            *(app.bot.send_message(user.chat_id, str(i)) for i in range(4)),
            return_exceptions=True,
        )
        assert sum(isinstance(r, RetryAfter) for r in results) == 2
        assert emulator.rejected == 2

        emulator.rate_limit()  # lifted
        emulator.block(user.chat_id)
        with pytest.raises(Exception, match="blocked by the user"):
            await app.bot.send_message(user.chat_id, "hi")

        with pytest.raises(Exception, match="not found in Bot API"):
            await app.bot.do_api_request("sendHologram", api_kwargs={"chat_id": user.chat_id})
        assert emulator.unknown == ["sendHologram"]


async def test_commands_and_polling_details(emulator: Emulator) -> None:
    async with run_app(echo_app(emulator)) as app:
        await app.bot.set_my_commands([("start", "开始"), ("help", "帮助")])
        assert [c.command for c in await app.bot.get_my_commands()] == ["start", "help"]
        users = [emulator.user(100 + i) for i in range(3)]
        for u in users:
            await u.send(f"hi {u.id}")
        for u in users:
            assert (await u.next_reply()).text == f"hi {u.id}"
    ids = [u["update_id"] for u in emulator.updates]
    assert ids == sorted(ids) and len(set(ids)) == 3
    polls = emulator.calls("getUpdates")
    assert polls[-1].params["offset"] == ids[-1] + 1  # PTB's shutdown call confirmed them
    assert emulator.calls("deleteWebhook") and emulator.calls("getMe")


async def test_next_reply_timeout_explains(emulator: Emulator) -> None:
    async with run_app(bot_builder(emulator).build()):
        user = emulator.user(21)
        await user.send("nobody listens")
        with pytest.raises(NoReplyError, match="no reply to chat 21"):
            await user.next_reply(timeout=0.05)


async def test_terminal_chat_transcript(emulator: Emulator, tmp_path: Path) -> None:
    (tmp_path / "cv.txt").write_bytes(b"12345")
    script = io.StringIO(f"/start\n1\nhello <you>\n/file {tmp_path / 'cv.txt'}\n/quit\nlost\n")
    out = io.StringIO()
    await chat(echo_app(emulator), emulator, user_id=77, stdin=script, stdout=out)
    assert out.getvalue() == (
        f"{HELP}\n"
        "> /start\n"
        "bot: 欢迎\n"
        "  [1] 资格自评\n"
        "  [2] 报价\n"
        "> 1\n"
        "bot (edited): 你选择了 self-check\n"
        "> hello <you>\n"
        "bot: hello <you>\n"
        f"> /file {tmp_path / 'cv.txt'}\n"
        "bot: [document echo-cv.txt, 5 bytes] 5 bytes\n"
        "> /quit\n"
    )


async def test_terminal_numbers_are_presses_only_when_meant_as_such(emulator: Emulator) -> None:
    """A phone number or a count typed while buttons show is text; after a reply without
    buttons the earlier buttons still work as #N; a backslash sends a line as typed."""
    script = io.StringIO("/start\n13800138000\n#2\n2\n/start\n\\1\n1\n#3\n#1\n/quit\n")
    out = io.StringIO()
    await chat(echo_app(emulator), emulator, user_id=78, stdin=script, stdout=out)
    menu = "bot: 欢迎\n  [1] 资格自评\n  [2] 报价\n"
    assert out.getvalue() == (
        f"{HELP}\n"
        f"> /start\n{menu}"
        "> 13800138000\n"
        "bot: 13800138000\n"
        "  (earlier buttons: type #1–#2)\n"
        "> #2\n"
        "bot (edited): 你选择了 quote\n"
        "> 2\n"  # that keyboard is gone: text
        "bot: 2\n"
        f"> /start\n{menu}"
        "> \\1\n"
        "bot: 1\n"
        "  (earlier buttons: type #1–#2)\n"
        "> 1\n"  # after a reply without buttons a bare number is text…
        "bot: 1\n"
        "  (earlier buttons: type #1–#2)\n"
        "> #3\n"
        "! choose #1–#2\n"
        "> #1\n"  # …and the buttons above it still work
        "bot (edited): 你选择了 self-check\n"
        "> /quit\n"
    )
