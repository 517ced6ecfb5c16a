"""Certificates of a status-model programme (IETP, seed 000): the import that records each
status decision, and `show` — status, valid certificate or not, until when, and for a terminated
factory the first day it may reapply.

CSV columns (UTF-8, header first):

    number, holder, decided_on, status                    required
    validity_months, fee_paid_on, scope                   optional

`validity_months` picks among the status's periods (remediation: 9 or 12, staff choose); a
termination gives its length (at least 6 months). Remediation and probation are refused for a
factory whose history shows no certificate before; a certificate status without `fee_paid_on`
is refused (the US$800 fee comes first). The certificate row carries `valid` only while a
certificate status lasts, `withdrawn` otherwise, so nothing else ever shows a not-certified
status as a certificate.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.desk import Desk
from bot.domain.alerts import local
from bot.domain.deadlines import add_months
from bot.domain.policy import Profile
from bot.domain.statuses import PastStatus, StatusRefused, grant, is_certificate, reapply_from
from bot.services.certificates_csv import parse_date, separator
from storage.models import Certificate, CertificateStatusRecord, Finding, FindingEvidence
from storage.repo import certificates as cert_repo
from storage.unit_of_work import UnitOfWork

REQUIRED = ("number", "holder", "decided_on", "status")
OPTIONAL = ("validity_months", "fee_paid_on", "scope")


@dataclass
class StatusImport:
    imported: int = 0
    refused: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"imported": self.imported, "refused": self.refused}


async def _history(uow: UnitOfWork, certificate_id: int | None) -> list[CertificateStatusRecord]:
    if certificate_id is None:
        return []
    stmt = (
        select(CertificateStatusRecord)
        .where(col(CertificateStatusRecord.certificate_id) == certificate_id)
        .order_by(col(CertificateStatusRecord.starts_on), col(CertificateStatusRecord.id))
    )
    return list((await uow.session.exec(stmt)).all())


def _past(rows: list[CertificateStatusRecord]) -> list[PastStatus]:
    return [PastStatus(r.status, r.starts_on, r.ends_on) for r in rows]


def _parse_date(cells: dict[str, str], column: str) -> date | None:
    text = cells.get(column) or ""
    try:
        return parse_date(text) if text else None  # 2026/1/5, 2026年1月5日, Excel serials
    except ValueError:
        raise ValueError(f"{column} {text!r} is not a date (YYYY-MM-DD)") from None


async def import_csv(desk: Desk, uow: UnitOfWork, text: str, profile: Profile) -> StatusImport:
    model = profile.statuses
    report = StatusImport()
    if model is None:
        report.refused.append({"line": 1, "reason": f"profile {profile.body.id} has no statuses"})
        return report
    text = text.removeprefix("\ufeff")
    first = next((line for line in text.splitlines() if line.strip()), "")
    reader = csv.DictReader(io.StringIO(text), delimiter=separator(first))
    header = [h.strip() for h in (reader.fieldnames or [])]
    bad = [c for c in REQUIRED if c not in header] or [
        c for c in header if c not in REQUIRED + OPTIONAL
    ]
    if bad:
        report.refused.append({"line": 1, "reason": f"missing or unknown column(s): {bad}"})
        return report
    reader.fieldnames = header
    now = desk.clock.now()
    for record in reader:
        line = reader.line_num
        cells = {k: (v or "").strip() for k, v in record.items() if k is not None}
        if not any(cells.values()):
            continue
        try:
            for column in REQUIRED:
                if not cells.get(column):
                    raise ValueError(f"{column} is empty")
            decided = _parse_date(cells, "decided_on")
            paid = _parse_date(cells, "fee_paid_on")
            months_text = cells.get("validity_months") or ""
            if months_text and not months_text.isdigit():
                raise ValueError(f"validity_months {months_text!r} is not a whole number")
            assert decided is not None
            cert = await cert_repo.by_number(uow.session, cells["number"])
            history = await _history(uow, cert.id if cert else None)
            granted = grant(
                model, cells["status"].lower(), int(months_text) if months_text else None,
                decided, _past(history), fee_paid=paid is not None,
            )  # fmt: skip
        except (ValueError, StatusRefused) as exc:
            report.refused.append({"line": line, "reason": str(exc)})
            continue
        values = {
            "number": cells["number"],
            "holder": cells["holder"],
            "standard": profile.body.standard,
            "scope": cells.get("scope") or None,
            "status": "valid" if granted.certificate else "withdrawn",
            "decided_on": decided,
            "expires_on": granted.ends_on,
        }
        row, _ = await cert_repo.upsert(uow.session, values, now)
        uow.session.add(
            CertificateStatusRecord(
                certificate_id=row.id or 0, status=granted.status,
                validity_months=granted.validity_months, starts_on=granted.starts_on,
                ends_on=granted.ends_on, fee_paid_on=paid, created_at=now,
            )
        )  # fmt: skip
        await uow.session.flush()
        report.imported += 1
    return report


async def show(desk: Desk, uow: UnitOfWork, number: str, profile: Profile) -> dict[str, Any]:
    """The certificate's current status as of today; LookupError for an unknown number."""
    model = profile.statuses
    cert = await cert_repo.by_number(uow.session, " ".join(number.split()))
    if cert is None or model is None:
        raise LookupError(number)
    history = await _history(uow, cert.id)
    today = desk.clock.today()
    if not history:
        raise LookupError(number)
    last = history[-1]
    rule = model.get(last.status)
    out: dict[str, Any] = {
        "number": cert.number,
        "holder": cert.holder,
        "status": last.status,
        "valid": is_certificate(model, last.status, last.ends_on, today),
        "certification": bool(rule and rule.certificate),  # False: a status, not a certificate
        "expires_on": last.ends_on.isoformat(),
        "clause": rule.clause if rule else "",
    }
    again = reapply_from(model, _past(history), today)
    if again is not None:
        out["reapply_from"] = again.isoformat()
    if rule is not None and rule.plan_start_months is not None:
        (plan,) = [p for p in await plan_deadlines(uow.session, profile) if p.record.id == last.id]
        out["plan_due_on"] = plan.due_on.isoformat()
        out["plan_started_on"] = plan.started_on.isoformat() if plan.started_on else None
    return out


@dataclass(frozen=True)
class PlanDeadline:
    """A status that needs a corrective plan submitted and started within months of its start
    (IETP progressing: 3); met by the first evidence on one of the certificate's findings."""

    certificate: Certificate
    record: CertificateStatusRecord
    due_on: date
    clause: str
    started_on: date | None  # the day the first evidence since the status began came in


async def plan_deadlines(session: AsyncSession, profile: Profile) -> list[PlanDeadline]:
    """Every certificate whose current status (its latest decision) has a plan deadline."""
    model = profile.statuses
    if model is None:
        return []
    rows = (
        await session.exec(
            select(CertificateStatusRecord).order_by(
                col(CertificateStatusRecord.certificate_id),
                col(CertificateStatusRecord.starts_on),
                col(CertificateStatusRecord.id),
            )
        )
    ).all()
    latest = {r.certificate_id: r for r in rows}  # the last of each certificate's history
    found = []
    for record in latest.values():
        rule = model.get(record.status)
        if rule is None or rule.plan_start_months is None:
            continue
        cert = await session.get(Certificate, record.certificate_id)
        if cert is None:
            continue
        submitted = (
            await session.exec(
                select(FindingEvidence.submitted_at)
                .join(Finding, col(Finding.id) == col(FindingEvidence.finding_id))
                .where(col(Finding.certificate_id) == record.certificate_id)
            )
        ).all()
        days = sorted(d for d in (local(at).date() for at in submitted) if d >= record.starts_on)
        due = add_months(record.starts_on, rule.plan_start_months)
        found.append(PlanDeadline(cert, record, due, rule.clause, days[0] if days else None))
    return found


async def may_reapply(desk: Desk, uow: UnitOfWork, number: str, profile: Profile) -> date | None:
    """None when a new application is accepted, else the first day it will be."""
    cert = await cert_repo.by_number(uow.session, number)
    if cert is None or profile.statuses is None:
        return None
    return reapply_from(profile.statuses, _past(await _history(uow, cert.id)), desk.clock.today())


async def organisation_may_reapply(
    desk: Desk, uow: UnitOfWork, organisation_id: int | None
) -> date | None:
    """`may_reapply` for a factory by its organisation (the certificates linked to it, under the
    desk's profile): the last first-day of any running termination period, None when none runs."""
    model = desk.profile.statuses
    if organisation_id is None or model is None:
        return None
    ids = (
        await uow.session.exec(
            select(Certificate.id).where(col(Certificate.organisation_id) == organisation_id)
        )
    ).all()
    today = desk.clock.today()
    found = [reapply_from(model, _past(await _history(uow, i)), today) for i in ids]
    days = [d for d in found if d is not None]
    return max(days) if days else None


__all__ = [
    "PlanDeadline",
    "StatusImport",
    "import_csv",
    "may_reapply",
    "organisation_may_reapply",
    "plan_deadlines",
    "show",
]
