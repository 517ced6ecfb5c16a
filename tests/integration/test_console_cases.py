"""Working a case in the console, on SQLite and PostgreSQL: Today, the register and its XLSX,
the case file, assign (refused when conflicted, with the reason), reply, close, the outbox."""

from __future__ import annotations

import io
import re
from datetime import date

import openpyxl
from sqlmodel import col, select

from bot.clock import FrozenClock
from bot.services import cases
from bot.services.cases import Complainant
from storage.models import (
    Case,
    CaseEvent,
    Certificate,
    InboundEmail,
    OutboxMessage,
    Reminder,
)
from storage.unit_of_work import UnitOfWork
from tests.integration.console_kit import Console, console, file_complaint

__all__ = ["console"]  # the fixture, imported for pytest


async def _events(console: Console, ref: str) -> list[CaseEvent]:
    async with console.desk.sessions() as s:
        case = (await s.exec(select(Case).where(Case.ref == ref))).one()
        query = select(CaseEvent).where(CaseEvent.case_id == case.id).order_by(col(CaseEvent.seq))
        return list((await s.exec(query)).all())


async def _post(console: Console, path: str, **data: str) -> str:
    """Submit a form of the case file as the browser does; the page it lands on."""
    ref_page = path.rsplit("/", 1)[0]
    token = await console.csrf(ref_page)
    response = await console.client.post(path, data={"csrf_token": token, **data})
    assert response.status_code == 303, response.text
    return (await console.client.get(response.headers["location"])).text


async def test_today_shows_what_needs_doing(console: Console) -> None:
    ref = await file_complaint(console.desk)
    await console.signed_in()
    html = (await console.client.get("/")).text
    assert "今日：2026年9月28日" in html
    assert ref in html.split('id="new-cases"')[1].split("</section>")[0]
    # No staff channel is configured: the new-case alert reached no one, and says so.
    unrouted = html.split('id="unrouted"')[1].split("</section>")[0]
    assert "STAFF_ALERT_EMAILS" in unrouted and ref in unrouted
    # Months later the complaint's deadlines are overdue, shown in red (class overdue).
    clock = console.desk.clock
    assert isinstance(clock, FrozenClock)
    clock.advance(days=60)
    html = (await console.client.get("/")).text
    deadlines = html.split('id="deadlines"')[1].split("</section>")[0]
    assert re.search(r'<tr class="overdue">\s*<td>2026年', deadlines)
    assert "已逾期" in deadlines and ref in deadlines
    en = await console.client.get("/lang?to=en&next=/")
    assert en.headers["location"] == "/"
    html = (await console.client.get("/")).text
    assert "Today: 2026-11-27" in html and "overdue" in html


async def test_today_lists_enquiries_and_reminders_that_would_reach_no_one(
    console: Console,
) -> None:
    raw = (
        "From: 赵六 <zhao@example.test>\r\nSubject: =?utf-8?b?5ZKo6K+i6LS555So?=\r\n"
        "Message-ID: <q1@example.test>\r\n\r\n请问认证费用是多少？\r\n"
    ).encode()
    async with console.desk.sessions() as s, s.begin():
        s.add(
            InboundEmail(
                mailbox="INBOX",
                message_key="<q1@example.test>",
                raw=raw,
                received_at=console.desk.clock.now(),
                status="processed",
                kind="enquiry",
            )
        )
        cert = Certificate(
            number="GGBZ-2025-0042",
            holder="无联系人公司",
            standard="GB/T 39604",
            decided_on=date(2025, 10, 20),
            expires_on=date(2028, 10, 19),
        )
        s.add(cert)
        await s.flush()
        assert cert.id is not None
        s.add(
            Reminder(
                certificate_id=cert.id,
                rule_id="surveillance",
                due_on=date(2026, 10, 20),
                lead_days=30,
                send_on=date(2026, 10, 5),
            )
        )
    await console.signed_in()
    html = (await console.client.get("/")).text
    enquiries = html.split('id="enquiries"')[1].split("</section>")[0]
    assert "咨询费用" in enquiries and "zhao@example.test" in enquiries
    reminders = html.split('id="reminders"')[1].split("</section>")[0]
    assert "GGBZ-2025-0042" in reminders and "2026年10月5日" in reminders


async def test_assign_is_refused_to_the_decider_with_the_reason(console: Console) -> None:
    ref = await file_complaint(
        console.desk,
        kind="appeal",
        decided_on=date(2026, 9, 20),
        decided_by="张伟",
        complainant=Complainant(name="韩梅梅", email="han@example.test"),
        channel="email",
    )
    await console.signed_in()
    page = await _post(console, f"/cases/{ref}/assign", staff_id=str(console.staff_id))
    assert "不能将案件" in page and "张伟" in page and "须回避" in page
    assert [e.type for e in await _events(console, ref)] == ["received", "acknowledged"]
    # The decider may not act on the case either, whoever they would assign.
    await console.client.post("/logout", data={"csrf_token": await console.csrf()})
    await console.signed_in("zhang@desk.example.test")
    page = await _post(console, f"/cases/{ref}/assign", staff_id=str(console.admin_id))
    assert "您不能处理案件" in page
    await console.client.post("/logout", data={"csrf_token": await console.csrf()})
    await console.signed_in()
    page = await _post(console, f"/cases/{ref}/assign", staff_id=str(console.admin_id))
    assert f"案件 {ref} 已分配给 王芳" in page
    assigned = (await _events(console, ref))[-1]
    assert assigned.type == "assigned" and assigned.actor == "staff:wang@desk.example.test"
    assert "分配给 王芳" in page.split('id="history"')[1]


async def test_reply_goes_out_on_the_complainants_channel_and_close(console: Console) -> None:
    ref = await file_complaint(console.desk)
    await console.signed_in()
    page = await _post(console, f"/cases/{ref}/reply", text="您好，<b>已收到</b>。")
    assert "答复已排入发件箱（Telegram）" in page
    async with console.desk.sessions() as s:
        sent = (
            await s.exec(
                select(OutboxMessage).where(
                    OutboxMessage.recipient == "5001",
                    col(OutboxMessage.idempotency_key).contains(":event:"),
                )
            )
        ).one()
    assert sent.channel == "telegram" and "&lt;b&gt;已收到&lt;/b&gt;" in sent.payload["text"]
    history = page.split('id="history"')[1]
    assert "答复（Telegram）：您好，&lt;b&gt;已收到&lt;/b&gt;。" in history
    assert "王芳" in history and "投诉人" in history
    async with UnitOfWork(console.desk.sessions) as uow:
        case = await cases.lock_case(uow, ref)
        assert case is not None
        await cases.add_information(
            console.desk, uow, case, "complainant:telegram:5001", "补充：照片"
        )
    messages = (await console.client.get(f"/cases/{ref}")).text.split('id="messages"')[1]
    assert "收到" in messages and "补充：照片" in messages.split("</section>")[0]
    page = await _post(console, f"/cases/{ref}/milestone", milestone="answer_sent", note="已答复")
    assert "已记录：已书面答复" in page and "已结案" in page
    assert 'id="actions"' not in page  # a closed case offers no actions
    done = [(e.type, e.actor) for e in await _events(console, ref)][-2:]
    # The final milestone, by the member, then the outcome letter it sends (GGBZ §8.5.3).
    assert done[0] == ("answer_sent", "staff:wang@desk.example.test")
    assert done[1][0] == "outcome_sent"


async def test_register_filters_search_and_exports_xlsx(console: Console) -> None:
    first = await file_complaint(console.desk, subject="证书 GGBZ-001 的审核")
    clock = console.desk.clock
    assert isinstance(clock, FrozenClock)
    clock.advance(days=3)  # 2026-10-01
    second = await file_complaint(
        console.desk,
        kind="appeal",
        channel="email",
        decided_on=date(2026, 9, 20),
        complainant=Complainant(name="韩梅梅", email="han@example.test"),
        subject="不同意暂停决定",
    )
    await console.signed_in()
    everything = (await console.client.get("/cases")).text
    assert first in everything and second in everything
    appeals = (await console.client.get("/cases?kind=appeal")).text
    assert second in appeals and first not in appeals
    found = (await console.client.get("/cases?q=ggbz-001")).text
    assert first in found and second not in found
    by_name = (await console.client.get("/cases?q=韩梅梅")).text
    assert second in by_name and first not in by_name
    assert first not in (await console.client.get("/cases?overdue=1")).text
    later = (await console.client.get("/cases?from=2026-10-01")).text
    assert second in later and first not in later
    earlier = (await console.client.get("/cases?from=2026-09-28&to=2026-09-30")).text
    assert first in earlier and second not in earlier
    await _post(console, f"/cases/{first}/assign", staff_id=str(console.admin_id))
    mine = (await console.client.get(f"/cases?assignee={console.admin_id}")).text
    assert first in mine and second not in mine
    nobody = (await console.client.get("/cases?assignee=none")).text
    assert second in nobody and first not in nobody
    clock.advance(days=90)
    late = (await console.client.get("/cases?overdue=1")).text
    assert first in late and 'class="overdue"' in late

    export = await console.client.get("/cases.xlsx?kind=complaint")
    assert export.status_code == 200
    assert export.headers["content-disposition"].startswith("attachment;")
    sheet = openpyxl.load_workbook(io.BytesIO(export.content)).active
    assert sheet is not None
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][0] == "编号" and rows[0][8] == "用时（天）"
    assert rows[1][0] == first and rows[1][1] == "投诉"
    assert rows[1][2].date() == date(2026, 9, 28)  # type: ignore[union-attr]
    assert rows[1][8] == (clock.today() - date(2026, 9, 28)).days
    assert all(r[0] != second for r in rows)
    assert str(rows[1][4]).endswith(")") and rows[1][6] == "未完成"  # a deadline, not met


async def test_outbox_retry_requeues_a_failed_message(console: Console) -> None:
    ref = await file_complaint(console.desk)
    async with console.desk.sessions() as s, s.begin():
        row = (await s.exec(select(OutboxMessage).where(OutboxMessage.recipient == "5001"))).one()
        row.status, row.attempts, row.last_error = "failed", 5, "Forbidden: bot was blocked"
        s.add(row)
    await console.signed_in()
    page = (await console.client.get("/outbox")).text
    assert "Forbidden: bot was blocked" in page and f'id="message-{row.id}"' in page
    token = await console.csrf("/outbox")
    done = await console.client.post(f"/outbox/{row.id}/retry", data={"csrf_token": token})
    assert done.status_code == 303
    async with console.desk.sessions() as s:
        again = await s.get(OutboxMessage, row.id)
        assert again is not None and (again.status, again.attempts) == ("queued", 0)
    assert (await _events(console, ref))[-1].type == "outbox_retried"
