"""Staff alert for corrective-action evidence (issue 12 §3): each evidence file to the staff chat
as a document, captioned with the finding and with its accept button (a rejection needs a reason
in words: `/finding_reject <id> <reason>`); the whole submission as one text alert for the other
staff channels (robots, e-mail)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.desk import Desk
from bot.services.staff_files import StaffFile, queue_files_for_staff
from messages.render import t, th
from storage.models import Certificate, Finding, StoredFile

NOTE_IN_CAPTION = 300  # characters of the note under each file (the text alert has all of it)


async def evidence_to_staff(
    desk: Desk,
    session: AsyncSession,
    finding: Finding,
    cert: Certificate,
    evidence_id: int,
    files: Sequence[tuple[int, str]],
    note: str | None,
) -> None:
    """`files`: (stored_file id, shown name) of the submission `evidence_id`."""
    loc = desk.settings.default_locale
    about = {
        "id": finding.id,
        "number": cert.number,
        "holder": cert.holder,
        "grade": t(f"findings.grade_{finding.grade}", loc),
        "clause": finding.clause,
        "due": finding.due_on.isoformat(),
    }
    text = th(
        "findings.staff_evidence",
        loc,
        **about,
        files="\n".join(f"• {name}" for _, name in files),
        note=note or "—",
    )
    short = note if note is None or len(note) <= NOTE_IN_CAPTION else note[:NOTE_IN_CAPTION] + "…"
    documents = []
    for n, (stored_id, name) in enumerate(files, start=1):
        row = await session.get(StoredFile, stored_id)
        if row is None:
            continue  # never happens for a submission just stored; the text alert still goes
        caption = th(
            "findings.staff_evidence_file",
            loc,
            **about,
            n=n,
            total=len(files),
            name=name,
            note=short or "—",
        )
        documents.append(StaffFile(row, name, caption))
    accept = [[{"text": t("findings.btn_accept", loc), "callback_data": f"sf:a:{finding.id}"}]]
    await queue_files_for_staff(
        desk,
        session,
        key=f"finding-evidence:{evidence_id}",
        files=documents,
        text=text,
        buttons=accept,
    )


__all__ = ["NOTE_IN_CAPTION", "evidence_to_staff"]
