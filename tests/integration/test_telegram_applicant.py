"""Applicant flows through the real Application, the emulator and a real database, in both
languages: start and language, eligibility (every verdict), quote, certificate lookup, bad inputs,
the idle timeout and a restart in the middle of a conversation."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import select

from bot.clock import FrozenClock
from bot.desk import Desk
from bot.emulator import Emulator, FakeUser, Reply
from bot.services.certificates import ImportResult, import_csv
from storage.models import ConversationState, Organisation
from storage.unit_of_work import UnitOfWork
from tests.fixtures.telegram_app import expect, make_desk, running, start_en, start_zh

# --- start, language, menu ------------------------------------------------------------------


async def test_start_offers_language_and_remembers_the_choice(
    bot_desk: Desk, emulator: Emulator
) -> None:
    zh = emulator.user(1, "李雷", language_code="zh-hans")
    en = emulator.user(2, "Ann", language_code="en")
    async with running(bot_desk, emulator) as app:
        await app.post_init(app)  # type: ignore[attr-defined]
        await zh.send("/start")
        first = await expect(zh, "您好，李雷", "请选择语言")
        assert first.buttons == ["简体中文", "English"]
        await en.send("/start")
        await expect(en, "Hello, Ann")
        await en.press("简体中文")  # an English speaker may choose Chinese
        menu = await expect(en, "请选择您需要的服务")
        assert "申请资格自评" in menu.buttons and "申诉、投诉、争议" in menu.buttons
        await en.send("/language")
        await expect(en, "请选择语言")
        await en.press("English")
        menu = await expect(en, "What would you like to do?")
        assert menu.buttons[0] == "Eligibility check"
        await en.send("/start")  # the stored choice wins over language_code from now on
        await expect(en, "Hello, Ann", "What would you like to do?")
        await zh.send("/help")
        await expect(zh, "命令：/menu")
        assert [c["command"] for c in emulator.commands[('{"type": "default"}', "en")]][:2] == [
            "start",
            "menu",
        ]


async def test_group_chats_are_refused_politely(bot_desk: Desk, emulator: Emulator) -> None:
    member = emulator.user(3, "Member", chat_type="group", chat_id=-42)
    async with running(bot_desk, emulator):
        await member.send("/start")
        reply = await expect(member, "只在与我的私聊中提供")
        assert reply.buttons == []


# --- eligibility ------------------------------------------------------------------------------

YES_ALL = {
    "legal_person": True,
    "licences": True,
    "internal_audit": True,
    "management_review": True,
    "suspension_order": False,
    "dishonest_list": False,
    "major_accident": False,
    "responsibility_accident": False,
    "spot_check": False,
    "revoked_elsewhere": False,
    "revoked_unrectified": False,
    "products_compliant": True,
}


async def answer_all(
    user: FakeUser, since: str, overrides: dict[str, bool] | None = None, *, en: bool = False
) -> Reply:
    """Answer the 13 GGBZ questions; return the verdict message."""
    answers = {**YES_ALL, **(overrides or {})}
    order = list(YES_ALL)
    order.insert(2, "running")
    last: Reply | None = None
    for n, cond in enumerate(order, 1):
        question = await expect(user, f"{n}/13" if not en else f"Question {n} of 13")
        if cond == "running":
            await user.send(since)
        else:
            await user.press(
                f"el:{'y' if answers[cond] else 'n'}:{cond}", message_id=question.message_id
            )
        last = question
    assert last is not None
    return await user.next_reply()


async def test_eligible_with_back_and_bad_inputs_zh(bot_desk: Desk, emulator: Emulator) -> None:
    user = emulator.user(10, "王芳")
    async with running(bot_desk, emulator):
        await start_zh(user)
        await user.press("申请资格自评")
        await expect(user, "请输入贵组织的全称")
        await user.send("武汉示例科技有限公司")
        q1 = await expect(user, "1/13", "法人资格")
        await user.send("是的")  # text where a button is expected
        await expect(user, "请点击上面消息中的按钮")
        await user.press("否", message_id=q1.message_id)  # a wrong answer…
        await expect(user, "2/13")
        await user.press("« 返回")  # …changed with Back
        q1 = await expect(user, "1/13", "法人资格")
        await user.press("是", message_id=q1.message_id)
        q2 = await expect(user, "2/13")
        await user.press("是", message_id=q2.message_id)
        await expect(user, "3/13", "开始运行")
        await user.send("2026-13-45")
        await expect(user, "无法识别该日期")
        await user.send("2027年1月1日")
        await expect(user, "晚于今天")
        await user.send("2026年5月20日")  # ran six months by 2026-11-20
        for n in range(4, 14):
            q = await expect(user, f"{n}/13")
            cond = [c for c in YES_ALL if c not in ("legal_person", "licences")][n - 4]
            await user.press(f"el:{'y' if YES_ALL[cond] else 'n'}:{cond}", message_id=q.message_id)
        verdict = await expect(user, "符合申请条件")
        assert "不符合" not in verdict.text and "已保存" in verdict.text
    async with bot_desk.sessions() as session:
        org = (await session.exec(select(Organisation))).one()
    assert org.name == "武汉示例科技有限公司"
    assert org.eligibility_verdict is not None and org.eligibility_verdict["status"] == "eligible"
    assert org.eligibility_answers["running"] == "2026-05-20"


async def test_not_eligible_lists_every_failed_condition_with_clause_en(
    bot_desk: Desk, emulator: Emulator
) -> None:
    user = emulator.user(11, "Ann", language_code="en")
    async with running(bot_desk, emulator):
        await start_en(user)
        await user.press("Eligibility check")
        await expect(user, "full name")
        await user.send("Example <Trading> & Co")
        verdict = await answer_all(
            user, "2026-01-01", {"dishonest_list": True, "internal_audit": False}, en=True
        )
    assert "does not meet these conditions" in verdict.text
    assert (
        "At least one internal audit" in verdict.text
        and "GGBZ §5.1.2 至少完成一次内部审核" in verdict.text
    )
    assert (
        "serious-dishonesty list" in verdict.text
        and "refusing the application outright" in verdict.text
    )
    assert "management review must" not in verdict.text  # only the failed ones
    async with bot_desk.sessions() as session:
        org = (await session.exec(select(Organisation))).one()
    assert org.name == "Example <Trading> & Co"  # stored as typed, escaped only when shown
    failed = {f["id"] for f in org.eligibility_verdict["failures"]}  # type: ignore[index]
    assert failed == {"dishonest_list", "internal_audit"}


async def test_eligible_from_a_date_when_only_time_is_missing(
    bot_desk: Desk, emulator: Emulator
) -> None:
    user = emulator.user(12, "赵")
    async with running(bot_desk, emulator):
        await start_zh(user)
        await user.send("/eligibility")
        await expect(user, "全称")
        await user.send("示例公司")
        verdict = await answer_all(user, "2026年9月1日")
    assert "自 2026-12-01 起符合申请条件" in verdict.text
    assert "GGBZ §5.1.2 体系有效运行三个月以上" in verdict.text


async def test_months_running_is_accepted_and_en_eligible_from(
    bot_desk: Desk, emulator: Emulator
) -> None:
    user = emulator.user(13, "Bob", language_code="en")
    async with running(bot_desk, emulator):
        await start_en(user)
        await user.send("/eligibility")
        await expect(user, "full name")
        await user.send("Bob Ltd")
        verdict = await answer_all(user, "2 months", en=True)
    assert "can apply from 2026-12-20" in verdict.text


# --- restart in the middle of a conversation ----------------------------------------------------


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
async def test_restart_resumes_the_conversation_where_it_stopped(
    database_url: str, data_dir: Path
) -> None:
    first = await make_desk(database_url, data_dir)
    async with Emulator() as emulator:
        user = emulator.user(20, "周")
        async with running(first, emulator):
            await start_zh(user)
            await user.press("申请资格自评")
            await expect(user, "全称")
            await user.send("重启测试有限公司")
            q1 = await expect(user, "1/13")
            await user.press("是", message_id=q1.message_id)
            q2 = await expect(user, "2/13")
        async with first.sessions() as session:
            states = (await session.exec(select(ConversationState))).all()
        await first.close()
        assert [(s.name, s.state) for s in states] == [("eligibility", "eligibility.ask")]

        second = await make_desk(database_url, data_dir)  # a new process, same database
        try:
            async with running(second, emulator):
                await user.press("是", message_id=q2.message_id)
                await expect(user, "3/13")
                await user.send("2026-01-01")
                await expect(user, "4/13")
        finally:
            await second.close()


# --- quote ------------------------------------------------------------------------------------


async def test_quote_in_both_languages(bot_desk: Desk, emulator: Emulator) -> None:
    zh = emulator.user(30, "钱")
    en = emulator.user(31, "Eve", language_code="en")
    async with running(bot_desk, emulator):
        await start_zh(zh)
        await zh.press("审核人日与费用")
        await expect(zh, "有效人数")
        await zh.send("一百二十")
        await expect(zh, "请输入 1 到 1,000,000 之间的整数")
        await zh.send("120人")
        await expect(zh, "相似的场所")
        await zh.press("1")
        table = await expect(zh, "审核时间与费用估算")
        assert "初次审核     7 人日" in table.text and "估算" in table.text
        assert "GGBZ 附录A" in table.text
        assert "pre" in {e["type"] for e in table.message.get("entities", [])}

        await start_en(en)
        await en.send("/quote")
        await expect(en, "effective people")
        await en.send("1,200")
        await expect(en, "similar sites")
        await en.send("4")
        table = await expect(en, "Audit time and cost estimate")
        assert "Initial audit      13 auditor-days" in table.text
        assert "Sites sampled      initial 2 · surveillance 2 · recert. 2" in table.text
        assert "estimate" in table.text


async def _import(desk: Desk, path: Path) -> ImportResult:
    async with UnitOfWork(desk.sessions) as uow:
        return await import_csv(desk, uow, path)


# --- certificate lookup -----------------------------------------------------------------------

CSV = (
    "number,holder,standard,scope,status,decided_on,expires_on,stage2_end_on,"
    "last_surveillance_on,suspended_on,suspension_months\n"
    "GGBZ-SA-2025-0001,武汉示例科技有限公司,GB/T 39604-2020,电子产品的设计和生产,valid,"
    "2025-03-10,2028-03-09,2025-03-01,,,\n"
    "GGBZ-SA-2024-0007,Example Trading Co,GB/T 39604-2020,Trading,suspended,"
    "2024-06-01,2027-05-31,2024-05-20,2025-05-10,2026-07-15,6\n"
)


async def test_certificate_lookup_found_suspended_and_unknown(
    bot_desk: Desk, emulator: Emulator, tmp_path: Path
) -> None:
    path = tmp_path / "certs.csv"
    path.write_text(CSV, encoding="utf-8")
    result = await _import(bot_desk, path)
    assert (result.imported, result.updated, result.refused) == (2, 0, [])
    zh = emulator.user(40, "孙")
    en = emulator.user(41, "Kim", language_code="en")
    async with running(bot_desk, emulator):
        await start_zh(zh)
        await zh.press("证书查询")
        await expect(zh, "证书编号")
        await zh.send(" GGBZ-SA-2025-0001 ")
        found = await expect(zh, "证书 GGBZ-SA-2025-0001")
        assert "武汉示例科技有限公司" in found.text and "状态：有效" in found.text
        assert "有效期至：2028-03-09" in found.text
        assert "下次监督审核截止：2026-03-02" in found.text  # 12 months after stage 2, rolled

        await start_en(en)
        await en.send("/certificate")
        await expect(en, "certificate number")
        await en.send("GGBZ-SA-2024-0007")
        found = await expect(en, "Certificate GGBZ-SA-2024-0007")
        assert "Status: suspended until 2027-01-15" in found.text
        await en.send("/certificate")
        await expect(en, "certificate number")
        await en.send("NOPE-<1>")
        await expect(en, "No certificate has the number NOPE-<1>")


# --- timeout ----------------------------------------------------------------------------------


async def test_idle_conversation_ends_politely(bot_desk: Desk, emulator: Emulator) -> None:
    user = emulator.user(50, "Liu", language_code="en")
    async with running(bot_desk, emulator) as app:
        await start_en(user)
        await user.send("/quote")
        await expect(user, "effective people")
        await app.update_queue.join()  # type: ignore[attr-defined]
        # One sweep job for every chat, not a timer re-armed per update.
        jobs = app.job_queue.jobs()  # type: ignore[attr-defined]
        assert [j.name for j in jobs] == ["idle_flows"]
        sweep = jobs[0]
        await sweep.run(app)  # not idle yet: nothing ends
        await user.send("120")  # still an answer in the quote flow
        await expect(user, "similar sites")
        await app.update_queue.join()  # type: ignore[attr-defined]  # its state set after the reply
        clock = bot_desk.clock
        assert isinstance(clock, FrozenClock)
        clock.advance(seconds=bot_desk.settings.conversation_timeout_seconds + 1)
        await sweep.run(app)  # time travel: the sweep finds the flow idle
        await expect(user, "ended after a long pause")
        await user.send("120")  # no longer in the quote flow
        await expect(user, "did not understand")


async def test_idle_conversation_ends_at_the_next_update(
    bot_desk: Desk, emulator: Emulator
) -> None:
    """Back after the timeout, before any sweep ran: the flow ends first, then the update is
    handled as outside any flow."""
    user = emulator.user(51, "Ma", language_code="en")
    async with running(bot_desk, emulator) as app:
        await start_en(user)
        await user.send("/quote")
        await expect(user, "effective people")
        await app.update_queue.join()  # type: ignore[attr-defined]
        clock = bot_desk.clock
        assert isinstance(clock, FrozenClock)
        clock.advance(seconds=bot_desk.settings.conversation_timeout_seconds + 1)
        await user.send("120")
        await expect(user, "ended after a long pause")
        await expect(user, "did not understand")


async def test_import_reports_bad_rows_and_reimport_updates(bot_desk: Desk, tmp_path: Path) -> None:
    path = tmp_path / "certs.csv"
    bad = (
        CSV
        + "X-1,Holder,Std,,valid,2025-01-01,2024-01-01,,,,\n"
        + "X-2,Holder,Std,,bogus,2025-01-01,2028-01-01,,,,\n"
    )
    path.write_text(bad, encoding="utf-8")
    result = await _import(bot_desk, path)
    assert result.imported == 2
    assert [str(e) for e in result.refused] == [
        "line 4: expires_on is not after decided_on",
        "line 5: status 'bogus' is not one of valid, suspended, withdrawn, expired",
    ]
    path.write_text(CSV.replace("suspended,2024-06-01", "withdrawn,2024-06-01"), encoding="utf-8")
    again = await _import(bot_desk, path)
    assert (again.imported, again.updated) == (0, 2)


# --- a body with several schemes ----------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_scheme_choice_drives_questions_and_checklist(
    database_url: str, data_dir: Path, emulator: Emulator
) -> None:
    desk = await make_desk(database_url, data_dir, profile="bqc")
    user = emulator.user(95, "Lin", language_code="en")
    try:
        async with running(desk, emulator):
            await start_en(user)
            await user.press("Eligibility check")
            await expect(user, "full name")
            await user.send("Green Factory Ltd")
            choice = await expect(user, "Which certification scheme")
            # Named as people know them, not by code (issue 15 §6).
            assert choice.buttons == [
                "Quality management system (GB/T 19001)",
                "Environmental management system (GB/T 24001)",
                "Occupational health and safety management system (GB/T 45001)",
                "Energy management system",
            ]
            await user.press("Environmental management system (GB/T 24001)")
            answers = ["y", "2026-01-01", "y", "y", "n", "n"]  # EMS asks 6 questions
            for n, answer in enumerate(answers, 1):
                question = await expect(user, f"Question {n} of 6")
                if n == 4:
                    assert "environmental impact assessment" in question.text
                if answer in ("y", "n"):
                    data = next(b["callback_data"] for row in question.keyboard for b in row)
                    cond = data.split(":")[2]
                    await user.press(f"el:{answer}:{cond}", message_id=question.message_id)
                else:
                    await user.send(answer)
            await expect(user, "meets the conditions to apply")
            await user.send("/documents")
            await user.press((await expect(user, "Start the application")).buttons[0])
            checklist = await expect(user, "Received 0/5")
            assert "Environmental impact assessment acceptance" in checklist.text
            assert "health examination" not in checklist.text
    finally:
        await desk.close()
