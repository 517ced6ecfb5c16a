"""How the Telegram application is wired (issue 9 item 7): handler modules imported explicitly,
every handler in a named group with one flow per group, and one staff gate in front of every
staff command and button — checked on the built application and through the emulator."""

from __future__ import annotations

import types
from pathlib import Path

import pytest
from telegram.ext import CallbackQueryHandler, CommandHandler, ConversationHandler

from bot.clock import FrozenClock
from bot.config import load_settings
from bot.desk import Desk
from bot.emulator import Emulator, bot_builder
from bot.main.app import HANDLER_MODULES, build_application, select_modules
from bot.main.desk import open_desk
from handlers.telegram import changes, common
from handlers.telegram.context import Group
from handlers.telegram.flows import conversation
from handlers.telegram.staff_gate import StaffButton
from tests.fixtures.telegram_app import STAFF_CHAT, STAFF_ID, T0, expect, running


def _filters_of(handler: CommandHandler) -> str:
    return repr(handler.filters)


async def test_handler_modules_are_imported_module_objects(bot_desk: Desk) -> None:
    assert all(isinstance(m, types.ModuleType) for m in HANDLER_MODULES)
    assert HANDLER_MODULES[0] is common
    # Naming a module picks it from the list; a name not on it is refused, never imported.
    assert select_modules(["handlers.telegram.changes"]) == [common, changes]
    with pytest.raises(ValueError, match="not a handler module"):
        select_modules(["os"])


async def test_every_handler_sits_in_a_named_group_one_flow_each(bot_desk: Desk) -> None:
    app = build_application(bot_desk, bot_builder(Emulator()))
    assert all(isinstance(group, Group) for group in app.handlers)
    flows = [
        (group, h.name)
        for group, handlers in app.handlers.items()
        for h in handlers
        if isinstance(h, ConversationHandler)
    ]
    assert len({group for group, _ in flows}) == len(flows) == 9
    assert (Group.STAFF_REPLY, "staff_reply") in flows and (Group.CASES, "cases") in flows
    with pytest.raises(ValueError, match="QUOTE already holds flow 'quote'"):
        conversation(app, "another", Group.QUOTE, entry_points=[], states={})


async def test_every_staff_handler_is_behind_the_one_gate(bot_desk: Desk) -> None:
    app = build_application(bot_desk, bot_builder(Emulator()))
    staff = app.handlers[Group.STAFF]
    assert staff
    for handler in staff:
        if isinstance(handler, CommandHandler):
            assert "StaffOnly" in _filters_of(handler), handler.commands
        else:
            assert isinstance(handler, StaffButton), handler
    (reply_flow,) = (
        h for h in app.handlers[Group.STAFF_REPLY] if isinstance(h, ConversationHandler)
    )
    assert all(isinstance(h, StaffButton) for h in reply_flow.entry_points)
    assert not any(
        isinstance(h, CallbackQueryHandler) and not isinstance(h, StaffButton) for h in staff
    )


async def test_a_staff_button_pressed_by_anyone_else_is_refused_aloud(
    bot_desk: Desk, emulator: Emulator
) -> None:
    staff = emulator.user(STAFF_ID, "Zhang", chat_type="group", chat_id=STAFF_CHAT)
    intruder = emulator.user(901, "Eve", chat_type="group", chat_id=STAFF_CHAT)
    async with running(bot_desk, emulator):
        await staff.send("/cases")
        await expect(staff, "没有未结案件")
        message = staff.replies[-1].message
        for data in ("staff:show:TS-2026-AAAAAA", "staff:reply:TS-2026-AAAAAA"):
            pressed = await intruder._callback(message, {"text": "x", "callback_data": data})
            query = pressed["callback_query"]["id"]
            assert await emulator.wait_for(lambda q=query: emulator.callback_answers[q] is not None)
            answer = emulator.callback_answers[query]
            assert answer["text"] == "此操作仅限工作人员。" and answer["show_alert"] is True
        # The reply prompt did not open for the intruder: their next text goes nowhere.
        before = len(staff.replies)
        await intruder.send("internal chatter")
        await staff.send("/cases")
        await expect(staff, "没有未结案件")
        assert len(staff.replies) == before + 1


async def test_no_staff_configured_means_nobody_is_staff(
    database_url: str, data_dir: Path, emulator: Emulator
) -> None:
    settings = load_settings(
        database_url=database_url, data_dir=data_dir, staff_user_ids=[], staff_chat_id=STAFF_CHAT
    )
    desk = await open_desk(settings, FrozenClock(T0))
    try:
        former = emulator.user(STAFF_ID, "Zhang")
        async with running(desk, emulator):
            await former.send("/cases")
            reply = await former.next_reply()
            assert "没有未结案件" not in reply.text  # the public catch-all answers instead
    finally:
        await desk.close()
