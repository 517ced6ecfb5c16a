"""The summary a complainant confirms before a case is filed (cases_filing's last step)."""

from __future__ import annotations

from datetime import date
from typing import Any

from bot.services import cases
from messages.render import t, th


def summary(draft: dict[str, Any], loc: str) -> str:
    none = t("cases.not_given", loc)

    def line(label: str, value: object) -> str:
        shown = str(value) if value not in (None, "") else none
        return th("cases.summary_line", loc, label=t(f"cases.label_{label}", loc), value=shown)

    kind = draft["kind"]
    lines = []
    if kind == "appeal":
        lines.append(line("decision", draft.get("subject")))
    if draft.get("decided_on"):
        lines.append(
            line("decision_date", cases.format_date(date.fromisoformat(draft["decided_on"]), loc))
        )
    if draft.get("notified_on"):
        notified = cases.format_date(date.fromisoformat(draft["notified_on"]), loc)
        lines.append(line("notified_date", notified))
    if kind == "appeal":
        team = [draft.get("decided_by"), *draft.get("audit_team", [])]
        lines.append(line("decided_by", "、".join(n for n in team if n)))
    if kind == "complaint":
        about = t(f"cases.btn_concerns_{draft.get('concerns', 'body')}", loc)
        if draft.get("concerns_org"):
            about += f" — {draft['concerns_org']}"
        lines.append(line("concerns", about))
    lines.append(line("description", draft.get("description")))
    lines.append(line("files", "、".join(f["name"] for f in draft.get("files", []))))
    lines.append(line("name", draft.get("name")))
    lines.append(line("contact", draft.get("email") or draft.get("phone")))
    return cases.th_with_lines(
        "cases.summary", loc, {"lines": lines}, kind=cases.kind_name(kind, loc)
    )


__all__ = ["summary"]
