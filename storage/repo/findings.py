"""Queries of audit findings and their evidence."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import Certificate, Finding, FindingEvidence, FindingEvidenceFile, StoredFile


async def add(session: AsyncSession, values: dict[str, Any], now: datetime) -> Finding:
    row = Finding(**values, created_at=now, updated_at=now)
    session.add(row)
    await session.flush()
    return row


async def with_certificate(
    session: AsyncSession, finding_id: int
) -> tuple[Finding, Certificate] | None:
    stmt = (
        select(Finding, Certificate)
        .join(Certificate, col(Certificate.id) == col(Finding.certificate_id))
        .where(col(Finding.id) == finding_id)
    )
    row = (await session.exec(stmt)).first()
    return (row[0], row[1]) if row is not None else None


async def listed(
    session: AsyncSession,
    *,
    certificate_id: int | None = None,
    organisation_id: int | None = None,
    statuses: Iterable[str] | None = None,
) -> list[tuple[Finding, Certificate]]:
    """Findings with their certificate, by certificate number then due date."""
    stmt = select(Finding, Certificate).join(
        Certificate, col(Certificate.id) == col(Finding.certificate_id)
    )
    if certificate_id is not None:
        stmt = stmt.where(col(Finding.certificate_id) == certificate_id)
    if organisation_id is not None:
        stmt = stmt.where(col(Certificate.organisation_id) == organisation_id)
    if statuses is not None:
        stmt = stmt.where(col(Finding.status).in_(list(statuses)))
    stmt = stmt.order_by(col(Certificate.number), col(Finding.due_on), col(Finding.id))
    return [(f, c) for f, c in (await session.exec(stmt)).all()]


async def set_status(
    session: AsyncSession,
    finding: Finding,
    status: str,
    now: datetime,
    *,
    reason: str | None = None,
    closed_on: date | None = None,
) -> None:
    finding.status = status
    finding.reason = reason
    finding.closed_on = closed_on
    finding.updated_at = now
    session.add(finding)
    await session.flush()


async def add_evidence(
    session: AsyncSession,
    *,
    finding_id: int,
    contact_id: int | None,
    note: str | None,
    files: Sequence[tuple[int, str]],
    now: datetime,
) -> FindingEvidence:
    """One submission with its files (stored_file id, shown name)."""
    evidence = FindingEvidence(
        finding_id=finding_id, contact_id=contact_id, note=note, submitted_at=now
    )
    session.add(evidence)
    await session.flush()
    for stored_file_id, name in files:
        session.add(
            FindingEvidenceFile(
                evidence_id=evidence.id or 0, stored_file_id=stored_file_id, original_name=name
            )
        )
    await session.flush()
    return evidence


async def latest_evidence(session: AsyncSession, finding_id: int) -> FindingEvidence | None:
    stmt = (
        select(FindingEvidence)
        .where(col(FindingEvidence.finding_id) == finding_id)
        .order_by(col(FindingEvidence.id).desc())
    )
    return (await session.exec(stmt)).first()


async def evidence_files(
    session: AsyncSession, evidence_id: int
) -> list[tuple[FindingEvidenceFile, StoredFile]]:
    stmt = (
        select(FindingEvidenceFile, StoredFile)
        .join(StoredFile, col(StoredFile.id) == col(FindingEvidenceFile.stored_file_id))
        .where(col(FindingEvidenceFile.evidence_id) == evidence_id)
        .order_by(col(FindingEvidenceFile.id))
    )
    return [(f, s) for f, s in (await session.exec(stmt)).all()]


async def review(
    session: AsyncSession, evidence: FindingEvidence, verdict: str, reason: str | None, by: str,
    now: datetime,
) -> None:  # fmt: skip
    evidence.verdict, evidence.reason = verdict, reason
    evidence.reviewed_by, evidence.reviewed_at = by, now
    session.add(evidence)
    await session.flush()


__all__ = [
    "add",
    "add_evidence",
    "evidence_files",
    "latest_evidence",
    "listed",
    "review",
    "set_status",
    "with_certificate",
]
