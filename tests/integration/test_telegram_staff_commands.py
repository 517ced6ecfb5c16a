"""The command menus per scope (set at start-up) and /help in the staff chat, through the
emulator: staff commands for the staff chat (BotCommandScopeChat), the public list, /link and
/change among them, for private chats."""

from __future__ import annotations

import json

import pytest
from telegram import BotCommandScope
from telegram.error import BadRequest

from bot.desk import Desk
from bot.emulator import Emulator
from tests.fixtures.telegram_app import STAFF_CHAT, STAFF_ID, expect, running, start_en

PUBLIC = ["case", "mycases", "change", "link", "certificate", "documents", "status", "help"]


def _names(emulator: Emulator, scope: dict[str, object], language: str) -> list[str]:
    key = (json.dumps(scope, sort_keys=True), language)
    return [c["command"] for c in emulator.commands[key]]


async def test_each_scope_has_its_menu_and_the_staff_chat_its_own_help(
    bot_desk: Desk, emulator: Emulator
) -> None:
    staff = emulator.user(STAFF_ID, "Mei", chat_type="supergroup", chat_id=STAFF_CHAT)
    user = emulator.user(81, "Ann", language_code="en")
    async with running(bot_desk, emulator) as app:
        await app.post_init(app)  # type: ignore[attr-defined]  # as `certdesk run` starts
        staff_chat = {"type": "chat", "chat_id": STAFF_CHAT}
        for language in ("zh", "en", ""):
            assert _names(emulator, staff_chat, language) == [
                "cases",
                "case",
                "assign",
                "milestone",
                "reply",
                "help",
            ]
            for scope in ({"type": "default"}, {"type": "all_private_chats"}):
                names = _names(emulator, scope, language)
                assert set(PUBLIC) <= set(names) and "assign" not in names
        zh = emulator.commands[(json.dumps(staff_chat, sort_keys=True), "zh")]
        assert zh[2]["description"] == "分配或转交：/assign 编号 [工作人员ID]"
        en = emulator.commands[(json.dumps({"type": "all_private_chats"}), "en")]
        assert {"command": "link", "description": "Link to your organisation with its code"} in en

        # /help in the staff chat explains the staff commands; a private /help the public ones.
        await staff.send("/help")
        shown = await expect(staff, "工作人员命令")
        for command in ("/cases", "/case 编号", "/assign 编号", "/milestone 编号", "/reply 编号"):
            assert command in shown.text
        assert "查看文件" in shown.text and "工作人员名录" in shown.text
        await start_en(user)
        await user.send("/help")
        public = await expect(user, "Commands:")
        assert "/link CODE" in public.text and "/change " in public.text
        assert "/assign" not in public.text

        # The emulator refuses a scope Telegram does not know, as Telegram does.
        with pytest.raises(BadRequest, match=r"(?i)wrong parameter scope"):
            await app.bot.set_my_commands([("x", "y")], scope=BotCommandScope("nope"))
