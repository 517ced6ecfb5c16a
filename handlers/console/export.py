"""The register as XLSX: the complaints-and-appeals register a CNAS assessor asks for —
reference, kind, received, subject, each deadline and when it was met, outcome, days taken."""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import date

import xlsxwriter

from bot.clock import SHANGHAI
from bot.services.case_desk import RegisterRow
from bot.services.case_words import met_text
from messages.render import rule_label, t


def register_xlsx(rows: Sequence[RegisterRow], loc: str, today: date) -> bytes:
    out = io.BytesIO()
    book = xlsxwriter.Workbook(out, {"in_memory": True})
    sheet = book.add_worksheet(t("console.xlsx_sheet", loc)[:31])
    bold = book.add_format({"bold": True, "bg_color": "#E8EEF4", "border": 1})
    day = book.add_format({"num_format": "yyyy年m月d日" if loc == "zh_CN" else "yyyy-mm-dd"})
    late = book.add_format({"font_color": "#B00020"})
    head = [
        t(f"console.{key}", loc)
        for key in (
            "col_ref",
            "col_kind",
            "col_received",
            "col_subject",
            "col_deadline",
            "col_due",
            "col_met",
            "col_outcome",
            "col_days",
        )
    ]
    head[5] = t("console.col_deadline", loc) + " · " + t("console.col_due", loc)
    sheet.write_row(0, 0, head, bold)
    line = 1
    for row in rows:
        case = row.case
        closed = case.closed_at.astimezone(SHANGHAI).date() if case.closed_at else None
        outcome = t(f"cases.status_{case.status}", loc)
        taken = (closed or today) - row.received
        for i, d in enumerate(row.deadlines or [None]):
            if i == 0:
                sheet.write_string(line, 0, case.ref)
                sheet.write_string(line, 1, t(f"cases.kind_{case.kind}", loc))
                sheet.write_datetime(line, 2, row.received, day)
                sheet.write_string(line, 3, case.subject or "")
                sheet.write_string(line, 7, outcome)
                sheet.write_number(line, 8, taken.days)
            if d is not None:
                met = d.closed_at.astimezone(SHANGHAI).date() if d.closed_at else None
                sheet.write_string(line, 4, f"{rule_label(d.rule_id, loc)} ({d.clause})")
                overdue = met is None and d.due_on < today
                sheet.write_datetime(line, 5, d.due_on, day if not overdue else late)
                if met is not None:
                    how = met_text(d.closed_by, loc)
                    sheet.write_string(line, 6, f"{met.isoformat()} {how}".strip())
                else:
                    sheet.write_string(line, 6, t("console.not_met", loc))
            line += 1
    sheet.set_column(0, 0, 20)
    sheet.set_column(1, 2, 12)
    sheet.set_column(3, 4, 36)
    sheet.set_column(5, 6, 20)
    sheet.freeze_panes(1, 0)
    book.close()
    return out.getvalue()
