"""Queries of applications, their stage history, their documents and the stored files."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import (
    Application,
    ApplicationEvent,
    Contact,
    Document,
    DocumentStatus,
    Organisation,
    StoredFile,
)
from storage.sql import id_of


async def ref_exists(session: AsyncSession, ref: str) -> bool:
    return (
        await session.exec(select(Application.id).where(Application.ref == ref))
    ).first() is not None


async def latest_for_contact(session: AsyncSession, contact_id: int) -> Application | None:
    query = (
        select(Application)
        .where(Application.contact_id == contact_id)
        .order_by(col(Application.id).desc())
    )
    return (await session.exec(query)).first()


async def create(
    session: AsyncSession,
    *,
    ref: str,
    organisation_id: int,
    contact_id: int,
    scheme: str,
    now: datetime,
) -> Application:
    app = Application(
        ref=ref,
        organisation_id=organisation_id,
        contact_id=contact_id,
        scheme=scheme,
        stage="draft",
        created_at=now,
        updated_at=now,
    )
    session.add(app)
    await session.flush()
    session.add(ApplicationEvent(application_id=id_of(app), stage="draft", at=now))
    return app


async def set_stage(
    session: AsyncSession, app: Application, stage: str, now: datetime, note: str | None = None
) -> None:
    app.stage = stage
    app.updated_at = now
    session.add(app)
    session.add(ApplicationEvent(application_id=id_of(app), stage=stage, at=now, note=note))


async def events(session: AsyncSession, application_id: int) -> Sequence[ApplicationEvent]:
    query = (
        select(ApplicationEvent)
        .where(ApplicationEvent.application_id == application_id)
        .order_by(col(ApplicationEvent.id))
    )
    return (await session.exec(query)).all()


async def current_documents(session: AsyncSession, application_id: int) -> Sequence[Document]:
    """The latest upload of each checklist item (replaced ones left out)."""
    query = (
        select(Document)
        .where(
            Document.application_id == application_id,
            Document.status != DocumentStatus.REPLACED.value,
        )
        .order_by(col(Document.id))
    )
    return (await session.exec(query)).all()


async def stored_file(
    session: AsyncSession, *, sha256: str, size: int, content_type: str, path: str, now: datetime
) -> StoredFile:
    """The stored_file row of these bytes, created once per content hash."""
    found = (await session.exec(select(StoredFile).where(StoredFile.sha256 == sha256))).first()
    if found is not None:
        return found
    row = StoredFile(sha256=sha256, size=size, content_type=content_type, path=path, created_at=now)
    session.add(row)
    await session.flush()
    return row


async def add_document(
    session: AsyncSession,
    *,
    application_id: int,
    item_id: str,
    stored_file_id: int,
    original_name: str,
    now: datetime,
) -> Document:
    """A new upload for an item; an earlier upload of the same item becomes `replaced`."""
    query = select(Document).where(
        Document.application_id == application_id,
        Document.item_id == item_id,
        Document.status != DocumentStatus.REPLACED.value,
    )
    for old in (await session.exec(query)).all():
        old.status = DocumentStatus.REPLACED.value
        session.add(old)
    doc = Document(
        application_id=application_id,
        item_id=item_id,
        stored_file_id=stored_file_id,
        original_name=original_name,
        status=DocumentStatus.RECEIVED.value,
        uploaded_at=now,
    )
    session.add(doc)
    await session.flush()
    return doc


async def review_document(
    session: AsyncSession, doc: Document, *, status: str, reason: str | None, by: str, now: datetime
) -> None:
    doc.status = status
    doc.reason = reason
    doc.reviewed_by = by
    doc.reviewed_at = now
    session.add(doc)


async def document_with_context(
    session: AsyncSession, document_id: int
) -> tuple[Document, Application, Organisation, Contact] | None:
    """A document with the application, organisation and contact it belongs to."""
    doc = await session.get(Document, document_id)
    if doc is None:
        return None
    app = await session.get(Application, doc.application_id)
    assert app is not None
    org = await session.get(Organisation, app.organisation_id)
    contact = await session.get(Contact, app.contact_id)
    assert org is not None and contact is not None
    return doc, app, org, contact
