"""Certificates: the staff CSV import and the public lookup.

CSV columns (UTF-8, header row first; a UTF-8 BOM as Excel writes it is fine):

    number, holder, standard, decided_on, expires_on          required
    scope, status, stage2_end_on, last_surveillance_on,       optional
    suspended_until

Dates are YYYY-MM-DD. `status` is valid (default), suspended, withdrawn or expired; a suspended
certificate needs `suspended_until`. A row with a known number updates that certificate.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from bot.desk import Desk
from bot.domain.calendar import WorkCalendar
from bot.domain.policy import Profile
from bot.domain.reminders import CertificateFacts, OpenNonconformity, schedule
from storage.models import Certificate
from storage.repo import certificates as repo
from storage.repo import reminders as reminder_repo
from storage.unit_of_work import UnitOfWork

REQUIRED = ("number", "holder", "standard", "decided_on", "expires_on")
OPTIONAL = ("scope", "status", "stage2_end_on", "last_surveillance_on", "suspended_until")
DATES = ("decided_on", "expires_on", "stage2_end_on", "last_surveillance_on", "suspended_until")
STATUSES = ("valid", "suspended", "withdrawn", "expired")


@dataclass(frozen=True)
class RowError:
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass(frozen=True)
class Parsed:
    rows: list[tuple[int, dict[str, Any]]]  # (line, column values ready for the table)
    errors: list[RowError]


def parse_csv(text: str) -> Parsed:
    """Good rows with their line numbers, and every bad row with its line and reason."""
    reader = csv.DictReader(io.StringIO(text.removeprefix("\ufeff")))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        return Parsed([], [RowError(1, f"missing column(s): {', '.join(missing)}")])
    unknown = [c for c in header if c not in REQUIRED + OPTIONAL]
    if unknown:
        return Parsed([], [RowError(1, f"unknown column(s): {', '.join(unknown)}")])
    reader.fieldnames = header
    rows: list[tuple[int, dict[str, Any]]] = []
    errors: list[RowError] = []
    for record in reader:
        line = reader.line_num
        if None in record:
            errors.append(RowError(line, "more cells than columns"))
            continue
        cells = {k: (v or "").strip() for k, v in record.items()}
        if not any(cells.values()):
            continue  # a blank line
        try:
            rows.append((line, _row(cells)))
        except ValueError as exc:
            errors.append(RowError(line, str(exc)))
    return Parsed(rows, errors)


def _row(cells: dict[str, str]) -> dict[str, Any]:
    for column in REQUIRED:
        if not cells.get(column):
            raise ValueError(f"{column} is empty")
    values: dict[str, Any] = {
        "number": cells["number"],
        "holder": cells["holder"],
        "standard": cells["standard"],
        "scope": cells.get("scope") or None,
        "status": (cells.get("status") or "valid").lower(),
    }
    if values["status"] not in STATUSES:
        raise ValueError(f"status {cells['status']!r} is not one of {', '.join(STATUSES)}")
    for column in DATES:
        text = cells.get(column) or ""
        try:
            values[column] = date.fromisoformat(text) if text else None
        except ValueError:
            raise ValueError(f"{column} {text!r} is not a date (YYYY-MM-DD)") from None
    if values["expires_on"] <= values["decided_on"]:
        raise ValueError("expires_on is not after decided_on")
    if values["status"] == "suspended" and values["suspended_until"] is None:
        raise ValueError("a suspended certificate needs suspended_until")
    return values


@dataclass(frozen=True)
class ImportResult:
    created: int
    updated: int
    errors: list[RowError]


async def import_csv(desk: Desk, uow: UnitOfWork, path: Path) -> ImportResult:
    """Import good rows (in the caller's transaction), report bad ones; re-import updates by
    number."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return ImportResult(0, 0, [RowError(1, "the file is not UTF-8 text")])
    parsed = parse_csv(text)
    created = updated = 0
    for _line, values in parsed.rows:
        _, new = await repo.upsert(uow.session, values, desk.clock.now())
        created += new
        updated += not new
    return ImportResult(created, updated, parsed.errors)


# --- lookup -----------------------------------------------------------------------------------


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
    cert = await repo.by_number(uow.session, normalise_number(number))
    if cert is None:
        return None
    ncs = await repo.open_nonconformities(uow.session, cert.id or 0)
    return view(desk.profile, cert, desk.calendar, desk.clock.today(), ncs)


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
    open_ncs = [OpenNonconformity(n.id, n.severity, n.raised_on) for n in ncs]
    return CertificateView(
        number=cert.number,
        holder=cert.holder,
        standard=cert.standard,
        scope=cert.scope,
        status=status,
        expires_on=cert.expires_on,
        suspended_until=cert.suspended_until if status == "suspended" else None,
        next_surveillance=next_surveillance(profile, facts, open_ncs, cal, today),
    )


__all__ = [
    "CertificateView",
    "ImportResult",
    "Parsed",
    "RowError",
    "effective_status",
    "import_csv",
    "lookup",
    "parse_csv",
    "view",
]
