"""Applications in the console: the checklist with each document viewable, review with a free
reason (the applicant told), the stages through to the certification decision, and issuing the
certificate linked to the organisation — decided by a decider who was not on the audit team."""

from __future__ import annotations

from datetime import date

from sqlmodel import col, select

from storage.models import Application, ApplicationEvent, Certificate, OutboxMessage
from tests.integration.console_kit import (
    PDF,
    Console,
    add_staff,
    apply_with_documents,
    console,
)

__all__ = ["console"]  # the fixture, imported for pytest


async def _post(console: Console, path: str, ref: str, **data: str) -> str:
    token = await console.csrf(f"/applications/{ref}")
    response = await console.client.post(path, data={"csrf_token": token, **data})
    assert response.status_code == 303, response.text
    return (await console.client.get(response.headers["location"])).text


async def _told(console: Console, chat: str = "7001") -> list[str]:
    async with console.desk.sessions() as s:
        rows = (
            await s.exec(
                select(OutboxMessage)
                .where(OutboxMessage.recipient == chat)
                .order_by(col(OutboxMessage.id))
            )
        ).all()
    return [r.payload["text"] for r in rows]


async def test_review_documents_with_a_free_reason_and_view_each(console: Console) -> None:
    a = await apply_with_documents(console.desk, uploads=2)
    await console.signed_in("zhang@desk.example.test")
    listing = (await console.client.get("/applications")).text
    assert a.ref in listing and "武汉示例制造有限公司" in listing
    page = (await console.client.get(f"/applications/{a.ref}")).text
    assert "已收到 2/8，已通过 0/8" in page and "application_form.pdf" in page
    doc = a.documents["application_form"]
    shown = await console.client.get(f"/applications/{a.ref}/files/{doc}")
    assert shown.status_code == 200 and shown.content == PDF + b"0"
    assert shown.headers["content-disposition"].startswith("inline")
    assert "default-src 'none'" in shown.headers["content-security-policy"]
    saved = await console.client.get(f"/applications/{a.ref}/files/{doc}?download=1")
    assert saved.headers["content-disposition"].startswith("attachment")
    # A document is reached only through its own application.
    other = await apply_with_documents(console.desk, chat_id=7002, uploads=1)
    assert (await console.client.get(f"/applications/{other.ref}/files/{doc}")).status_code == 404

    review = f"/applications/{a.ref}/documents/{doc}/review"
    page = await _post(console, review, a.ref, decision="reject", reason="")
    assert "资料不通过须写明理由" in page
    page = await _post(console, review, a.ref, decision="reject", reason="缺少法定代表人签字")
    assert "资料未通过，已将理由告知申请人" in page
    assert "未通过：缺少法定代表人签字" in page
    assert any("缺少法定代表人签字" in text for text in await _told(console))
    page = await _post(console, review, a.ref, decision="accept")
    assert "这份资料已审核过" in page
    licence = a.documents["legal_status"]
    await _post(
        console, f"/applications/{a.ref}/documents/{licence}/review", a.ref, decision="accept"
    )
    async with console.desk.sessions() as s:
        events = (
            await s.exec(
                select(ApplicationEvent).where(ApplicationEvent.type.startswith("document_"))  # type: ignore[union-attr]
            )
        ).all()
    assert [(e.type, e.actor) for e in events] == [
        ("document_rejected", "staff:zhang@desk.example.test"),
        ("document_accepted", "staff:zhang@desk.example.test"),
    ]


async def test_stages_to_the_decision_and_the_certificate(console: Console) -> None:
    a = await apply_with_documents(console.desk)
    await add_staff(console.desk, "李娜", "li@desk.example.test", "decider")
    await console.signed_in("zhang@desk.example.test")
    for doc in a.documents.values():
        await _post(
            console, f"/applications/{a.ref}/documents/{doc}/review", a.ref, decision="accept"
        )
    page = (await console.client.get(f"/applications/{a.ref}")).text
    assert "评审中" in page  # every document accepted: under review
    move = f"/applications/{a.ref}/move"
    page = await _post(console, move, a.ref, target="not_accepted", reason="")
    assert "请写明理由" in page
    await _post(console, move, a.ref, target="accepted", reason="")
    await _post(console, move, a.ref, target="stage1", audit_team="张伟")
    await _post(console, move, a.ref, target="stage2", audit_team="张伟、刘强")
    page = await _post(console, move, a.ref, target="decision")
    assert 'id="issue-form"' not in page and "认证决定须由决定人员作出" in page
    assert "现场审核" in "\n".join(await _told(console))  # the applicant heard of stage 2
    # Staff may not issue; a forged post is refused by role.
    forged = await console.client.post(
        f"/applications/{a.ref}/issue",
        data={"csrf_token": await console.csrf(), "number": "GGBZ-2026-0001"},
    )
    assert forged.status_code == 403
    await console.client.post("/logout", data={"csrf_token": await console.csrf()})

    await console.signed_in("li@desk.example.test")
    issue = f"/applications/{a.ref}/issue"
    page = await _post(console, issue, a.ref, number="GGBZ-2026-0001", expires_on="2030-01-01")
    assert "有效期须晚于决定日期，且不超过 36 个月" in page
    page = await _post(console, issue, a.ref, number="GGBZ-2026-0001")
    assert "已为申请" in page and "GGBZ-2026-0001" in page
    assert any("GGBZ-2026-0001" in t and "2029年9月27日" in t for t in await _told(console))
    async with console.desk.sessions() as s:
        cert = (await s.exec(select(Certificate))).one()
        app = (await s.exec(select(Application).where(Application.ref == a.ref))).one()
        last = (
            await s.exec(select(ApplicationEvent).order_by(col(ApplicationEvent.id).desc()))
        ).first()
    assert cert.organisation_id == a.organisation_id and cert.holder == "武汉示例制造有限公司"
    assert (cert.decided_on, cert.expires_on) == (date(2026, 9, 28), date(2029, 9, 27))
    assert app.stage == "certified"
    assert last is not None and (last.type, last.actor) == (
        "certificate_issued",
        "staff:li@desk.example.test",
    )


async def test_an_audit_team_member_may_not_take_the_certification_decision(
    console: Console,
) -> None:
    a = await apply_with_documents(console.desk)
    await console.signed_in()  # 王芳, an admin
    for doc in a.documents.values():
        await _post(
            console, f"/applications/{a.ref}/documents/{doc}/review", a.ref, decision="accept"
        )
    move = f"/applications/{a.ref}/move"
    for target, team in (("accepted", ""), ("stage1", ""), ("stage2", "王芳"), ("decision", "")):
        await _post(console, move, a.ref, target=target, audit_team=team)
    page = await _post(console, f"/applications/{a.ref}/issue", a.ref, number="GGBZ-2026-0002")
    assert "您是申请" in page and "审核组成员（王芳），不能作出认证决定" in page
    page = await _post(console, move, a.ref, target="not_accepted", reason="不符合")
    assert "审核组成员（王芳）" in page
    async with console.desk.sessions() as s:
        assert (await s.exec(select(Certificate))).all() == []


async def test_the_new_pages_read_in_english(console: Console) -> None:
    a = await apply_with_documents(console.desk, uploads=1)
    await console.signed_in()
    await console.client.get("/lang?to=en&next=/")
    listing = (await console.client.get("/applications")).text
    assert "Applications" in listing and a.ref in listing
    page = (await console.client.get(f"/applications/{a.ref}")).text
    assert "received 1/8, accepted 0/8" in page and "to review" in page
    assert "Enquiries" in (await console.client.get("/enquiries")).text
