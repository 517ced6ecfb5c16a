"""The staff import of the certificate register, with the holders and their e-mail contacts.

The file is read by bot.services.certificates_csv (UTF-8, GBK, UTF-16, an .xlsx; comma,
semicolon or tab; English or Chinese headers; dates as offices write them). Columns:

    number, holder, standard, decided_on, expires_on                  required
    scope, status, stage2_end_on, last_surveillance_on,               optional
    suspended_on, suspension_months, uscc, contact_emails
    (suspended_until: accepted from older files beside suspended_on)

`status` is valid (default), suspended, withdrawn or expired (or 有效, 暂停, 撤销, 过期); a
suspended certificate needs `suspended_on` and `suspension_months` (the profile's range).
`uscc` is the holder's 统一社会信用代码 (GB 32100); `contact_emails` one or more addresses.
A row with a known number updates that certificate. A validity longer than the profile's
`certificate.validity_months` is refused (GGBZ §6.2.2, BQC §3).

Every row that is not imported gets its line and reason (`RowError`): in English in the JSON
report (stable for scripts), in the reader's language where people read it (`text`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stdnum.cn import uscc as _uscc
from stdnum.exceptions import ValidationError as _StdnumError

from bot.desk import Desk
from bot.domain.certificates import latest_expiry, suspension_end
from bot.domain.policy import Profile
from bot.services import certificates_csv as reader
from bot.services.certificate_notices import queue_suspension_notice
from messages.render import normalise_locale, t
from storage.models import Certificate, Organisation
from storage.repo import certificates as repo
from storage.repo import organisations as org_repo
from storage.unit_of_work import UnitOfWork

REQUIRED, OPTIONAL = reader.REQUIRED, reader.OPTIONAL
DATES = ("decided_on", "expires_on", "stage2_end_on", "last_surveillance_on", "suspended_on",
         "suspended_until")  # fmt: skip
STATUSES = ("valid", "suspended", "withdrawn", "expired")
PAGE = 500  # rows looked up and written together: a few queries a page, not a few a row


def _render(code: str, locale: str, args: dict[str, Any]) -> str:
    shown = dict(args)
    if "column" in shown:
        shown["label"] = t(f"certimport.col_{shown.pop('column')}", locale)
    if "columns" in shown:
        joiner = "、" if normalise_locale(locale) == "zh_CN" else ", "
        shown["columns"] = joiner.join(t(f"certimport.col_{c}", locale) for c in shown["columns"])
    return t(f"certimport.{code}", locale, **shown)


SAVE_AS_UTF8 = _render("file_encoding", "en", {})


@dataclass(frozen=True)
class RowError:
    line: int
    reason: str  # English: the JSON report's
    code: str = ""
    args: tuple[tuple[str, Any], ...] = ()

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"

    def reason_in(self, locale: str | None) -> str:
        if not self.code:
            return self.reason
        return _render(self.code, normalise_locale(locale), dict(self.args))

    def text(self, locale: str | None) -> str:
        """ "第 3 行：…" / "line 3: …" in the reader's language."""
        return t("certimport.line", locale, line=self.line, reason=self.reason_in(locale))


def refusal(line: int, code: str, /, **args: Any) -> RowError:
    return RowError(line, _render(code, "en", args), code, tuple(args.items()))


class _Refused(ValueError):
    def __init__(self, what: str, /, **args: Any) -> None:
        super().__init__(what)
        self.code, self.args_ = what, args


@dataclass(frozen=True)
class Parsed:
    rows: list[tuple[int, dict[str, Any]]]  # (line, column values ready for the table)
    errors: list[RowError]
    notes: list[RowError] = field(default_factory=list)  # imported, but something was left out


def decode(data: bytes) -> str:
    """The file's text (bot.services.certificates_csv.decode); ValueError with a hint when it
    is no text we can read."""
    text = reader.decode(data)
    if text is None:
        raise ValueError(SAVE_AS_UTF8)
    return text.removeprefix("\ufeff")


def parse_csv(text: str, profile: Profile) -> Parsed:
    """Good rows with their line numbers, and every bad row with its line and reason."""
    return parse_table(reader.read_table(text.encode("utf-8")), profile)


def parse_bytes(data: bytes, profile: Profile) -> Parsed:
    return parse_table(reader.read_table(data), profile)


def parse_table(table: reader.Table, profile: Profile) -> Parsed:
    if table.problems and not table.rows:
        return Parsed([], [refusal(1, code, **args) for code, args in table.problems])
    columns: list[str | None] = [reader.column_of(h) for h in table.header]
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        return Parsed([], [refusal(1, "missing_columns", columns=missing)])
    for index, column in enumerate(columns):
        if column is not None and columns.index(column) != index:
            first = columns.index(column) + 1
            return Parsed([], [refusal(1, "duplicate_column", column=column, first=first,
                                       second=index + 1)])  # fmt: skip
    unknown = [h for h, c in zip(table.header, columns, strict=True) if c is None and h]
    notes = [refusal(1, "unknown_columns", headers=", ".join(unknown))] if unknown else []
    rows: list[tuple[int, dict[str, Any]]] = []
    errors = [refusal(1, code, **args) for code, args in table.problems]
    seen: dict[str, int] = {}
    for line, record in table.rows:
        if len(record) > len(columns) and any(record[len(columns) :]):
            errors.append(refusal(line, "more_cells"))
            continue
        cells = {c: v for c, v in zip(columns, record, strict=False) if c is not None}
        try:
            values = _row(cells, profile)
        except _Refused as refused:
            errors.append(refusal(line, refused.code, **refused.args_))
            continue
        key = values["number"].upper()
        if key in seen:
            errors.append(refusal(line, "duplicate_number", number=values["number"],
                                  first=seen[key]))  # fmt: skip
            continue
        seen[key] = line
        rows.append((line, values))
    errors.sort(key=lambda e: e.line)
    return Parsed(rows, errors, notes)


def _row(cells: dict[str, str], profile: Profile) -> dict[str, Any]:
    for column in REQUIRED:
        if not cells.get(column):
            raise _Refused("empty", column=column)
    status = reader.status_of(cells.get("status") or "")
    if status is None:
        raise _Refused("bad_status", value=cells["status"], statuses=", ".join(STATUSES))
    values: dict[str, Any] = {
        "number": reader.cell(cells["number"]),
        "holder": " ".join(cells["holder"].split()),
        "standard": " ".join(cells["standard"].split()),
        "scope": cells.get("scope") or None,
        "status": status,
    }
    for column in DATES:
        text = cells.get(column) or ""
        try:
            values[column] = reader.parse_date(text) if text else None
        except ValueError:
            raise _Refused("not_a_date", column=column, value=text) from None
    decided, expires = values["decided_on"], values["expires_on"]
    if expires <= decided:
        raise _Refused("not_after")
    months = profile.certificate.validity_months
    latest = latest_expiry(decided, months)
    if expires > latest:
        raise _Refused("too_long", months=months, expires=expires, latest=latest,
                       clause=cite(profile.certificate.clause))  # fmt: skip
    _suspension(cells, values, profile)
    values["uscc"] = _credit_code(cells["uscc"]) if cells.get("uscc") else None
    emails, bad = reader.split_emails(cells.get("contact_emails") or "")
    if bad is not None:
        raise _Refused("bad_email", value=bad)
    values["contact_emails"] = emails
    return values


def _credit_code(text: str) -> str:
    code = re.sub(r"[\s\-‐–—]", "", reader.cell(text)).upper()
    if len(code) != 18:
        raise _Refused("uscc_length", value=text, count=len(code))
    try:
        return str(_uscc.validate(code))
    except _StdnumError as exc:
        if "checksum" in str(exc).lower():
            raise _Refused("uscc_check", code=code) from None
        raise _Refused("uscc_invalid", code=code, reason=str(exc).lower()) from None


def _suspension(cells: dict[str, str], values: dict[str, Any], profile: Profile) -> None:
    text = reader.cell(cells.get("suspension_months") or "")
    months: int | None = None
    if text:
        if not text.isdigit():
            raise _Refused("months_not_number", value=text)
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
            raise _Refused("until_not_whole", until=until, start=start)
    if start is None or months is None:
        raise _Refused("needs_suspension")
    if not low <= months <= high:
        clause = f" ({cite(policy.clause)})" if policy else ""
        raise _Refused("suspension_range", low=low, high=high, months=months, clause=clause)
    values["suspension_months"] = months
    values["suspended_until"] = suspension_end(start, months)


def cite(clause: str) -> str:
    """The citation at the head of a clause text: "GGBZ §6.2.2", "BQC 认证规则 §3"."""
    words: list[str] = []
    for word in clause.split():
        words.append(word.rstrip("，、；"))
        if word.startswith("§"):
            break
    return " ".join(words[:4])


@dataclass
class ImportResult:
    imported: int = 0
    updated: int = 0
    refused: list[RowError] = field(default_factory=list)
    notes: list[RowError] = field(default_factory=list)
    touched: list[tuple[int, int]] = field(default_factory=list)  # (line, certificate id)

    def to_json(self) -> dict[str, Any]:
        refused = [{"line": e.line, "reason": e.reason} for e in self.refused]
        report: dict[str, Any] = {"imported": self.imported, "updated": self.updated,
                                  "refused": refused}  # fmt: skip
        if self.notes:
            report["notes"] = [{"line": e.line, "reason": e.reason} for e in self.notes]
        return report


async def import_csv(
    desk: Desk, uow: UnitOfWork, path: Path, profile: Profile | None = None
) -> ImportResult:
    """Import the good rows of the file at `path` (in the caller's transaction)."""
    return await import_bytes(desk, uow, path.read_bytes(), profile)


async def import_bytes(
    desk: Desk, uow: UnitOfWork, data: bytes, profile: Profile | None = None
) -> ImportResult:
    """Import good rows, refuse bad ones by line; a re-import updates by number. Each holder
    becomes an organisation (found again by its credit code) and its e-mail addresses its
    contacts; a certificate newly suspended gets its written notice. Rows are written a page
    at a time: a register of 100,000 rows costs a few queries a page."""
    profile = profile or desk.profile
    parsed = parse_bytes(data, profile)
    result = ImportResult(refused=list(parsed.errors), notes=list(parsed.notes))
    for start in range(0, len(parsed.rows), PAGE):
        await _page(desk, uow, parsed.rows[start : start + PAGE], profile, result)
    result.refused.sort(key=lambda e: e.line)
    return result


@dataclass(eq=False)
class _NewOrganisation:
    name: str
    uscc: str | None
    id: int | None = None


_Holder = Organisation | _NewOrganisation


async def _page(
    desk: Desk,
    uow: UnitOfWork,
    rows: list[tuple[int, dict[str, Any]]],
    profile: Profile,
    result: ImportResult,
) -> None:
    """One page of rows: looked up with three queries, new rows written as multi-row inserts
    (an ORM flush would send one statement a row), known ones updated."""
    session, now, locale = uow.session, desk.clock.now(), desk.settings.default_locale
    known = {c.number: c for c in await repo.by_numbers(session, [v["number"] for _, v in rows])}
    by_code: dict[str, Organisation | _NewOrganisation] = {
        str(o.uscc): o
        for o in await org_repo.by_usccs(session, sorted({v["uscc"] for _, v in rows if v["uscc"]}))
    }
    owners = sorted({c.organisation_id for c in known.values() if c.organisation_id})
    held = {o.id: o for o in await org_repo.by_ids(session, owners)}
    plans: list[
        tuple[int, dict[str, Any], Organisation | _NewOrganisation, Certificate | None]
    ] = []
    for line, values in rows:
        before = known.get(values["number"])
        org: Organisation | _NewOrganisation | None = (
            held.get(before.organisation_id) if before and before.organisation_id else None
        )
        uscc = values["uscc"]
        if uscc is not None:
            coded = by_code.get(uscc)
            if coded is None and org is not None and org.uscc not in (None, uscc):
                result.refused.append(refusal(line, "uscc_mismatch", uscc=uscc,
                                              existing=org.uscc))  # fmt: skip
                continue
            if coded is None and isinstance(org, Organisation):
                org.uscc = uscc
                coded = org
            org = coded
        if org is None:
            org = _NewOrganisation(values["holder"], uscc)
        if uscc is not None:
            by_code[uscc] = org
        plans.append((line, values, org, before))
    fresh = list({id(o): o for *_, o, _ in plans if isinstance(o, _NewOrganisation)}.values())
    if fresh:
        made = [
            {"name": o.name, "uscc": o.uscc, "locale": locale, "created_at": now} for o in fresh
        ]
        for org, new_id in zip(fresh, await org_repo.insert_many(session, made), strict=True):
            org.id = new_id
    contacts = await org_repo.email_contacts(
        session, sorted({o.id for *_, o, _ in plans if o.id is not None})
    )
    inserts: list[dict[str, Any]] = []
    lines: list[int] = []
    notices: list[Certificate] = []
    new_contacts: list[dict[str, Any]] = []
    for line, values, org, before in plans:
        fields = {k: v for k, v in values.items() if k not in ("uscc", "contact_emails")}
        if before is None:
            inserts.append({**fields, "organisation_id": org.id, "updated_at": now})
            lines.append(line)
        else:
            was = (before.status, before.suspended_on)
            for key, value in {**fields, "organisation_id": org.id}.items():
                setattr(before, key, value)
            before.updated_at = now
            result.touched.append((line, before.id or 0))
            if before.status == "suspended" and was != ("suspended", before.suspended_on):
                notices.append(before)
        for email in values["contact_emails"]:
            if org.id is not None and (org.id, email) not in contacts:
                contacts.add((org.id, email))
                new_contacts.append({"organisation_id": org.id, "email": email,
                                     "locale": locale, "created_at": now})  # fmt: skip
        result.imported += before is None
        result.updated += before is not None
    ids = await repo.insert_many(session, inserts)
    result.touched.extend(zip(lines, ids, strict=True))
    await org_repo.add_email_contacts(session, new_contacts)  # before the notices: recipients
    for values, cert_id in zip(inserts, ids, strict=True):
        if values["status"] == "suspended":  # newly suspended: its written notice
            cert = await session.get(Certificate, cert_id)
            if cert is not None:
                notices.append(cert)
    for cert in notices:
        await queue_suspension_notice(desk, session, cert, profile)
    await session.flush()
    # A page's rows leave the session: memory stays flat over 100,000 rows.
    for cert in [*known.values(), *notices]:
        if cert in session:
            session.expunge(cert)
    for owner in held.values():
        if owner in session:
            session.expunge(owner)


__all__ = ["ImportResult", "Parsed", "RowError", "decode", "import_bytes", "import_csv",
           "parse_bytes", "parse_csv", "parse_table", "refusal"]  # fmt: skip
