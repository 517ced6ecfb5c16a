"""`/case REF` for staff: the case file as the console shows it (bot.services.case_desk), in words.

Every event as a sentence with who did it (directory names, never raw actor ids), the deadlines
with their clause and how each was met, the decision under appeal with its makers, the text of
added information and of every reply sent, the attachments. Sent as HTML, split over several
messages when long (handlers.telegram.replies.send); texts: messages/catalogs/staff.toml.
"""

from __future__ import annotations

from datetime import date, datetime

from bot.clock import SHANGHAI
from bot.desk import Desk
from bot.services import case_desk, case_words, cases, staff
from bot.services.case_desk import CaseFile
from handlers.telegram.cases_common import TEXT_LIMIT
from messages.render import rule_label, t, th
from storage.models import Deadline
from storage.unit_of_work import UnitOfWork

# /case shows the description whole (send() splits a long file over several messages); only
# a text longer than the filing flow keeps (a long letter) is cut there, marked with "…".
DESCRIPTION_LIMIT = TEXT_LIMIT


def _flags(found: CaseFile, loc: str) -> str:
    case = found.case
    flags = (
        ("staff.out_of_time_short", case.out_of_time),
        ("staff.incomplete_short", case.incomplete),
    )
    return "".join(t(key, loc) for key, on in flags if on)


def deadline_line(d: Deadline, loc: str, today: date) -> str:
    rule = rule_label(d.rule_id, loc)
    due = cases.format_date(d.due_on, loc)
    if d.closed_at is not None:
        closed = cases.format_date(d.closed_at.astimezone(SHANGHAI).date(), loc)
        how = case_words.met_text(d.closed_by, loc)
        return th(
            "staff.deadline_closed",
            loc,
            rule=rule,
            due=due,
            clause=d.clause,
            closed=closed,
            how=how,
        )
    mark = t("staff.overdue_mark", loc) + " " if d.due_on < today else ""
    provisional = t("staff.provisional", loc) if d.provisional else ""
    return mark + th(
        "staff.deadline_open", loc, rule=rule, due=due, provisional=provisional, clause=d.clause
    )


def _size(size: int) -> str:
    return f"{size} B" if size < 1024 else f"{size / 1024:.1f} KiB"


def _decision(found: CaseFile, loc: str) -> str:
    case = found.case
    if not (case.decided_on or case.decided_by or case.audit_team):
        return ""
    unknown = t("staff.unknown", loc)
    return th(
        "staff.case_decision",
        loc,
        decided_on=cases.format_date(case.decided_on, loc) if case.decided_on else unknown,
        decided_by=case.decided_by or unknown,
        audit_team="、".join(case.audit_team or []) or unknown,
    )


def render(desk: Desk, found: CaseFile, names: dict[str, str], loc: str) -> str:
    """The whole case file as HTML, one section after another."""
    case = found.case
    subject = case.subject or ""
    if case.concerns_certificate_no and case.concerns_certificate_no != subject:
        subject = f"{subject} {case.concerns_certificate_no}".strip()
    assignee = case.assignee
    head = cases.th_with_lines(
        "staff.case_detail",
        loc,
        {"decision": [_decision(found, loc)]},
        kind=cases.kind_name(case.kind, loc),
        ref=case.ref,
        status=t(f"cases.status_{case.status}", loc),
        flags=_flags(found, loc),
        channel=t(f"staff.channel_{case.channel}", loc),
        received=cases.format_date(found.received, loc),
        assignee=case_words.actor_name(f"staff:{assignee}", names, loc)
        if assignee
        else t("staff.unassigned", loc),
        who=" / ".join(found.identity) or t("cases.not_given", loc),
        subject=cases.cut(subject, 300),
        description=cases.cut(case.description or "", DESCRIPTION_LIMIT),
    )
    today = desk.clock.today()
    sections = [head, "", th("staff.case_deadlines_head", loc)]
    sections += [deadline_line(d, loc, today) for d in found.deadlines] or [
        th("staff.no_deadlines", loc)
    ]
    if found.attachments:
        sections += ["", th("staff.case_attachments_head", loc, count=len(found.attachments))]
        for item in found.attachments:
            size = _size(int(item.get("size") or 0))
            kind = str(item.get("content_type") or "")
            sections.append(
                th("staff.attachment_line", loc, name=item.get("name"), type=kind, size=size)
            )
    sections += ["", th("staff.case_history_head", loc)]
    for e in found.events:
        who = case_words.actor_name(e.actor, names, loc)
        what = case_words.event_text(e, case.kind, names, loc, html=True)
        sections.append(_history_line(e.seq, e.at, who, loc) + what)
    base = desk.settings.console_base_url
    if base:
        url = f"{str(base).rstrip('/')}/cases/{case.ref}"
        sections += ["", th("staff.case_console_link", loc, url=url)]
    return "\n".join(sections)


def _history_line(seq: int, at: datetime, actor: str, loc: str) -> str:
    """The line's head (number, time, who); the event's words follow, HTML already."""
    when = at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")
    return th("staff.history_line", loc, seq=seq, at=when, actor=actor, what="")


async def case_file_text(
    desk: Desk, uow: UnitOfWork, ref: str, loc: str
) -> tuple[str, bool] | None:
    """The case file of `ref` as HTML and whether it is still open; None for no such case."""
    found = await case_desk.case_file(desk, uow, ref)
    if found is None:
        return None
    names = dict(found.names)
    names |= await staff.names_of_actors(
        uow, case_words.staff_keys(found.events, found.case.assignee)
    )
    return render(desk, found, names, loc), found.case.closed_at is None


__all__ = ["case_file_text", "deadline_line", "render"]
