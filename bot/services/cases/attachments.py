"""Files sent with a case: checked on their bytes and size, stored by content hash."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from bot.desk import Desk
from bot.domain import files
from bot.domain.cases import CaseRefused
from bot.services.cases.events import Work, session_of
from storage.files import store_file
from storage.repo import cases as repo


@dataclass(frozen=True)
class Attachment:
    stored_file_id: int
    name: str
    content_type: str
    size: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_upload_size(desk: Desk, size: int | None) -> None:
    """CaseRefused when a file is over MAX_UPLOAD_BYTES (a size not known yet passes)."""
    limit = desk.settings.max_upload_bytes
    if size is not None and size > limit:
        raise CaseRefused("cases.file_too_big", limit=f"{limit / 1_000_000:g}")


async def keep_attachment(desk: Desk, uow: Work, data: bytes, name: str | None) -> Attachment:
    """Check and store one file (same checks as application documents); CaseRefused if not."""
    check_upload_size(desk, len(data))
    content_type = files.sniff_type(data)
    if content_type is None:
        raise CaseRefused("cases.file_type_refused")
    sha, path = await store_file(desk.data_dir, data)
    row = await repo.stored_file(
        session_of(uow),
        sha256=sha,
        size=len(data),
        content_type=content_type,
        path=path,
        now=desk.clock.now(),
    )
    assert row.id is not None
    return Attachment(row.id, files.sanitise_filename(name), content_type, len(data), sha)
