"""Issuing the certificate at the end of an application: the certification decision (GGBZ
§5.12.1, BQC 由技术委员会主任做出认证授予与否的决定) taken by a decider who was not on the audit
team, recorded as an application event, and the certificate row it creates, linked to the
applicant's organisation (whose contacts receive its reminders, bot.services.reminders).

`issue_certificate(desk, uow, application_id, actor, …)` is the one way to do it; linking more
contacts, suspension and the register are bot.services.certificates'.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from bot.desk import Desk
from bot.domain.applications import CERTIFIED, DECISION
from bot.domain.deadlines import add_months
from bot.services import staff
from bot.services.application_desk import MoveRefused, check_may_move, tell_applicant
from bot.services.cases import format_date
from storage.models import Application, Certificate, StaffMember
from storage.repo import certificates as cert_repo
from storage.repo import console as repo
from storage.unit_of_work import UnitOfWork


@dataclass(frozen=True)
class Issued:
    certificate: Certificate
    application: Application


def default_expiry(desk: Desk, decided_on: date) -> date:
    """The last day of the profile's validity (GGBZ §6.2.2: at most 3 years)."""
    return add_months(decided_on, desk.profile.certificate.validity_months) - timedelta(days=1)


async def issue_certificate(
    desk: Desk,
    uow: UnitOfWork,
    application_id: int,
    actor: StaffMember,
    *,
    number: str,
    decided_on: date | None = None,
    expires_on: date | None = None,
    scope: str | None = None,
    stage2_end_on: date | None = None,
) -> Issued:
    """Grant certification to the application (at the decision stage) and create its
    certificate; MoveRefused says why not (role, audit team, stage, number taken, dates)."""
    session = uow.session
    app = await session.get(Application, application_id, with_for_update=True)
    if app is None:
        raise LookupError(application_id)
    events = await repo.application_events(session, application_id)
    check_may_move(app, events, actor, CERTIFIED, None)
    number = " ".join(number.split())
    if not number:
        raise MoveRefused("console.cert_no_number", ref=app.ref)
    if await cert_repo.by_number(session, number) is not None:
        raise MoveRefused("console.cert_number_taken", ref=app.ref, number=number)
    decided = decided_on or desk.clock.today()
    expires = expires_on or default_expiry(desk, decided)
    if not decided < expires <= default_expiry(desk, decided):
        raise MoveRefused(
            "console.cert_bad_expiry", ref=app.ref, months=desk.profile.certificate.validity_months
        )
    org, contact = await repo.application_parties(session, app)
    now = desk.clock.now()
    cert = Certificate(
        number=number,
        organisation_id=org.id,
        holder=org.name,
        standard=desk.profile.body.standard,
        scope=(scope or "").strip() or app.scope,
        decided_on=decided,
        stage2_end_on=stage2_end_on,
        expires_on=expires,
        updated_at=now,
    )
    session.add(cert)
    await session.flush()
    app.stage, app.updated_at = CERTIFIED, now
    session.add(app)
    event = await repo.add_application_event(
        session,
        application_id,
        stage=CERTIFIED,
        now=now,
        actor=staff.actor_of(actor),
        type="certificate_issued",
        data={
            "from": DECISION,
            "certificate": number,
            "certificate_id": cert.id,
            "decided_on": decided.isoformat(),
            "expires_on": expires.isoformat(),
        },
    )
    loc = contact.locale
    await tell_applicant(
        desk,
        uow,
        app,
        contact,
        f"application:{app.ref}:event:{event.id}",
        "console.applicant_certified",
        ref=app.ref,
        number=number,
        standard=cert.standard,
        expires=format_date(expires, loc),
    )
    return Issued(cert, app)


__all__ = ["Issued", "default_expiry", "issue_certificate"]
