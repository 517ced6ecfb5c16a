"""Who sees and verifies which findings from the console (issue 12).

- Staff (role staff and above) see every finding, with progress per certificate, and verify
  evidence where the profile says staff do (`[findings] verified_by = "staff"`).
- A member (role member: an ICS brand or retailer) sees only the factories linked to it
  (`member_factory`), and verifies their evidence where `verified_by = "member"`. Anything else
  — another member's factory, by a guessed id too — is refused exactly as a missing finding.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import col, select

from bot.desk import Desk
from bot.domain import findings as rules
from bot.domain.staff import Role, may
from bot.services import findings as service
from storage.models import (
    Certificate,
    FindingEvidence,
    FindingEvidenceFile,
    MemberFactory,
    StaffMember,
    StoredFile,
)
from storage.repo import certificates as cert_repo
from storage.repo import findings as repo
from storage.unit_of_work import UnitOfWork

NOT_FOUND = "findings.not_found"


def _is_staff(member: StaffMember) -> bool:
    return may(member.role, Role.STAFF)


async def factories_of(uow: UnitOfWork, member: StaffMember) -> set[int]:
    stmt = select(MemberFactory.organisation_id).where(col(MemberFactory.staff_id) == member.id)
    return set((await uow.session.exec(stmt)).all())


async def link_member(uow: UnitOfWork, member: StaffMember, certificate: str) -> int:
    """Link a member account to the organisation of a certificate (or audited factory)."""
    cert = await cert_repo.by_number(uow.session, certificate)
    if cert is None or cert.organisation_id is None:
        raise LookupError(certificate)
    if cert.organisation_id not in await factories_of(uow, member):
        uow.session.add(
            MemberFactory(staff_id=member.id or 0, organisation_id=cert.organisation_id)
        )
        await uow.session.flush()
    return cert.organisation_id


async def _may_see(uow: UnitOfWork, member: StaffMember, cert: Certificate) -> bool:
    if _is_staff(member):
        return True
    return cert.organisation_id is not None and cert.organisation_id in await factories_of(
        uow, member
    )


@dataclass(frozen=True)
class Row:
    finding: service.FindingView
    closed: int  # progress of its certificate: "closed of total findings closed"
    total: int


async def visible(desk: Desk, uow: UnitOfWork, member: StaffMember) -> list[Row]:
    rows = await repo.listed(uow.session)
    if not _is_staff(member):
        mine = await factories_of(uow, member)
        rows = [(f, c) for f, c in rows if c.organisation_id in mine]
    today = desk.clock.today()
    counts: dict[int, list[str]] = {}
    for f, c in rows:
        counts.setdefault(c.id or 0, []).append(f.status)
    progress = {k: rules.progress(v) for k, v in counts.items()}
    return [
        Row(service.view(f, c, today), progress[c.id or 0].closed, progress[c.id or 0].total)
        for f, c in rows
    ]


@dataclass(frozen=True)
class Submission:
    evidence: FindingEvidence
    files: list[tuple[FindingEvidenceFile, StoredFile]]


async def detail(
    desk: Desk, uow: UnitOfWork, member: StaffMember, finding_id: int
) -> tuple[service.FindingView, list[Submission]]:
    found = await repo.with_certificate(uow.session, finding_id)
    if found is None or not await _may_see(uow, member, found[1]):
        raise service.Refusal(NOT_FOUND)
    stmt = (
        select(FindingEvidence)
        .where(col(FindingEvidence.finding_id) == finding_id)
        .order_by(col(FindingEvidence.id))
    )
    subs = [
        Submission(e, await repo.evidence_files(uow.session, e.id or 0))
        for e in (await uow.session.exec(stmt)).all()
    ]
    return service.view(found[0], found[1], desk.clock.today()), subs


async def evidence_file(
    desk: Desk, uow: UnitOfWork, member: StaffMember, finding_id: int, file_id: int
) -> tuple[FindingEvidenceFile, StoredFile]:
    """One evidence file of a finding the account may see; Refusal otherwise."""
    _, subs = await detail(desk, uow, member, finding_id)
    for sub in subs:
        for f, stored in sub.files:
            if f.id == file_id:
                return f, stored
    raise service.Refusal(NOT_FOUND)


def may_verify(desk: Desk, member: StaffMember) -> bool:
    """Whether this account's role verifies evidence under the profile."""
    policy = desk.profile.findings
    by = policy.verified_by if policy is not None else "staff"
    return _is_staff(member) if by == "staff" else member.role == Role.MEMBER


async def review(
    desk: Desk, uow: UnitOfWork, member: StaffMember, finding_id: int, *, accept: bool,
    reason: str | None,
) -> service.FindingView:  # fmt: skip
    await detail(desk, uow, member, finding_id)  # refused as missing when not visible
    if not may_verify(desk, member):
        raise service.Refusal("findings.not_verifier")
    return await service.review(desk, uow, finding_id, accept=accept, reason=reason, by=member.name)


__all__ = [
    "Row",
    "Submission",
    "detail",
    "evidence_file",
    "factories_of",
    "link_member",
    "may_verify",
    "review",
    "visible",
]
