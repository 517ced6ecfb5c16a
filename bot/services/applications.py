"""Applications: opening one, the applicant's snapshot, receiving a document and staff review.

Each service takes the caller's unit of work; the rules are bot.domain.applications'.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.desk import Desk
from bot.domain.applications import (
    NOT_ACCEPTED,
    REJECT_REASONS,
    UNDER_REVIEW,
    Progress,
    check_move,
    progress,
    stage_for,
)
from bot.domain.refs import unique_ref
from bot.outbox.messages import TelegramText, enqueue
from bot.outbox.to_staff import queue_for_staff
from bot.services.staff_files import StaffFile, queue_files_for_staff
from messages.render import catalog, t, th
from storage.files import store_file
from storage.models import Application, Contact, Document, Organisation, StoredFile
from storage.repo import applications as repo
from storage.unit_of_work import UnitOfWork

APPLICATION_REF_PREFIX = "AP"


@dataclass
class Snapshot:
    application: Application
    organisation: Organisation
    progress: Progress
    events: Sequence[tuple[str, object]]  # (stage, at)


async def open_application(
    desk: Desk, uow: UnitOfWork, contact: Contact, org: Organisation, scheme: str
) -> tuple[Application, bool]:
    """The contact's application, created (and staff alerted) when there is none."""
    now = desk.clock.now()
    session = uow.session
    existing = await repo.latest_for_contact(session, contact.id or 0)
    if existing is not None and existing.stage != NOT_ACCEPTED:
        return existing, False
    ref = await unique_ref(
        APPLICATION_REF_PREFIX, desk.clock.today().year, lambda r: repo.ref_exists(session, r)
    )
    app = await repo.create(
        session,
        ref=ref,
        organisation_id=org.id or 0,
        contact_id=contact.id or 0,
        scheme=scheme,
        now=now,
    )
    text = th(
        "application.staff_new",
        desk.settings.default_locale,
        ref=ref,
        organisation=org.name,
        scheme=scheme_name(scheme, desk.settings.default_locale),
        contact=contact.name or "—",
    )
    await queue_for_staff(desk, session, key=f"application-new:{ref}", text=text)
    return app, True


def scheme_name(scheme: str, locale: str | None) -> str:
    """A scheme as people name it (社会责任管理体系), never the bare code (SA)."""
    key = f"application.scheme_{scheme}"
    return t(key, locale) if key in catalog() else scheme


async def snapshot(desk: Desk, uow: UnitOfWork, contact_id: int) -> Snapshot | None:
    session = uow.session
    app = await repo.latest_for_contact(session, contact_id)
    if app is None:
        return None
    org = await session.get(Organisation, app.organisation_id)
    assert org is not None
    docs = await repo.current_documents(session, app.id or 0)
    evts = await repo.events(session, app.id or 0)
    return Snapshot(
        app, org, progress(desk.profile, app.scheme, docs), [(e.stage, e.at) for e in evts]
    )


async def receive_document(
    desk: Desk,
    uow: UnitOfWork,
    app: Application,
    org: Organisation,
    item_id: str,
    data: bytes,
    original_name: str,
    content_type: str,
) -> Document:
    """Store the bytes by hash, record the upload, move the stage, queue the staff prompt."""

    now = desk.clock.now()
    sha, path = await store_file(desk.data_dir, data)
    session = uow.session
    row = await repo.stored_file(
        session, sha256=sha, size=len(data), content_type=content_type, path=path, now=now
    )
    doc = await repo.add_document(
        session,
        application_id=app.id or 0,
        item_id=item_id,
        stored_file_id=row.id or 0,
        original_name=original_name,
        now=now,
    )
    current = await session.get(type(app), app.id)
    assert current is not None
    docs = await repo.current_documents(session, app.id or 0)
    await _follow_checklist(desk, session, current, docs)
    await _queue_review_prompt(desk, session, doc, row, current, org)
    return doc


async def _follow_checklist(
    desk: Desk, session: AsyncSession, app: Application, docs: Iterable[Document]
) -> str:
    """Move the application to the stage its checklist now puts it in."""
    p = progress(desk.profile, app.scheme, docs)
    target = stage_for(app.stage, p)
    if target != app.stage:
        check_move(app.stage, target)
        await repo.set_stage(session, app, target, desk.clock.now())
    return target


async def _queue_review_prompt(
    desk: Desk,
    session: AsyncSession,
    doc: Document,
    file: StoredFile,
    app: Application,
    org: Organisation,
) -> None:
    """The accept/reject prompt: in the staff chat the document itself, captioned with its
    checklist item, the buttons under it; on the other staff channels the text alert."""
    locale = desk.settings.default_locale
    text = th(
        "application.staff_review",
        locale,
        ref=app.ref,
        organisation=org.name,
        item=t(f"documents.{doc.item_id}", locale),
        name=doc.original_name,
    )
    verdict = [
        {"text": t("application.btn_accept", locale), "callback_data": f"sd:a:{doc.id}"},
        {"text": t("application.btn_reject", locale), "callback_data": f"sd:r:{doc.id}"},
    ]
    # Kept as a text (no staff chat yet): the file is sent on demand (handlers/telegram/
    # staff_documents), so the text keeps its "open the file" button.
    view = [{"text": t("staff.btn_view_file", locale), "callback_data": f"sd:v:{doc.id}"}]
    await queue_files_for_staff(
        desk,
        session,
        key=f"document-review:{doc.id}",
        files=[StaffFile(file, doc.original_name, text)],
        text=text,
        buttons=[verdict],
        text_buttons=[verdict, view],
    )


@dataclass(frozen=True)
class ReviewFile:
    """An uploaded document as staff open it: the stored bytes, and a caption naming the
    checklist item it was sent for."""

    path: Path
    name: str
    content_type: str
    caption: str  # HTML
    pending: bool  # not yet accepted or rejected


async def review_file(desk: Desk, uow: UnitOfWork, document_id: int) -> ReviewFile | None:
    """The file of document `document_id`; None when there is no such document or its bytes
    are gone from DATA_DIR (never a path outside it)."""
    found = await repo.document_with_context(uow.session, document_id)
    if found is None:
        return None
    doc, app, org, _contact = found
    row = await uow.session.get(StoredFile, doc.stored_file_id)
    if row is None:
        return None
    root = desk.data_dir.resolve()
    path = (root / row.path).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        return None
    locale = desk.settings.default_locale
    caption = th(
        "staff.file_caption",
        locale,
        item=t(f"documents.{doc.item_id}", locale),
        ref=app.ref,
        organisation=org.name,
        name=doc.original_name,
    )
    return ReviewFile(path, doc.original_name, row.content_type, caption, doc.status == "received")


@dataclass(frozen=True)
class Review:
    """What a staff decision on a document did."""

    status: str  # accepted | rejected | already_<status> | missing
    ref: str = ""
    item_id: str = ""
    stage: str = ""


async def review_document(
    desk: Desk, uow: UnitOfWork, document_id: int, *, accept: bool, reason: str | None, by: str
) -> Review:
    """Accept or reject an upload; the applicant is told through the outbox."""
    now = desk.clock.now()
    session = uow.session
    found = await repo.document_with_context(session, document_id)
    if found is None:
        return Review("missing")
    doc, app, _org, contact = found
    if doc.status != "received":
        return Review(f"already_{doc.status}", app.ref, doc.item_id, app.stage)
    status = "accepted" if accept else "rejected"
    await repo.review_document(session, doc, status=status, reason=reason, by=by, now=now)
    docs = await repo.current_documents(session, app.id or 0)
    before = app.stage
    stage = await _follow_checklist(desk, session, app, docs)
    locale = contact.locale
    if contact.telegram_chat_id is not None:
        item = t(f"documents.{doc.item_id}", locale)
        if accept:
            text = th("application.doc_accepted", locale, item=item, ref=app.ref)
        else:
            # A reason of the list (Telegram buttons) is a key; the console's is free text.
            known = reason in REJECT_REASONS
            why = t(f"application.reason_{reason}", locale) if known else (reason or "—")
            text = th("application.doc_rejected", locale, item=item, ref=app.ref, reason=why)
        if stage == UNDER_REVIEW and before != UNDER_REVIEW:
            text += "\n\n" + th("application.now_under_review", locale, ref=app.ref)
        message = TelegramText(str(contact.telegram_chat_id), text)
        await enqueue(session, message, key=f"document-{status}:{doc.id}", now=now)
    return Review(status, app.ref, doc.item_id, stage)


__all__ = [
    "APPLICATION_REF_PREFIX",
    "Review",
    "ReviewFile",
    "Snapshot",
    "open_application",
    "receive_document",
    "review_document",
    "review_file",
    "scheme_name",
    "snapshot",
]
