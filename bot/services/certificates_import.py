"""The staff CSV import of certificates, with their holders and the holders' e-mail contacts.

CSV columns (header row first; UTF-8 with or without BOM, or GBK/GB18030 as Excel saves it in
China):

    number, holder, standard, decided_on, expires_on                  required
    scope, status, stage2_end_on, last_surveillance_on,               optional
    suspended_on, suspension_months, uscc, contact_emails
    (suspended_until: accepted from older files beside suspended_on)

Dates are YYYY-MM-DD. `status` is valid (default), suspended, withdrawn or expired; a suspended
certificate needs `suspended_on` and `suspension_months` (the profile's range). `uscc` is the
holder's 统一社会信用代码 (GB 32100); `contact_emails` one or more addresses separated by `;`.
A row with a known number updates that certificate. A validity longer than the profile's
`certificate.validity_months` is refused (GGBZ §6.2.2, BQC §3).
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from bot.desk import Desk
from bot.domain.certificates import (
    check_uscc,
    suspension_end,
    suspension_problem,
    validity_problem,
)
from bot.domain.policy import Profile
from bot.services.certificate_notices import queue_suspension_notice
from storage.repo import certificates as repo
from storage.repo import organisations as org_repo
from storage.unit_of_work import UnitOfWork

REQUIRED = ("number", "holder", "standard", "decided_on", "expires_on")
OPTIONAL = ("scope", "status", "stage2_end_on", "last_surveillance_on", "suspended_on",
            "suspension_months", "suspended_until", "uscc", "contact_emails")  # fmt: skip
DATES = ("decided_on", "expires_on", "stage2_end_on", "last_surveillance_on", "suspended_on",
         "suspended_until")  # fmt: skip
STATUSES = ("valid", "suspended", "withdrawn", "expired")
_EMAIL = re.compile(r"[^@\s;,]+@[^@\s;,]+\.[^@\s;,]+")
SAVE_AS_UTF8 = "the file is neither UTF-8 nor GBK text: save it from Excel as “CSV UTF-8”"


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


def decode(data: bytes) -> str:
    """UTF-8 (a BOM removed), else GB18030 (a superset of GBK, Excel's default for a Chinese
    Windows); ValueError with a hint when it is neither."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030")
    except UnicodeDecodeError:
        raise ValueError(SAVE_AS_UTF8) from None


def parse_csv(text: str, profile: Profile) -> Parsed:
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
            rows.append((line, _row(cells, profile)))
        except ValueError as exc:
            errors.append(RowError(line, str(exc)))
    return Parsed(rows, errors)


def _row(cells: dict[str, str], profile: Profile) -> dict[str, Any]:
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
    problem = validity_problem(
        values["decided_on"], values["expires_on"], profile.certificate.validity_months
    )
    if problem:
        raise ValueError(f"{problem} ({cite(profile.certificate.clause)})")
    _suspension(cells, values, profile)
    values["uscc"] = check_uscc(cells["uscc"]) if cells.get("uscc") else None
    values["contact_emails"] = _emails(cells.get("contact_emails") or "")
    return values


def _suspension(cells: dict[str, str], values: dict[str, Any], profile: Profile) -> None:
    text = cells.get("suspension_months") or ""
    months: int | None = None
    if text:
        if not text.isdigit():
            raise ValueError(f"suspension_months {text!r} is not a whole number")
        months = int(text)
    if values["status"] != "suspended":
        values.update(suspended_on=None, suspension_months=None, suspended_until=None)
        return
    policy = profile.suspension
    low, high = (policy.min_months, policy.max_months) if policy else (1, 6)
    start, until = values["suspended_on"], values["suspended_until"]
    if months is None and start is not None and until is not None:
        # The older files' end date: accepted when it is a whole number of months.
        months = next((m for m in range(1, 13) if suspension_end(start, m) == until), None)
        if months is None:
            raise ValueError(f"suspended_until {until} is not a whole number of months after "
                             f"suspended_on {start}: give suspension_months")  # fmt: skip
    if start is None or months is None:
        raise ValueError("a suspended certificate needs suspended_on and suspension_months")
    problem = suspension_problem(months, low, high)
    if problem:
        raise ValueError(problem + (f" ({cite(policy.clause)})" if policy else ""))
    values["suspension_months"] = months
    values["suspended_until"] = suspension_end(values["suspended_on"], months)


def cite(clause: str) -> str:
    """The citation at the head of a clause text: "GGBZ §6.2.2", "BQC 认证规则 §3"."""
    words: list[str] = []
    for word in clause.split():
        words.append(word.rstrip("，、；"))
        if word.startswith("§"):
            break
    return " ".join(words[:4])


def _emails(text: str) -> list[str]:
    parts = [p for p in re.split(r"[;,\s]+", text) if p]
    bad = [p for p in parts if not _EMAIL.fullmatch(p)]
    if bad:
        raise ValueError(f"contact_emails: {bad[0]!r} is not an e-mail address")
    return parts


@dataclass
class ImportResult:
    imported: int = 0
    updated: int = 0
    refused: list[RowError] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        refused = [{"line": e.line, "reason": e.reason} for e in self.refused]
        return {"imported": self.imported, "updated": self.updated, "refused": refused}


async def import_csv(
    desk: Desk, uow: UnitOfWork, path: Path, profile: Profile | None = None
) -> ImportResult:
    """Import good rows (in the caller's transaction), refuse bad ones by line; a re-import
    updates by number. Each holder becomes an organisation (found again by its credit code) and
    its e-mail addresses its contacts; a certificate newly suspended gets its written notice."""
    profile = profile or desk.profile
    try:
        text = decode(path.read_bytes())
    except ValueError as exc:
        return ImportResult(refused=[RowError(1, str(exc))])
    parsed = parse_csv(text, profile)
    result = ImportResult(refused=list(parsed.errors))
    now, session = desk.clock.now(), uow.session
    for line, values in parsed.rows:
        uscc, emails = values.pop("uscc"), values.pop("contact_emails")
        before = await repo.by_number(session, values["number"])
        org_id = before.organisation_id if before is not None else None
        if uscc is not None:
            org = await org_repo.by_uscc(session, uscc)
            if org is None and org_id is not None:
                org = await repo.organisation(session, org_id)
                if org is not None and org.uscc not in (None, uscc):
                    result.refused.append(RowError(line, f"uscc {uscc} is not the holder's "
                                                         f"code {org.uscc}"))  # fmt: skip
                    continue
                if org is not None:
                    org.uscc = uscc
            if org is None:
                org = await org_repo.create(
                    session, values["holder"], uscc, desk.settings.default_locale, now
                )
            org_id = org.id
        elif org_id is None:
            org = await org_repo.create(
                session, values["holder"], None, desk.settings.default_locale, now
            )
            org_id = org.id
        was = (before.status, before.suspended_on) if before is not None else None
        cert, created = await repo.upsert(session, {**values, "organisation_id": org_id}, now)
        for email in emails:
            await org_repo.add_email_contact(
                session, org_id or 0, email, desk.settings.default_locale, now
            )
        if cert.status == "suspended" and was != ("suspended", cert.suspended_on):
            await queue_suspension_notice(desk, session, cert, profile)
        result.imported += created
        result.updated += not created
    return result


__all__ = ["ImportResult", "Parsed", "RowError", "decode", "import_csv", "parse_csv"]
