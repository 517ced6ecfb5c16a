"""Where in the console a staff notice is acted upon, when CONSOLE_BASE_URL is set: the page
of its case, application, document or enquiry, found from the notice's key (its idempotency
key names what it is about) or the case it belongs to. Others link to the console's home."""

from __future__ import annotations

from urllib.parse import quote

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.config import Settings
from storage.models import Case, Deadline


async def console_path(session: AsyncSession, key: str, case_id: int | None) -> str | None:
    head, _, rest = key.partition(":")
    first = rest.split(":", 1)[0]
    if case_id is None and head == "alert" and first.isdigit():
        deadline = await session.get(Deadline, int(first))
        case_id = deadline.case_id if deadline is not None else None
    if case_id is not None:
        case = await session.get(Case, case_id)
        if case is not None:
            return f"/cases/{quote(case.ref)}"
    if head == "case" and first:
        return f"/cases/{quote(first)}"
    if head == "application-new" and first:
        return f"/applications/{quote(first)}"
    if head == "document-review" and first.isdigit():
        return f"/documents/{first}"
    if head == "inbound" and first.isdigit() and rest.endswith(":triage"):
        return f"/enquiries/{first}"
    return None


async def console_link(
    settings: Settings, session: AsyncSession, key: str, case_id: int | None
) -> str | None:
    """The console address of what the notice `key` is about; None without CONSOLE_BASE_URL."""
    base = settings.console_base_url
    if not base:
        return None
    path = await console_path(session, key, case_id)
    return base.rstrip("/") + (path or "/")


__all__ = ["console_link", "console_path"]
