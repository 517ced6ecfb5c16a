"""The register import against the real database, a page at a time: rows across pages share
their holder by credit code, a re-import that suspends a known certificate sends its notice,
a file's second row with a number is refused, contacts are added once."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from sqlmodel import func, select

from bot.services.certificates_import import PAGE, import_bytes
from storage.models import Certificate, Contact, Organisation, OutboxMessage
from storage.unit_of_work import UnitOfWork
from tests.integration.test_certificates_contacts import World, at, world

__all__ = ["world"]  # the fixture, imported for pytest
HEADER = (
    "证书编号;持证组织;认证标准;发证日期;有效期至;状态;暂停日期;暂停月数;统一社会信用代码;"
    "联系邮箱\n"
)
USCC = "91110000600037341L"


async def _import(w: World, text: str) -> dict[str, object]:
    async with UnitOfWork(w.desk.sessions) as uow:
        result = await import_bytes(w.desk, uow, text.encode("gbk"))
    return result.to_json()


async def _count(w: World, table: type) -> int:
    async with w.desk.sessions() as s:
        return int((await s.exec(select(func.count()).select_from(table))).one())


async def test_pages_share_holders_and_a_suspension_on_reimport_is_notified(
    world: World, tmp_path: Path
) -> None:
    w = world
    w.clock.set(at(date(2026, 3, 20)))
    count = PAGE * 2 + 7
    rows = [f"P-{n};示例有限公司;S;2026/1/5;2029年1月4日;有效;;;{USCC if n % 2 else ''};"
            f"c{n % 3}@x.cn、shared@x.cn" for n in range(count)]  # fmt: skip
    rows.insert(3, rows[0])  # the same number twice
    report = await _import(w, HEADER + "\n".join(rows) + "\n")
    assert report["imported"] == count and report["updated"] == 0
    assert report["refused"] == [{"line": 5, "reason": "certificate number P-0 is also on line 2:"
                                  " only line 2 is imported"}]  # fmt: skip
    assert await _count(w, Certificate) == count
    # Odd rows share one holder by its credit code; even rows without one are one each.
    assert await _count(w, Organisation) == 1 + (count + 1) // 2
    async with w.desk.sessions() as s:
        coded = (await s.exec(select(Organisation).where(Organisation.uscc == USCC))).one()
        emails = await s.exec(select(Contact.email).where(Contact.organisation_id == coded.id))
        assert sorted(emails.all()) == ["c0@x.cn", "c1@x.cn", "c2@x.cn", "shared@x.cn"]
    before = await _count(w, OutboxMessage)
    again = HEADER + f"P-1;示例有限公司;S;2026-01-05;2029-01-04;暂停;2026-03-20;3;{USCC};\n"
    assert (await _import(w, again))["updated"] == 1
    async with w.desk.sessions() as s:
        notices = (await s.exec(select(OutboxMessage))).all()[before:]
    assert any("暂停" in str(m.payload) and "P-1" in str(m.payload) for m in notices)
    assert (await _import(w, again))["updated"] == 1
    assert await _count(w, OutboxMessage) == before + len(notices)  # unchanged: no new notice
