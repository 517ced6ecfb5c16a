"""Long texts through the Telegram handlers (issue 10 item 10), with the real application and
the Bot API emulator: a description of a full Telegram message (4,096 characters) is kept whole,
one sent as several messages is joined, a longer field is cut only with a word to the person;
staff see a long description whole and a 4,080-character answer is taken whole."""

from __future__ import annotations

from bot.desk import Desk
from bot.domain.refs import find_ref
from bot.emulator import Emulator, FakeUser, Reply
from bot.services import cases
from bot.services.cases import Complainant
from storage.repo import cases as repo
from storage.unit_of_work import UnitOfWork
from tests.fixtures.telegram_app import STAFF_CHAT, STAFF_ID, expect, running, start_en

FULL = ("The auditor asked for a gift. " * 140)[:4095] + "Z"  # one Telegram message, 4,096
assert len(FULL) == 4096


async def _to_description(user: FakeUser) -> None:
    await start_en(user)
    await user.send("/case")
    await expect(user, "Choose one")
    await user.press("Complaint")
    await expect(user, "Your complaint is about")
    await user.press("A member of our staff")
    await expect(user, "Please describe")


async def _summary(user: FakeUser) -> list[Reply]:
    """Skip name and contact; the summary's messages (the last carries the buttons)."""
    await user.press("Continue")
    await expect(user, "Please tell us your name")
    await user.press("Skip")
    await expect(user, "phone number or e-mail")
    before = len(user.replies)
    await user.press("Skip")
    assert await user.emulator.wait_for(lambda: any(r.buttons for r in user.replies[before:]))
    return user.replies[before:]


async def _description(desk: Desk, ref: str) -> str:
    async with desk.sessions() as s:
        case = await cases.find_case_by_ref(s, ref)
    assert case is not None
    return case.description or ""


async def test_a_full_message_description_is_kept_whole(bot_desk: Desk, emulator: Emulator) -> None:
    user = emulator.user(840, "Ann", language_code="en")
    staff = emulator.user(STAFF_ID, "Zhang", chat_type="group", chat_id=STAFF_CHAT)
    async with running(bot_desk, emulator):
        await _to_description(user)
        await user.send(FULL)
        ask = await expect(user, "send the files now")
        assert "longer than" not in ask.text
        summary = await _summary(user)
        assert len(summary) >= 2 and summary[-1].buttons == ["Submit", "Cancel"]
        shown = "".join(r.text for r in summary)
        assert shown.count("gift") == FULL.count("gift") and FULL[-40:] in shown
        await user.press("Submit")
        ref = find_ref((await expect(user, "Submitted")).text)
        assert ref is not None
        assert await _description(bot_desk, ref) == FULL
        # Staff see it whole too, over as many messages as it takes.
        before = len(staff.replies)
        await staff.send(f"/case {ref}")
        assert await emulator.wait_for(lambda: any(r.buttons for r in staff.replies[before:]))
        detail = "".join(r.text for r in staff.replies[before:])
        assert detail.count("gift") == FULL.count("gift") and FULL[-40:] in detail
        assert "…" not in detail


async def test_a_description_sent_as_two_messages_is_joined(
    bot_desk: Desk, emulator: Emulator
) -> None:
    """A client sends a text over 4,096 characters as several messages: the second arrives
    while files are awaited and continues the description, the person told."""
    user = emulator.user(841, "Ann", language_code="en")
    async with running(bot_desk, emulator):
        await _to_description(user)
        await user.send(FULL)
        await expect(user, "send the files now")
        await user.send("And then he left early.")
        added = await expect(user, "Added to your description")
        assert "4,120 characters" in added.text and added.buttons == ["Continue"]
        await _summary(user)
        await user.press("Submit")
        ref = find_ref((await expect(user, "Submitted")).text)
        assert ref is not None
        assert await _description(bot_desk, ref) == FULL + "\nAnd then he left early."


async def test_a_field_is_cut_only_with_a_word(bot_desk: Desk, emulator: Emulator) -> None:
    user = emulator.user(842, "Ann", language_code="en")
    async with running(bot_desk, emulator):
        await start_en(user)
        await user.send("/case")
        await expect(user, "Choose one")
        await user.press("Appeal")
        await expect(user, "Which decision")
        await user.send("Suspension " * 40)  # 440 characters for a 300-character field
        await expect(user, "longer than 300 characters; the first 300 are kept")
        await expect(user, "On which date")


async def test_a_4080_character_answer_is_taken_whole(bot_desk: Desk, emulator: Emulator) -> None:
    """Handler side: the prompt's answer and `/reply` hand the whole text to the case (the
    outbox splits what Telegram cannot take in one message)."""
    async with UnitOfWork(bot_desk.sessions) as uow:
        opened = await cases.open_case(
            bot_desk,
            uow,
            kind="complaint",
            channel="telegram",
            complainant=Complainant(
                name="Wu", telegram_user_id=843, telegram_chat_id=843, locale="en"
            ),
            subject=None,
            description="The auditor was late.",
        )
    answer = ("We have checked the audit records. " * 120)[:4079] + "Z"
    staff = emulator.user(STAFF_ID, "Zhang", chat_type="group", chat_id=STAFF_CHAT)
    async with running(bot_desk, emulator):
        await staff.send(f"/case {opened.ref}")
        await expect(staff, opened.ref)
        await staff.press("答复投诉人")
        await expect(staff, "请发送对案件")
        await staff.send(answer)
        await expect(staff, "答复已排队发送")
        await staff.send(f"/reply {opened.ref} {answer}")
        await expect(staff, "答复已排队发送")
    async with bot_desk.sessions() as s:
        events = await repo.events_of(s, opened.case.id or 0)
    sent = [(e.data or {}).get("text") for e in events if e.type == "reply_sent"]
    assert sent == [answer, answer]


async def test_full_message_information_is_kept_whole(bot_desk: Desk, emulator: Emulator) -> None:
    async with UnitOfWork(bot_desk.sessions) as uow:
        opened = await cases.open_case(
            bot_desk,
            uow,
            kind="complaint",
            channel="telegram",
            complainant=Complainant(telegram_user_id=844, telegram_chat_id=844, locale="en"),
            subject=None,
            description="The auditor was late.",
        )
    user = emulator.user(844, "Wu", language_code="en")
    async with running(bot_desk, emulator):
        await user.send(f"/mycases {opened.ref}")
        await expect(user, opened.ref)
        await user.press("Add information")
        await expect(user, "Send what you want to add")
        await user.send(FULL)
        await expect(user, opened.ref)
    async with bot_desk.sessions() as s:
        events = await repo.events_of(s, opened.case.id or 0)
    added = [(e.data or {}).get("text") for e in events if e.type == "information_added"]
    assert added == [FULL]
