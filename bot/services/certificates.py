"""Certificates: the public lookup and the staff view (`certdesk certificates show`).

The CSV import is bot.services.certificates_import; its names are re-exported here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import date
from typing import Any

from bot.desk import Desk
from bot.domain.calendar import WorkCalendar
from bot.domain.policy import Profile
from bot.domain.reminders import CertificateFacts, OpenNonconformity, schedule
from bot.services.certificates_import import ImportResult, Parsed, RowError, import_csv, parse_csv
from storage.models import Certificate
from storage.repo import certificates as repo
from storage.repo import organisations as org_repo
from storage.repo import reminders as reminder_repo
from storage.unit_of_work import UnitOfWork

# --- lookup -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContactView:
    name: str | None
    email: str | None
    telegram_user_id: int | None


@dataclass(frozen=True)
class CertificateView:
    number: str
    holder: str
    standard: str
    scope: str | None
    status: str  # valid | suspended | withdrawn | expired, as of today
    expires_on: date
    suspended_until: date | None
    next_surveillance: date | None
    decided_on: date | None = None
    surveillance_overdue: bool = False
    suspended_on: date | None = None
    suspension_months: int | None = None
    uscc: str | None = None
    contacts: list[ContactView] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        """Only a valid certificate is in force: a suspended one is not (GGBZ §7.3.4)."""
        return self.status == "valid"

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "holder": self.holder,
            "uscc": self.uscc,
            "standard": self.standard,
            "scope": self.scope,
            "status": self.status,
            "valid": self.valid,
            "decided_on": self.decided_on,
            "expires_on": self.expires_on,
            "next_surveillance_due": self.next_surveillance,
            "surveillance_overdue": self.surveillance_overdue,
            "suspension": None
            if self.suspended_until is None
            else {
                "start": self.suspended_on,
                "months": self.suspension_months,
                "until": self.suspended_until,
            },
            "contacts": [asdict(c) for c in self.contacts],
        }


def effective_status(status: str, expires_on: date, today: date) -> str:
    """A valid (or suspended) certificate past its expiry date is expired, whatever the row says."""
    if status in ("valid", "suspended") and today > expires_on:
        return "expired"
    return status


def next_surveillance(
    profile: Profile,
    cert: CertificateFacts,
    open_ncs: list[OpenNonconformity],
    cal: WorkCalendar,
    today: date,
) -> date | None:
    """From the reminder schedule (surveillance.first / surveillance.max_gap of the profile)."""
    if cert.status not in ("valid", "suspended"):
        return None
    items = schedule(profile, cert, open_ncs, cal, today)
    return next((i.due_on for i in items if i.topic == "surveillance"), None)


def normalise_number(text: str) -> str:
    return " ".join(text.split()).strip()


async def numbers_of(uow: UnitOfWork, org_id: int | None) -> list[str]:
    """The numbers of the organisation's certificates."""
    return await reminder_repo.certificate_numbers(uow.session, org_id)


async def lookup(desk: Desk, uow: UnitOfWork, number: str) -> CertificateView | None:
    """The one certificate with this number (any case), or None."""
    found = await find(desk, uow, number)
    return (
        found[0]
        if len(found) == 1 and found[0].number.lower() == normalise_number(number).lower()
        else None
    )


async def find(
    desk: Desk, uow: UnitOfWork, text: str, *, with_contacts: bool = False
) -> list[CertificateView]:
    """Certificates by number (case-insensitive), else by holder name."""
    out: list[CertificateView] = []
    for cert in await repo.find(uow.session, normalise_number(text)):
        ncs = await repo.open_nonconformities(uow.session, cert.id or 0)
        v = view(desk.profile, cert, desk.calendar, desk.clock.today(), ncs)
        if with_contacts and cert.organisation_id is not None:
            org = await repo.organisation(uow.session, cert.organisation_id)
            people = await org_repo.contacts(uow.session, cert.organisation_id)
            contacts = [ContactView(c.name, c.email, c.telegram_user_id) for c in people]
            v = replace(v, uscc=org.uscc if org else None, contacts=contacts)
        out.append(v)
    return out


def view(
    profile: Profile,
    cert: Certificate,
    cal: WorkCalendar,
    today: date,
    ncs: Sequence[Any] = (),
) -> CertificateView:
    status = effective_status(cert.status, cert.expires_on, today)
    facts = CertificateFacts(
        id=cert.id or 0,
        number=cert.number,
        holder=cert.holder,
        status=status,
        decided_on=cert.decided_on,
        expires_on=cert.expires_on,
        stage2_end_on=cert.stage2_end_on,
        last_surveillance_on=cert.last_surveillance_on,
        suspended_until=cert.suspended_until,
    )
    open_ncs = [OpenNonconformity(n.id, n.severity, n.raised_on, n.audit_type) for n in ncs]
    surveillance = next_surveillance(profile, facts, open_ncs, cal, today)
    suspended = status == "suspended"
    return CertificateView(
        number=cert.number,
        holder=cert.holder,
        standard=cert.standard,
        scope=cert.scope,
        status=status,
        expires_on=cert.expires_on,
        suspended_until=cert.suspended_until if suspended else None,
        next_surveillance=surveillance,
        decided_on=cert.decided_on,
        surveillance_overdue=surveillance is not None and surveillance < today,
        suspended_on=cert.suspended_on if suspended else None,
        suspension_months=cert.suspension_months if suspended else None,
    )


__all__ = [
    "CertificateView",
    "ContactView",
    "ImportResult",
    "Parsed",
    "RowError",
    "effective_status",
    "find",
    "import_csv",
    "lookup",
    "parse_csv",
    "view",
]
