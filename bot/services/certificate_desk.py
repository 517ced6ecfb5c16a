"""The console's certificate register (issue 11 §7): the register with its filters, one
certificate with its contacts, reminder plan and history, and what staff do to it — suspend,
withdraw, restore (each with its written notice to the organisation through the outbox), a link
code for a contact, and the CSV import (the CLI's own service, bot.services.certificates).

Suspending, withdrawing and restoring are certification decisions (GGBZ §7.3, §7.4; BQC §15,
§17; SGC §十一): a `decider`'s. Each action is a certificate event with the member's identity.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from bot.desk import Desk
from bot.domain.certificates import suspension_end, suspension_problem
from bot.domain.reminders import PlannedReminder, ScheduleItem, plan, schedule
from bot.domain.staff import Role
from bot.services import staff
from bot.services.certificate_notices import (
    Texts,
    alert_no_recipient,
    notify_organisation,
    queue_suspension_notice,
)
from bot.services.certificates import CertificateView, find, view
from bot.services.certificates_import import ImportResult, import_bytes
from bot.services.contacts import IssuedCode, issue_link_code
from messages.render import t, th
from storage.models import Certificate, CertificateEvent, Reminder, StaffMember
from storage.repo import certificate_events as repo
from storage.repo import reminders as reminder_repo
from storage.repo.reminders import facts
from storage.unit_of_work import UnitOfWork

DECISION_ROLE = Role.DECIDER  # suspend, withdraw, restore
IMPORT_ROLE = Role.ADMIN  # the whole register at once
STATUSES = ("valid", "suspended", "withdrawn", "expired")
EXPIRING_DAYS = 90  # "expiring": within the first reminder's reach


class CertificateRefused(Exception):
    """An action the rules refuse: `key` names the catalog text, `args_` fill it."""

    def __init__(self, key: str, **args: object) -> None:
        super().__init__(key)
        self.key, self.args_ = key, args

    def text(self, loc: str) -> str:
        return t(self.key, loc, **self.args_)


# --- the register -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CertFilter:
    status: str | None = None
    standard: str | None = None
    expiring: bool = False  # expires within EXPIRING_DAYS
    overdue: bool = False  # surveillance overdue
    q: str | None = None  # number or holder


async def register(desk: Desk, uow: UnitOfWork, where: CertFilter) -> list[CertificateView]:
    today = desk.clock.today()
    if where.q:
        rows = await find(desk, uow, where.q)
    else:
        every = await repo.every(uow.session)
        ncs = await reminder_repo.open_nonconformities(
            uow.session, [c.id for c in every if c.id is not None]
        )
        rows = [view(desk.profile, c, desk.calendar, today, ncs.get(c.id or 0, [])) for c in every]
    horizon = today + timedelta(days=EXPIRING_DAYS)
    return [
        v
        for v in rows
        if (where.status is None or v.status == where.status)
        and (where.standard is None or v.standard == where.standard)
        and (not where.expiring or (v.status in ("valid", "suspended") and v.expires_on <= horizon))
        and (not where.overdue or v.surveillance_overdue)
    ]


async def standards(uow: UnitOfWork) -> list[str]:
    return sorted({c.standard for c in await repo.every(uow.session)})


# --- one certificate --------------------------------------------------------------------------


@dataclass
class CertificatePage:
    cert: Certificate
    view: CertificateView
    schedule: list[ScheduleItem]
    planned: list[PlannedReminder]  # what the plan would send from today
    stored: list[Reminder]  # the reminders the scheduler stored: sent, to send, no recipient
    events: list[CertificateEvent]
    names: dict[str, str] = field(default_factory=dict)
    suspension_months: tuple[int, int] = (1, 6)


def months_allowed(desk: Desk) -> tuple[int, int]:
    """The suspension's length the profile allows (GGBZ §7.3.4 1–6, BQC §15 ≤ 6)."""
    policy = desk.profile.suspension
    if policy is not None:
        return policy.min_months, policy.max_months
    rule = desk.profile.rules.get("suspension.max")
    return 1, rule.count if rule is not None else 6


async def certificate_page(desk: Desk, uow: UnitOfWork, number: str) -> CertificatePage | None:
    cert = await repo.lock(uow.session, number, for_update=False)
    if cert is None or cert.id is None:
        return None
    found = [v for v in await find(desk, uow, cert.number, with_contacts=True)
             if v.number == cert.number]  # fmt: skip
    today = desk.clock.today()
    ncs = (await reminder_repo.open_nonconformities(uow.session, [cert.id])).get(cert.id, [])
    the_facts = facts(cert)
    items = (
        schedule(desk.profile, the_facts, ncs, desk.calendar, today)
        if found[0].status in ("valid", "suspended")
        else []
    )
    events = await repo.of(uow.session, cert.id)
    return CertificatePage(
        cert=cert,
        view=found[0],
        schedule=items,
        planned=plan(items, desk.profile.certificate.reminder_days_before, today),
        stored=await reminder_repo.reminders_of(uow.session, cert.id),
        events=events,
        names=await staff.names_of_actors(uow, [e.actor for e in events]),
        suspension_months=months_allowed(desk),
    )


async def number_of(uow: UnitOfWork, certificate_id: int) -> str | None:
    return await repo.number_of(uow.session, certificate_id)


async def id_of(uow: UnitOfWork, number: str) -> int | None:
    """The certificate numbered `number` (any case)."""
    cert = await repo.lock(uow.session, number, for_update=False)
    return cert.id if cert is not None else None


# --- actions ----------------------------------------------------------------------------------


async def _locked(desk: Desk, uow: UnitOfWork, number: str) -> tuple[Certificate, str]:
    cert = await repo.lock(uow.session, number)
    if cert is None or cert.id is None:
        raise LookupError(number)
    today = desk.clock.today()
    return cert, view(desk.profile, cert, desk.calendar, today).status


async def _record(
    desk: Desk, uow: UnitOfWork, cert: Certificate, actor: StaffMember, type: str, **data: object
) -> CertificateEvent:
    cert.updated_at = desk.clock.now()
    uow.session.add(cert)
    return await repo.add(
        uow.session, cert.id or 0, actor=staff.actor_of(actor), type=type,
        at=desk.clock.now(), data=_plain(data),
    )  # fmt: skip


def _plain(data: dict[str, object]) -> dict[str, object]:
    """Dates as ISO text: the history is JSON."""
    return {
        k: _plain(v) if isinstance(v, dict) else v.isoformat() if isinstance(v, date) else v
        for k, v in data.items()
    }


async def suspend(
    desk: Desk,
    uow: UnitOfWork,
    number: str,
    actor: StaffMember,
    *,
    start: date,
    months: int,
    reason: str,
) -> Certificate:
    """Suspend a valid certificate from `start` for `months` (the profile's range); the written
    notice (《暂停资格通知书》) goes to the organisation's contacts, staff hear if it has none."""
    cert, status = await _locked(desk, uow, number)
    if status != "valid":
        raise CertificateRefused("console.cert_not_valid", number=cert.number)
    low, high = months_allowed(desk)
    if suspension_problem(months, low, high) is not None:
        raise CertificateRefused("console.cert_months", low=low, high=high)
    if start > desk.clock.today():
        raise CertificateRefused("console.cert_start_future")
    if not reason.strip():
        raise CertificateRefused("console.cert_no_reason")
    cert.status, cert.suspended_on, cert.suspension_months = "suspended", start, months
    cert.suspended_until = suspension_end(start, months)
    await _record(desk, uow, cert, actor, "suspended", start=start, months=months,
                  until=cert.suspended_until, reason=reason.strip())  # fmt: skip
    await queue_suspension_notice(desk, uow.session, cert, desk.profile)
    return cert


async def _notice(
    desk: Desk, uow: UnitOfWork, cert: Certificate, what: str, **args: object
) -> None:
    """The written notice `what` (withdrawal | restoration) to the organisation's contacts."""
    full = {"number": cert.number, "holder": cert.holder, **args}

    def texts(loc: str) -> tuple[str, str, str]:
        return (
            th(f"console.cert_{what}_notice", loc, **full),
            t(f"console.cert_{what}_notice_subject", loc, **full),
            t(f"console.cert_{what}_notice_body", loc, **full),
        )

    made: Texts = texts
    key = f"{what}:{cert.id}:{desk.clock.today()}"
    if not await notify_organisation(desk, uow.session, cert, key, made):
        label = t(f"console.cert_what_{what}", desk.settings.default_locale)
        await alert_no_recipient(desk, uow.session, cert, key, label)


def _withdrawal_clause(desk: Desk) -> str:
    rule = desk.profile.rules.get("withdrawal.decide")
    return rule.clause if rule is not None else ""


async def withdraw(
    desk: Desk, uow: UnitOfWork, number: str, actor: StaffMember, *, reason: str
) -> Certificate:
    """Withdraw a valid or suspended certificate (GGBZ §7.4, BQC §17), with its notice."""
    cert, status = await _locked(desk, uow, number)
    if status not in ("valid", "suspended"):
        raise CertificateRefused("console.cert_not_in_force", number=cert.number)
    if not reason.strip():
        raise CertificateRefused("console.cert_no_reason")
    was = cert.status
    cert.status = "withdrawn"
    cert.suspended_on = cert.suspension_months = cert.suspended_until = None
    on = desk.clock.today()
    await _record(desk, uow, cert, actor, "withdrawn", was=was, reason=reason.strip(), on=on)
    await _notice(desk, uow, cert, "withdrawal", on=on, reason=reason.strip(),
                  clause=_withdrawal_clause(desk))  # fmt: skip
    return cert


async def restore(
    desk: Desk, uow: UnitOfWork, number: str, actor: StaffMember, *, reason: str
) -> Certificate:
    """Lift a suspension once the corrections are verified (GGBZ §7.3.4), with its notice."""
    cert, status = await _locked(desk, uow, number)
    if status != "suspended":
        raise CertificateRefused("console.cert_not_suspended", number=cert.number)
    if not reason.strip():
        raise CertificateRefused("console.cert_no_reason")
    before = {"start": cert.suspended_on, "months": cert.suspension_months,
              "until": cert.suspended_until}  # fmt: skip
    cert.status = "valid"
    cert.suspended_on = cert.suspension_months = cert.suspended_until = None
    on = desk.clock.today()
    await _record(desk, uow, cert, actor, "restored", suspension=before, reason=reason.strip(),
                  on=on)  # fmt: skip
    await _notice(desk, uow, cert, "restoration", on=on, reason=reason.strip())
    return cert


async def link_code(desk: Desk, uow: UnitOfWork, number: str, actor: StaffMember) -> IssuedCode:
    """A one-time code for a contact of the holder (`certdesk certificates link-code`)."""
    issued = await issue_link_code(desk, uow, number, created_by=staff.actor_of(actor))
    cert, _ = await _locked(desk, uow, issued.number)
    # The code itself is never stored in clear, nor in the history.
    await _record(desk, uow, cert, actor, "link_code_issued", expires_at=issued.expires_at)
    return issued


async def import_upload(
    desk: Desk, uow: UnitOfWork, data: bytes, actor: StaffMember
) -> ImportResult:
    """A CSV uploaded in the browser, through the CLI's import (same checks, same report);
    every certificate it touched gets an event naming the file's importer."""
    result = await import_bytes(desk, uow, data)
    # The rows imported, as the import itself reports them: no second reading of the file.
    events = [(cert_id, {"line": line}) for line, cert_id in result.touched]
    await repo.add_many(uow.session, events, actor=staff.actor_of(actor), type="imported",
                        at=desk.clock.now())  # fmt: skip
    return result


__all__ = [
    "DECISION_ROLE",
    "EXPIRING_DAYS",
    "IMPORT_ROLE",
    "STATUSES",
    "CertFilter",
    "CertificatePage",
    "CertificateRefused",
    "certificate_page",
    "id_of",
    "import_upload",
    "link_code",
    "months_allowed",
    "number_of",
    "register",
    "restore",
    "standards",
    "suspend",
    "withdraw",
]
