"""The console's view of applications: the register, one application's file, its documents,
and a staff member's actions on it (review a document, move the stage).

Document review is the applications service's (`review_document`: the status, the checklist,
the applicant's message); moving the stage follows bot.domain.application_moves. Every action
is an application event with the member as actor (`staff:<e-mail>`). Issuing the certificate
is bot.services.certificate_issue.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bot.desk import Desk
from bot.domain import application_moves as moves
from bot.domain.applications import Progress, check_move, progress
from bot.domain.staff import may
from bot.outbox.messages import Letter, TelegramText, enqueue
from bot.services import staff
from bot.services.applications import review_document
from messages.render import t, th
from storage.models import (
    Application,
    ApplicationEvent,
    Contact,
    Document,
    Organisation,
    StaffMember,
    StoredFile,
)
from storage.repo import console as repo
from storage.unit_of_work import UnitOfWork

MoveRefused = moves.MoveRefused


@dataclass(frozen=True)
class AppRow:
    application: Application
    organisation: Organisation


@dataclass
class AppFile:
    application: Application
    organisation: Organisation
    contact: Contact
    contacts: Sequence[Contact]
    progress: Progress
    documents: Sequence[Document]  # every upload, replaced ones too
    events: Sequence[ApplicationEvent]
    names: dict[str, str]
    moves: tuple[str, ...]  # the stages staff may move it to now
    audit_team: list[str]
    certificate: str | None  # the number issued, once issued


async def register(uow: UnitOfWork, stage: str | None = None) -> list[AppRow]:
    return [AppRow(a, o) for a, o in await repo.applications(uow.session, stage)]


def audit_team_of(events: Sequence[ApplicationEvent]) -> list[str]:
    """Everyone recorded on the audit team at any stage (stage 1, stage 2)."""
    team: list[str] = []
    for e in events:
        for who in (e.data or {}).get("audit_team") or []:
            if who not in team:
                team.append(str(who))
    return team


def certificate_of(events: Sequence[ApplicationEvent]) -> str | None:
    issued = [e for e in events if e.type == "certificate_issued"]
    return str((issued[-1].data or {}).get("certificate")) if issued else None


async def application_file(desk: Desk, uow: UnitOfWork, ref: str) -> AppFile | None:
    session = uow.session
    app = await repo.application_by_ref(session, ref)
    if app is None or app.id is None:
        return None
    org, contact = await repo.application_parties(session, app)
    documents = await repo.documents_of(session, app.id)
    current = [d for d in documents if d.status != "replaced"]
    events = await repo.application_events(session, app.id)
    actors = [e.actor for e in events if e.actor]
    actors += [d.reviewed_by for d in documents if d.reviewed_by]
    return AppFile(
        application=app,
        organisation=org,
        contact=contact,
        contacts=await repo.contacts_of(session, org.id or 0),
        progress=progress(desk.profile, app.scheme, current),
        documents=documents,
        events=events,
        names=await staff.names_of_actors(uow, actors),
        moves=moves.moves_from(app.stage),
        audit_team=audit_team_of(events),
        certificate=certificate_of(events),
    )


async def document(uow: UnitOfWork, ref: str, document_id: int) -> tuple[StoredFile, str] | None:
    """An upload of application `ref` with its name; None for any other (an id alone never
    reaches another application's document or a case's file)."""
    app = await repo.application_by_ref(uow.session, ref)
    doc = await uow.session.get(Document, document_id)
    if app is None or doc is None or doc.application_id != app.id:
        return None
    row = await repo.stored_file(uow.session, doc.stored_file_id)
    return (row, doc.original_name) if row else None


async def _locked(uow: UnitOfWork, ref: str) -> Application:
    app = await repo.application_by_ref(uow.session, ref, lock=True)
    if app is None or app.id is None:
        raise LookupError(ref)
    return app


async def review(
    desk: Desk,
    uow: UnitOfWork,
    ref: str,
    document_id: int,
    actor: StaffMember,
    *,
    accept: bool,
    reason: str | None,
) -> str:
    """Accept or reject an upload of `ref` (a rejection needs its reason, told to the
    applicant); the review's status (`accepted`, `rejected`, `already_…`)."""
    app = await _locked(uow, ref)
    doc = await uow.session.get(Document, document_id)
    if doc is None or doc.application_id != app.id:
        raise LookupError(document_id)
    reason = (reason or "").strip() or None
    if not accept and reason is None:
        raise MoveRefused("console.app_reject_no_reason", ref=ref)
    done = await review_document(
        desk, uow, document_id, accept=accept, reason=reason, by=staff.actor_of(actor)
    )
    if done.status in ("accepted", "rejected"):
        await repo.add_application_event(
            uow.session,
            app.id or 0,
            stage=done.stage,
            now=desk.clock.now(),
            actor=staff.actor_of(actor),
            type=f"document_{done.status}",
            note=reason,
            data={"document": document_id, "item": doc.item_id, "name": doc.original_name},
        )
    return done.status


async def tell_applicant(
    desk: Desk,
    uow: UnitOfWork,
    app: Application,
    contact: Contact,
    key: str,
    text_key: str,
    **args: object,
) -> None:
    """A message to the applicant's contact through the outbox: Telegram, else e-mail."""
    loc = contact.locale
    now = desk.clock.now()
    if contact.telegram_chat_id is not None:
        chat = str(contact.telegram_chat_id)
        message = TelegramText(chat, th(text_key, loc, **args))
        await enqueue(uow.session, message, key=f"{key}:telegram", now=now)
    elif contact.email:
        text = t(text_key, loc, **args)
        letter = Letter(
            to=contact.email,
            subject=t("console.applicant_subject", loc, ref=app.ref),
            text=text,
            locale=loc,
        )
        await enqueue(uow.session, letter, key=f"{key}:email", now=now)


def check_may_move(
    app: Application,
    events: Sequence[ApplicationEvent],
    actor: StaffMember,
    target: str,
    reason: str | None,
) -> None:
    needed = moves.role_for(app.stage, target)
    if not may(actor.role, needed):
        role = t(f"console.role_{needed.value}", None)
        raise MoveRefused("console.app_needs_role", ref=app.ref, role=role)
    moves.check_move(
        app.ref, app.stage, target, reason, staff.identities_of(actor), audit_team_of(events)
    )
    check_move(app.stage, target)  # and the stage machine agrees


async def move(
    desk: Desk,
    uow: UnitOfWork,
    ref: str,
    actor: StaffMember,
    target: str,
    *,
    reason: str | None = None,
    audit_team: Sequence[str] = (),
) -> ApplicationEvent:
    """Move `ref` to `target` as `actor` (MoveRefused says why not); the applicant is told."""
    app = await _locked(uow, ref)
    events = await repo.application_events(uow.session, app.id or 0)
    reason = (reason or "").strip() or None
    check_may_move(app, events, actor, target, reason)
    now = desk.clock.now()
    before = app.stage
    app.stage, app.updated_at = target, now
    uow.session.add(app)
    data: dict[str, Any] = {"from": before}
    team = [w.strip() for w in audit_team if w.strip()]
    if target in moves.AUDIT_STAGES and team:
        data["audit_team"] = team
    event = await repo.add_application_event(
        uow.session,
        app.id or 0,
        stage=target,
        now=now,
        actor=staff.actor_of(actor),
        type="stage",
        note=reason,
        data=data,
    )
    _org, contact = await repo.application_parties(uow.session, app)
    loc = contact.locale
    await tell_applicant(
        desk,
        uow,
        app,
        contact,
        f"application:{app.ref}:event:{event.id}",
        "console.applicant_stage",
        ref=app.ref,
        stage=t(f"application.stage_{target}", loc),
        next=t(f"application.next_{target}", loc),
        reason=t("console.applicant_reason", loc, reason=reason) if reason else "",
    )
    return event


__all__ = [
    "AppFile",
    "AppRow",
    "MoveRefused",
    "application_file",
    "audit_team_of",
    "certificate_of",
    "check_may_move",
    "document",
    "move",
    "register",
    "review",
    "tell_applicant",
]
