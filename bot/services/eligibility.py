"""An organisation's eligibility answers: read, and written with the verdict once decided."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from storage.repo import contacts
from storage.unit_of_work import UnitOfWork


async def answers_of(uow: UnitOfWork, org_id: int) -> dict[str, Any] | None:
    """The saved answers ({} when none yet); None when there is no such organisation."""
    return await contacts.eligibility_answers(uow.session, org_id)


async def save_answers(
    uow: UnitOfWork,
    org_id: int,
    answers: dict[str, Any],
    verdict: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> None:
    """Write the answers (and the verdict, when decided) in the caller's unit of work."""
    statement, params = contacts.eligibility_update(org_id, answers, verdict, now)
    await uow.write(statement, params)  # read back by nothing in the update: one call to commit
