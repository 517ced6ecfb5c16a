"""The tables of audit findings and their corrective-action evidence (issue 12), beside
storage.models (which imports this module, so the tables are part of its metadata)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from storage.types import UTCDateTime


def _instant(*, nullable: bool = False, **kw: Any) -> Any:
    return Field(sa_type=UTCDateTime, nullable=nullable, **kw)


class Finding(SQLModel, table=True):
    """An audit finding with its own corrective action: due date, clause, status."""

    __tablename__ = "finding"

    id: int | None = Field(default=None, primary_key=True)
    certificate_id: int = Field(foreign_key="certificate.id", index=True)
    site: str | None = None  # the audited site, when not the whole certificate
    audit_type: str  # initial | surveillance | recertification | special
    audit_end_on: date
    grade: str  # minor | major | zero_tolerance
    clause: str  # the standard's clause the finding is against
    text: str = Field(sa_type=sa.Text)
    due_on: date
    rule_id: str  # the profile period, or "set" for a date given with the finding
    rule_clause: str = Field(sa_type=sa.Text)  # the clause of the period
    status: str = Field(default="open", index=True)  # bot.domain.findings.FindingStatus
    reason: str | None = Field(default=None, sa_type=sa.Text)  # of the last rejection
    closed_on: date | None = None
    created_at: datetime = _instant()
    updated_at: datetime = _instant()


class FindingEvidence(SQLModel, table=True):
    """One submission of evidence for a finding (several files, a note), and its verdict."""

    __tablename__ = "finding_evidence"

    id: int | None = Field(default=None, primary_key=True)
    finding_id: int = Field(foreign_key="finding.id", index=True)
    contact_id: int | None = Field(default=None, foreign_key="contact.id")
    note: str | None = Field(default=None, sa_type=sa.Text)
    submitted_at: datetime = _instant()
    verdict: str | None = None  # accepted | rejected
    reason: str | None = Field(default=None, sa_type=sa.Text)
    reviewed_by: str | None = None
    reviewed_at: datetime | None = _instant(nullable=True, default=None)


class FindingEvidenceFile(SQLModel, table=True):
    __tablename__ = "finding_evidence_file"

    id: int | None = Field(default=None, primary_key=True)
    evidence_id: int = Field(foreign_key="finding_evidence.id", index=True)
    stored_file_id: int = Field(foreign_key="stored_file.id")
    original_name: str


class CertificateStatusRecord(SQLModel, table=True):
    """The status history of a status-model certificate (IETP): append-only, one row per
    decision, so "certified before" and a running termination period can be read from it."""

    __tablename__ = "certificate_status"

    id: int | None = Field(default=None, primary_key=True)
    certificate_id: int = Field(foreign_key="certificate.id", index=True)
    status: str  # a status id of the profile's [statuses]
    validity_months: int
    starts_on: date
    ends_on: date
    fee_paid_on: date | None = None
    created_at: datetime = _instant()


class MemberFactory(SQLModel, table=True):
    """Which factories (organisations) a member account works with (ICS: members see only
    those)."""

    __tablename__ = "member_factory"
    __table_args__ = (sa.UniqueConstraint("staff_id", "organisation_id"),)

    id: int | None = Field(default=None, primary_key=True)
    staff_id: int = Field(foreign_key="staff.id", index=True)
    organisation_id: int = Field(foreign_key="organisation.id", index=True)


__all__ = [
    "CertificateStatusRecord",
    "Finding",
    "FindingEvidence",
    "FindingEvidenceFile",
    "MemberFactory",
]
