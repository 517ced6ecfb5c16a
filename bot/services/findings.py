"""Audit findings (nonconformities) with their corrective actions: the staff CSV import, the
lists, the organisation's evidence, and staff's verdict (issue 12; domain.md §6, GGBZ §5.10).

CSV columns (UTF-8, header first; a BOM is fine):

    certificate, audit_type, audit_end_on, grade, clause, text     required
    site, due_on                                                   optional

The due date comes from the profile's `[findings]` period for the grade and audit type. Where the
profile names none (BQC, SGC, ICS: their texts give no number) `due_on` is required — no period
is invented; where it names one, a `due_on` may only shorten it.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from bot.desk import Desk
from bot.domain import findings as rules
from bot.domain.policy import Profile
from bot.outbox.messages import Letter, Outbound, TelegramText, enqueue
from bot.outbox.to_staff import queue_for_staff
from bot.services.findings_alerts import evidence_to_staff
from messages.render import t, th
from storage.files import store_file
from storage.models import Certificate, Contact, Finding
from storage.repo import applications as files_repo
from storage.repo import certificates as cert_repo
from storage.repo import findings as repo
from storage.repo import reminders as reminder_repo
from storage.unit_of_work import UnitOfWork

REQUIRED = ("certificate", "audit_type", "audit_end_on", "grade", "clause", "text")
OPTIONAL = ("site", "due_on")
SET_BY_HAND = "set"  # rule_id of a due date given with the finding


@dataclass(frozen=True)
class Refused:
    line: int
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"line": self.line, "reason": self.reason}


@dataclass
class ImportReport:
    imported: int = 0
    refused: list[Refused] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"imported": self.imported, "refused": [r.to_json() for r in self.refused]}


def _date(cells: dict[str, str], column: str) -> date | None:
    text = cells.get(column) or ""
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        raise ValueError(f"{column} {text!r} is not a date (YYYY-MM-DD)") from None


def _values(
    desk: Desk, profile: Profile, cells: dict[str, str], cert: Certificate | None
) -> dict[str, Any]:
    """The finding's columns from one CSV row, or ValueError with the reason."""
    policy = profile.findings
    assert policy is not None
    for column in REQUIRED:
        if not cells.get(column):
            raise ValueError(f"{column} is empty")
    if cert is None:
        raise ValueError(f"unknown certificate {cells['certificate']!r}")
    grade, audit = cells["grade"].lower(), cells["audit_type"].lower()
    if grade not in policy.grades:
        raise ValueError(f"grade {cells['grade']!r} is not one of {', '.join(policy.grades)}")
    if audit not in policy.audit_types:
        known = ", ".join(policy.audit_types)
        raise ValueError(f"audit_type {cells['audit_type']!r} is not one of {known}")
    end = _date(cells, "audit_end_on")
    given = _date(cells, "due_on")
    assert end is not None
    if end > desk.clock.today():
        raise ValueError("audit_end_on is in the future")
    due = rules.due_for(profile, grade, audit, end, desk.calendar)
    if due is None and given is None:
        raise ValueError(f"due_on is needed: the profile sets no period for {grade} {audit}")
    if given is not None and given <= end:
        raise ValueError("due_on is not after audit_end_on")
    if due is not None and given is not None and given > due.due_on:
        raise ValueError(f"due_on {given} is later than the profile allows ({due.due_on})")
    if given is not None and (due is None or given < due.due_on):
        due_on, rule_id, rule_clause = given, SET_BY_HAND, policy.clause
    else:
        assert due is not None
        due_on, rule_id, rule_clause = due.due_on, due.rule_id, due.clause
    return {
        "certificate_id": cert.id,
        "site": cells.get("site") or None,
        "audit_type": audit,
        "audit_end_on": end,
        "grade": grade,
        "clause": cells["clause"],
        "text": cells["text"],
        "due_on": due_on,
        "rule_id": rule_id,
        "rule_clause": rule_clause,
        "status": rules.status_on(rules.FindingStatus.OPEN, due_on, desk.clock.today()),
    }


async def import_csv(
    desk: Desk, uow: UnitOfWork, text: str, profile: Profile | None = None
) -> ImportReport:
    """Record every good row (in the caller's transaction); each bad one refused by its line."""
    profile = profile or desk.profile
    report = ImportReport()
    if profile.findings is None:
        report.refused.append(Refused(1, f"profile {profile.body.id} has no [findings] section"))
        return report
    reader = csv.DictReader(io.StringIO(text.removeprefix("\ufeff")))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED if c not in header]
    unknown = [c for c in header if c not in REQUIRED + OPTIONAL]
    if missing or unknown:
        what = f"missing column(s): {', '.join(missing)}" if missing else ""
        what = what or f"unknown column(s): {', '.join(unknown)}"
        report.refused.append(Refused(1, what))
        return report
    reader.fieldnames = header
    now = desk.clock.now()
    for record in reader:
        line = reader.line_num
        if None in record:
            report.refused.append(Refused(line, "more cells than columns"))
            continue
        cells = {k: (v or "").strip() for k, v in record.items()}
        if not any(cells.values()):
            continue
        cert = await cert_repo.by_number(uow.session, " ".join(cells["certificate"].split()))
        try:
            values = _values(desk, profile, cells, cert)
        except ValueError as exc:
            report.refused.append(Refused(line, str(exc)))
            continue
        await repo.add(uow.session, values, now)
        report.imported += 1
    return report


# --- lists -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FindingView:
    id: int
    certificate: str
    holder: str
    site: str | None
    grade: str
    audit_type: str
    audit_end_on: date
    due: date
    rule: str
    rule_clause: str
    clause: str
    text: str
    status: str  # as of today (an open finding past its date is overdue)
    reason: str | None

    def to_json(self) -> dict[str, Any]:
        keys = ("certificate", "grade", "audit_type", "audit_end_on", "due", "rule", "clause")
        row = {k: getattr(self, k) for k in keys}
        return {"id": self.id, **row, "status": self.status, "text": self.text}


def view(f: Finding, cert: Certificate, today: date) -> FindingView:
    return FindingView(
        id=f.id or 0,
        certificate=cert.number,
        holder=cert.holder,
        site=f.site,
        grade=f.grade,
        audit_type=f.audit_type,
        audit_end_on=f.audit_end_on,
        due=f.due_on,
        rule=f.rule_id,
        rule_clause=f.rule_clause,
        clause=f.clause,
        text=f.text,
        status=rules.status_on(f.status, f.due_on, today),
        reason=f.reason,
    )


async def listed(desk: Desk, uow: UnitOfWork, certificate: str | None = None) -> list[FindingView]:
    """Every finding, or one certificate's; LookupError for an unknown number."""
    cert_id = None
    if certificate is not None:
        cert = await cert_repo.by_number(uow.session, " ".join(certificate.split()))
        if cert is None:
            raise LookupError(certificate)
        cert_id = cert.id
    today = desk.clock.today()
    return [view(f, c, today) for f, c in await repo.listed(uow.session, certificate_id=cert_id)]


async def open_for(desk: Desk, uow: UnitOfWork, contact: Contact) -> list[FindingView]:
    """The findings the contact's organisation still has to act on (open or overdue)."""
    if contact.organisation_id is None:
        return []
    rows = await repo.listed(
        uow.session, organisation_id=contact.organisation_id, statuses=rules.ACTIONABLE
    )
    today = desk.clock.today()
    return [view(f, c, today) for f, c in rows]


async def progress(uow: UnitOfWork, certificate_id: int) -> rules.Progress:
    """ "3 of 5 findings closed" for one certificate."""
    rows = await repo.listed(uow.session, certificate_id=certificate_id)
    return rules.progress([f.status for f, _ in rows])


# --- evidence ----------------------------------------------------------------------------------


class Refusal(Exception):
    """A request the rules refuse; `key` is a text of messages/catalogs/findings.toml."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


async def store_upload(desk: Desk, uow: UnitOfWork, data: bytes, content_type: str) -> int:
    """Store checked bytes by content hash (storage.files); the stored_file id."""
    sha, path = await store_file(desk.data_dir, data)
    row = await files_repo.stored_file(
        uow.session, sha256=sha, size=len(data), content_type=content_type, path=path,
        now=desk.clock.now(),
    )  # fmt: skip
    return row.id or 0


async def _own(uow: UnitOfWork, contact: Contact, finding_id: int) -> tuple[Finding, Certificate]:
    found = await repo.with_certificate(uow.session, finding_id)
    # Another organisation's finding is refused exactly as a missing one: nothing leaks.
    if found is None or contact.organisation_id is None:
        raise Refusal("findings.not_found")
    if found[1].organisation_id != contact.organisation_id:
        raise Refusal("findings.not_found")
    return found


async def finding_for(
    desk: Desk, uow: UnitOfWork, contact: Contact, finding_id: int
) -> FindingView:
    finding, cert = await _own(uow, contact, finding_id)
    return view(finding, cert, desk.clock.today())


async def submit_evidence(
    desk: Desk,
    uow: UnitOfWork,
    contact: Contact,
    finding_id: int,
    files: list[tuple[int, str]],
    note: str | None,
) -> FindingView:
    """Record the submission (stored files, a note), move the finding, alert staff."""
    finding, cert = await _own(uow, contact, finding_id)
    today, now = desk.clock.today(), desk.clock.now()
    try:
        status = rules.submit(rules.status_on(finding.status, finding.due_on, today), len(files))
    except rules.TransitionRefused as exc:
        raise Refusal(f"findings.refused_{exc.key}") from None
    evidence = await repo.add_evidence(
        uow.session, finding_id=finding.id or 0, contact_id=contact.id, note=note, files=files,
        now=now,
    )  # fmt: skip
    await repo.set_status(uow.session, finding, status, now, reason=finding.reason)
    await evidence_to_staff(desk, uow.session, finding, cert, evidence.id or 0, files, note)
    return view(finding, cert, today)


# --- staff verdict -------------------------------------------------------------------------------


async def review(
    desk: Desk, uow: UnitOfWork, finding_id: int, *, accept: bool, reason: str | None, by: str
) -> FindingView:
    """Accept (the finding is closed) or reject with a reason (open again); the organisation is
    told through the outbox, on every channel of its contacts."""
    found = await repo.with_certificate(uow.session, finding_id)
    if found is None:
        raise Refusal("findings.not_found")
    finding, cert = found
    today, now = desk.clock.today(), desk.clock.now()
    evidence = await repo.latest_evidence(uow.session, finding.id or 0)
    try:
        if accept:
            status = rules.accept(finding.status)
        else:
            status = rules.reject(finding.status, reason or "", finding.due_on, today)
    except rules.TransitionRefused as exc:
        raise Refusal(f"findings.refused_{exc.key}") from None
    assert evidence is not None  # evidence_submitted has a submission
    verdict = "accepted" if accept else "rejected"
    await repo.review(uow.session, evidence, verdict, reason, by, now)
    await repo.set_status(
        uow.session, finding, status, now, reason=None if accept else reason,
        closed_on=today if accept else None,
    )  # fmt: skip
    await _tell_organisation(desk, uow, finding, cert, verdict, reason, evidence.id or 0)
    return view(finding, cert, today)


async def _tell_organisation(
    desk: Desk, uow: UnitOfWork, finding: Finding, cert: Certificate, verdict: str,
    reason: str | None, evidence_id: int,
) -> None:  # fmt: skip
    progress_ = await progress(uow, cert.id or 0)
    recipients = await reminder_repo.recipients(
        uow.session, cert.organisation_id, desk.settings.default_locale
    )
    for r in recipients:
        args = {
            "number": cert.number,
            "clause": finding.clause,
            "text": finding.text,
            "due": finding.due_on.isoformat(),
            "reason": reason or "",
            "closed": progress_.closed,
            "total": progress_.total,
        }
        key = f"findings.org_{verdict}"
        message: Outbound
        if r.channel == "telegram":
            message = TelegramText(r.address, th(key, r.locale, **args))
        else:
            tag = rules.tag(finding.id or 0)
            subject = t("findings.org_subject", r.locale, number=cert.number, tag=tag)
            message = Letter(r.address, subject, t(key, r.locale, **args), locale=r.locale)
        rkey = f"finding-{verdict}:{evidence_id}:{r.channel}:{r.address}"
        await enqueue(uow.session, message, key=rkey, now=desk.clock.now())
    if not recipients:  # nobody to tell: staff must, never "sent" (domain.md §6)
        loc = desk.settings.default_locale
        text = th("findings.staff_no_recipient", loc, number=cert.number, holder=cert.holder)
        key = f"finding-norecipient:{evidence_id}"
        await queue_for_staff(desk, uow.session, key=key, text=text)


__all__ = [
    "FindingView",
    "ImportReport",
    "Refusal",
    "Refused",
    "finding_for",
    "import_csv",
    "listed",
    "open_for",
    "progress",
    "review",
    "store_upload",
    "submit_evidence",
]
