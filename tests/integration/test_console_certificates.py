"""The certificate register in the console, on SQLite and PostgreSQL: the CSV import with the
CLI's report, the register's filters and search, a certificate's page with its contacts and
reminder plan, a link code, and suspend / restore / withdraw each with its written notice to the
organisation through the outbox, a certificate event by the member, and the decider role."""

from __future__ import annotations

import html
import json
import re
from datetime import date

from sqlmodel import col, select

from bot.domain.certificates import suspension_end
from bot.domain.reminders import plan, schedule
from storage.models import Certificate, CertificateEvent, OutboxMessage
from storage.repo.reminders import facts
from tests.integration.console_kit import Console, console

__all__ = ["console"]  # the fixture, imported for pytest

WANG = "staff:wang@desk.example.test"
HEADER = (
    "number,holder,standard,decided_on,expires_on,stage2_end_on,status,suspended_on,"
    "suspension_months,uscc,contact_emails\n"
)
# Clock: 2026-09-28. GGBZ-801 has a contact; GGBZ-802's validity is too long; GGBZ-803's
# suspension too; GGBZ-804 has no contact and its first surveillance is long overdue.
ROWS = (
    HEADER + "GGBZ-801,武汉示例有限公司,GB/T 39604-2020,2025-12-01,2028-11-30,2025-11-20,,,,"
    "91110000600037341L,zhang@example.test\n"
    + "GGBZ-802,宜昌示例有限公司,GB/T 39604-2020,2025-12-01,2028-12-02,,,,,,\n"
    + "GGBZ-803,荆州示例有限公司,GB/T 39604-2020,2025-12-01,2028-11-30,,suspended,"
    "2026-03-20,7,,\n"
    + "GGBZ-804,襄阳示例有限公司,GB/T 39604-2020,2024-06-01,2026-12-01,2024-05-20,,,,,\n"
)
CLI_REPORT = {
    "imported": 2,
    "updated": 0,
    "refused": [
        {"line": 3, "reason": "validity longer than 36 months: expires_on 2028-12-02 is after "
                              "2028-12-01 (GGBZ §6.2.2)"},
        {"line": 4, "reason": "a suspension lasts 1 to 6 months, not 7 (GGBZ §7.3.4)"},
    ],
}  # fmt: skip


async def _import(console: Console, data: bytes) -> str:
    token = await console.csrf("/certificates/import")
    response = await console.client.post(
        "/certificates/import",
        data={"csrf_token": token},
        files={"file": ("证书.csv", data, "text/csv")},
    )
    assert response.status_code == 200, response.text
    return response.text


async def _cert_id(console: Console, number: str) -> int:
    response = await console.client.get(f"/certificates/by-number?n={number.lower()}")
    assert response.status_code == 303
    return int(response.headers["location"].rsplit("/", 1)[1])


async def _post(console: Console, cert_id: int, action: str, **data: str) -> str:
    token = await console.csrf(f"/certificates/{cert_id}")
    response = await console.client.post(
        f"/certificates/{cert_id}/{action}", data={"csrf_token": token, **data}
    )
    assert response.status_code == 303, response.text
    return (await console.client.get(response.headers["location"])).text


async def _notices(console: Console) -> list[OutboxMessage]:
    async with console.desk.sessions() as s:
        rows = await s.exec(select(OutboxMessage).order_by(col(OutboxMessage.id)))
        return list(rows.all())


async def _events(console: Console, cert_id: int) -> list[CertificateEvent]:
    async with console.desk.sessions() as s:
        rows = await s.exec(
            select(CertificateEvent)
            .where(CertificateEvent.certificate_id == cert_id)
            .order_by(col(CertificateEvent.id))
        )
        return list(rows.all())


async def test_import_from_the_browser_gives_the_clis_report(console: Console) -> None:
    await console.signed_in()
    page = await _import(console, ROWS.encode("gbk"))  # Excel's default on a Chinese Windows
    shown = re.search(r'<pre id="import-json">(.*?)</pre>', page, re.S)
    assert shown and json.loads(html.unescape(shown.group(1))) == CLI_REPORT
    assert "新增 2 张，更新 0 张，2 行未导入。" in page
    again = await _import(console, ROWS.encode("utf-8"))
    assert "新增 0 张，更新 2 张，2 行未导入。" in again
    cert_id = await _cert_id(console, "GGBZ-801")
    assert [(e.type, e.actor) for e in await _events(console, cert_id)] == [("imported", WANG)] * 2

    page = await _import(console, "número\n".encode("utf-16"))  # Unicode text: read, and
    assert "缺少必需的列：证书编号、持证组织" in html.unescape(page)  # answered in Chinese
    page = await _import(console, b"number\n\x80\xff\x80")  # neither UTF-8 nor GBK nor UTF-16
    assert "CSV UTF-8" in html.unescape(page)
    page = await _import(console, ROWS.replace("2028-12-02", "2028-12-03").encode())
    assert "有效期超过 36 个月" in page  # each refused row in the reader's language


async def test_the_register_filters_and_the_certificate_page(console: Console) -> None:
    desk = console.desk
    await console.signed_in()
    await _import(console, ROWS.encode())
    listing = (await console.client.get("/certificates")).text
    assert "GGBZ-801" in listing and "GGBZ-804" in listing
    overdue = (await console.client.get("/certificates?overdue=1")).text
    assert "GGBZ-804" in overdue and "GGBZ-801" not in overdue
    expiring = (await console.client.get("/certificates?expiring=1")).text
    assert "GGBZ-804" in expiring and "GGBZ-801" not in expiring  # 2026-12-01: in 64 days
    assert "GGBZ-801" in (await console.client.get("/certificates?q=武汉示例")).text
    assert "GGBZ-804" not in (await console.client.get("/certificates?q=ggbz-801")).text
    assert "GGBZ-801" not in (await console.client.get("/certificates?status=suspended")).text

    cert_id = await _cert_id(console, "GGBZ-801")
    page = (await console.client.get(f"/certificates/{cert_id}")).text
    assert "武汉示例有限公司" in page and "91110000600037341L" in page
    assert "zhang@example.test" in page
    # The reminder plan is the domain's own: every planned send date on the page.
    async with desk.sessions() as s:
        cert = (await s.exec(select(Certificate).where(Certificate.number == "GGBZ-801"))).one()
    items = schedule(desk.profile, facts(cert), [], desk.calendar, desk.clock.today())
    planned = plan(items, desk.profile.certificate.reminder_days_before, desk.clock.today())
    assert planned
    for r in planned:
        assert f"{r.send_on.year}年{r.send_on.month}月{r.send_on.day}日" in page
    nobody = await console.client.get(f"/certificates/{await _cert_id(console, 'GGBZ-804')}")
    assert "该组织没有联系人" in nobody.text


async def test_link_code_shown_once_and_recorded(console: Console) -> None:
    await console.signed_in()
    await _import(console, ROWS.encode())
    await console.client.post("/logout", data={"csrf_token": await console.csrf()})
    await console.signed_in("zhang@desk.example.test")  # staff may issue one
    cert_id = await _cert_id(console, "GGBZ-804")
    token = await console.csrf(f"/certificates/{cert_id}")
    response = await console.client.post(
        f"/certificates/{cert_id}/link-code", data={"csrf_token": token}
    )
    assert response.status_code == 200
    code = re.search(r"绑定码：([2-9A-Z]{4}-[2-9A-Z]{4}-[2-9A-Z]{4})", response.text)
    assert code, response.text
    (event,) = (await _events(console, cert_id))[-1:]
    assert event.type == "link_code_issued" and event.actor == "staff:zhang@desk.example.test"
    assert code.group(1) not in json.dumps(event.data, ensure_ascii=False)
    assert code.group(1) not in (await console.client.get(f"/certificates/{cert_id}")).text


async def test_suspend_restore_withdraw_each_with_its_notice(console: Console) -> None:
    desk = console.desk
    await console.signed_in()
    await _import(console, ROWS.encode())
    cert_id = await _cert_id(console, "GGBZ-801")
    before = len(await _notices(console))

    page = await _post(console, cert_id, "suspend", start="2026-09-28", months="7", reason="x")
    assert "暂停期限应为 1 至 6 个月" in page
    page = await _post(console, cert_id, "suspend", start="2026-09-28", months="3",
                       reason="监督审核发现严重不符合")  # fmt: skip
    until = suspension_end(date(2026, 9, 28), 3)
    assert f"已暂停至 {until}" in page and 'id="restore-form"' in page
    assert "自 2026年9月28日 起 3 个月" in page
    sent = (await _notices(console))[before:]
    assert [m.recipient for m in sent] == ["zhang@example.test"]
    assert "暂停资格通知书" in sent[0].payload["subject"]
    assert until.isoformat() in sent[0].payload["text"]

    page = await _post(console, cert_id, "suspend", start="2026-09-28", months="3", reason="y")
    assert "当前不是有效状态" in page
    page = await _post(console, cert_id, "restore", reason="纠正措施已验证")
    assert "已恢复认证资格" in page
    restored = (await _notices(console))[-1]
    assert restored.recipient == "zhang@example.test"
    assert "恢复认证资格通知书" in restored.payload["subject"]
    assert "纠正措施已验证" in restored.payload["text"]

    page = await _post(console, cert_id, "withdraw", reason="")
    assert "请写明理由" in page
    page = await _post(console, cert_id, "withdraw", reason="拒不整改")
    assert "已撤销" in page and 'id="withdraw-form"' not in page
    withdrawn = (await _notices(console))[-1]
    assert "撤销认证资格通知书" in withdrawn.payload["subject"]
    assert "GGBZ §7.4(3)" in withdrawn.payload["text"]
    async with desk.sessions() as s:
        cert = (await s.exec(select(Certificate).where(Certificate.number == "GGBZ-801"))).one()
    assert cert.status == "withdrawn" and cert.suspended_until is None
    events = [(e.type, e.actor) for e in await _events(console, cert_id)]
    assert events[1:] == [("suspended", WANG), ("restored", WANG), ("withdrawn", WANG)]
    assert "暂停认证资格：自 2026-09-28 起 3 个月" in page


async def test_a_notice_with_nobody_to_tell_alerts_staff(console: Console) -> None:
    await console.signed_in()
    await _import(console, ROWS.encode())
    cert_id = await _cert_id(console, "GGBZ-804")
    await _post(console, cert_id, "suspend", start="2026-09-28", months="2", reason="逾期未监督")
    alerts = [m for m in await _notices(console) if "无法送达" in str(m.payload.get("text"))]
    assert len(alerts) == 1 and "GGBZ-804" in alerts[0].payload["text"]


async def test_suspending_is_a_deciders_and_importing_an_admins(console: Console) -> None:
    await console.signed_in()
    await _import(console, ROWS.encode())
    cert_id = await _cert_id(console, "GGBZ-801")
    await console.client.post("/logout", data={"csrf_token": await console.csrf()})
    await console.signed_in("zhang@desk.example.test")  # role staff
    page = (await console.client.get(f"/certificates/{cert_id}")).text
    assert 'id="suspend-form"' not in page and "须由决定人员（decider）决定" in page
    token = await console.csrf(f"/certificates/{cert_id}")
    for action in ("suspend", "withdraw", "restore"):
        response = await console.client.post(
            f"/certificates/{cert_id}/{action}",
            data={"csrf_token": token, "months": "2", "reason": "x"},
        )
        assert response.status_code == 403, action
    assert (await console.client.get("/certificates/import")).status_code == 403
    assert [e.type for e in await _events(console, cert_id)] == ["imported"]
