"""Applications: stages, allowed moves, the applicant's next step, checklist progress (pure),
and the service functions the Telegram handlers call (storage and outbox)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.domain.policy import Profile

if TYPE_CHECKING:
    from sqlmodel.ext.asyncio.session import AsyncSession

    from bot.desk import Desk
    from storage.models import Application, Contact, Document, Organisation

DRAFT = "draft"
DOCUMENTS_COMPLETE = "documents_complete"
UNDER_REVIEW = "under_review"
ACCEPTED = "accepted"
MORE_INFO = "more_info"
NOT_ACCEPTED = "not_accepted"
STAGE1 = "stage1"
STAGE2 = "stage2"
DECISION = "decision"
CERTIFIED = "certified"

STAGES: tuple[str, ...] = (
    DRAFT,
    DOCUMENTS_COMPLETE,
    UNDER_REVIEW,
    ACCEPTED,
    MORE_INFO,
    NOT_ACCEPTED,
    STAGE1,
    STAGE2,
    DECISION,
    CERTIFIED,
)

# Where an application may go from each stage. A rejected document sends a complete file back.
TRANSITIONS: dict[str, frozenset[str]] = {
    DRAFT: frozenset({DOCUMENTS_COMPLETE}),
    DOCUMENTS_COMPLETE: frozenset({DRAFT, UNDER_REVIEW}),
    UNDER_REVIEW: frozenset({ACCEPTED, MORE_INFO, NOT_ACCEPTED, DRAFT, DOCUMENTS_COMPLETE}),
    MORE_INFO: frozenset({DOCUMENTS_COMPLETE, UNDER_REVIEW}),
    ACCEPTED: frozenset({STAGE1}),
    NOT_ACCEPTED: frozenset(),
    STAGE1: frozenset({STAGE2}),
    STAGE2: frozenset({DECISION}),
    DECISION: frozenset({CERTIFIED, NOT_ACCEPTED}),
    CERTIFIED: frozenset(),
}


class StageError(ValueError):
    """A move the stage machine does not allow."""


def check_move(current: str, target: str) -> None:
    if target not in TRANSITIONS.get(current, frozenset()):
        raise StageError(f"an application cannot go from {current!r} to {target!r}")


def next_step_key(stage: str) -> str:
    """Catalog key of what the applicant must do next at this stage."""
    return f"application.next_{stage}"


@dataclass(frozen=True)
class ItemState:
    item_id: str
    clause: str
    status: str | None  # None: nothing uploaded; else received | accepted | rejected
    original_name: str | None = None
    reason: str | None = None
    document_id: int | None = None


@dataclass(frozen=True)
class Progress:
    items: tuple[ItemState, ...]

    @property
    def total(self) -> int:
        return len(self.items)

    @property
    def received(self) -> int:
        """Items with an upload that is not rejected ("已收到 4/9")."""
        return sum(1 for i in self.items if i.status in ("received", "accepted"))

    @property
    def accepted(self) -> int:
        return sum(1 for i in self.items if i.status == "accepted")

    @property
    def complete(self) -> bool:
        return self.received == self.total

    @property
    def all_accepted(self) -> bool:
        return self.accepted == self.total


def progress(profile: Profile, scheme: str | None, documents: Iterable[Document]) -> Progress:
    """The checklist of the scheme with the latest upload of each item."""
    latest = {d.item_id: d for d in documents}
    items = []
    for item in profile.checklist(scheme):
        doc = latest.get(item.id)
        items.append(
            ItemState(
                item.id,
                item.clause,
                doc.status if doc else None,
                doc.original_name if doc else None,
                doc.reason if doc else None,
                doc.id if doc else None,
            )
        )
    return Progress(tuple(items))


def stage_for(stage: str, p: Progress) -> str:
    """The stage the checklist puts an application in, for stages the checklist drives."""
    if stage not in (DRAFT, DOCUMENTS_COMPLETE, UNDER_REVIEW, MORE_INFO):
        return stage  # past review, uploads no longer move the application
    if p.all_accepted:
        return UNDER_REVIEW
    if p.complete:
        return DOCUMENTS_COMPLETE
    return stage if stage == MORE_INFO else DRAFT


# --- services (storage and outbox) ------------------------------------------------------------

APPLICATION_REF_PREFIX = "AP"


@dataclass
class Snapshot:
    application: Application
    organisation: Organisation
    progress: Progress
    events: Sequence[tuple[str, object]]  # (stage, at)


async def open_application(
    desk: Desk, contact: Contact, org: Organisation, scheme: str
) -> tuple[Application, bool]:
    """The contact's application, created (and staff alerted) when there is none."""
    from bot.domain.refs import unique_ref
    from bot.outbox.to_staff import queue_for_staff
    from messages.render import th
    from storage.repo import applications as repo

    now = desk.clock.now()
    async with desk.sessions() as session, session.begin():
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
            scheme=scheme,
            contact=contact.name or "—",
        )
        await queue_for_staff(desk, session, key=f"application-new:{ref}", text=text)
        return app, True


async def snapshot(desk: Desk, contact_id: int) -> Snapshot | None:
    from storage.models import Organisation
    from storage.repo import applications as repo

    async with desk.sessions() as session:
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
    app: Application,
    org: Organisation,
    item_id: str,
    data: bytes,
    original_name: str,
    content_type: str,
) -> Document:
    """Store the bytes by hash, record the upload, move the stage, queue the staff prompt."""
    from storage.files import store_file
    from storage.repo import applications as repo

    now = desk.clock.now()
    sha, path = await store_file(desk.data_dir, data)
    async with desk.sessions() as session, session.begin():
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
        await _queue_review_prompt(desk, session, doc, current, org)
        return doc


async def _follow_checklist(
    desk: Desk, session: AsyncSession, app: Application, docs: Iterable[Document]
) -> str:
    """Move the application to the stage its checklist now puts it in."""
    from storage.repo import applications as repo

    p = progress(desk.profile, app.scheme, docs)
    target = stage_for(app.stage, p)
    if target != app.stage:
        check_move(app.stage, target)
        await repo.set_stage(session, app, target, desk.clock.now())
    return target


async def _queue_review_prompt(
    desk: Desk, session: AsyncSession, doc: Document, app: Application, org: Organisation
) -> None:
    """The accept/reject prompt for the staff chat, through the outbox."""
    from bot.outbox.to_staff import queue_for_staff
    from messages.render import t, th

    locale = desk.settings.default_locale
    text = th(
        "application.staff_review",
        locale,
        ref=app.ref,
        organisation=org.name,
        item=t(f"documents.{doc.item_id}", locale),
        name=doc.original_name,
    )
    buttons = [
        [
            {"text": t("application.btn_accept", locale), "callback_data": f"sd:a:{doc.id}"},
            {"text": t("application.btn_reject", locale), "callback_data": f"sd:r:{doc.id}"},
        ]
    ]
    await queue_for_staff(
        desk, session, key=f"document-review:{doc.id}", text=text, buttons=buttons
    )


REJECT_REASONS: tuple[str, ...] = (
    "illegible",
    "wrong_document",
    "expired",
    "incomplete",
    "unsigned",
)


@dataclass(frozen=True)
class Review:
    """What a staff decision on a document did."""

    status: str  # accepted | rejected | already_<status> | missing
    ref: str = ""
    item_id: str = ""
    stage: str = ""


async def review_document(
    desk: Desk, document_id: int, *, accept: bool, reason: str | None, by: str
) -> Review:
    """Accept or reject an upload; the applicant is told through the outbox."""
    from messages.render import t, th
    from storage.repo import applications as repo
    from storage.repo.outbox import enqueue

    now = desk.clock.now()
    async with desk.sessions() as session, session.begin():
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
                why = t(f"application.reason_{reason}", locale) if reason else "—"
                text = th("application.doc_rejected", locale, item=item, ref=app.ref, reason=why)
            if stage == UNDER_REVIEW and before != UNDER_REVIEW:
                text += "\n\n" + th("application.now_under_review", locale, ref=app.ref)
            await enqueue(
                session,
                channel="telegram",
                recipient=str(contact.telegram_chat_id),
                payload={"text": text},
                idempotency_key=f"document-{status}:{doc.id}",
                now=now,
            )
        return Review(status, app.ref, doc.item_id, stage)


__all__ = [
    "REJECT_REASONS",
    "STAGES",
    "TRANSITIONS",
    "ItemState",
    "Progress",
    "Review",
    "Snapshot",
    "StageError",
    "check_move",
    "next_step_key",
    "open_application",
    "progress",
    "receive_document",
    "review_document",
    "snapshot",
    "stage_for",
]
