"""Staff handling of cases: `/cases`, `/case REF`, `/assign`, `/milestone`, `/reply` and buttons.

Every handler here is filtered to `STAFF_USER_IDS`: anyone else gets nothing from them, whatever
they type (their `/case` reaches the public filing flow instead).
Texts: messages/catalogs/staff.toml.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update, User
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ConversationHandler,
    MessageHandler,
    filters,
)

from bot import cases
from bot.cases import FINAL_MILESTONE, CaseRefused
from bot.clock import SHANGHAI
from bot.desk import Desk
from bot.refs import normalise_ref
from handlers.telegram import common
from handlers.telegram.common import Context, desk_of, locale_of, send, stay
from messages.render import t, th
from storage.models import Case, CaseEvent, Deadline
from storage.repo import cases as repo

REPLY_TEXT = 0
DESCRIPTION_LIMIT = 1500  # characters shown in /case; the full text is in the history
MILESTONE_ORDER = ("work_group_formed", "investigation_done", "decision_made", "answer_sent")


def _kb(rows: list[list[tuple[str, str]]]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(text, callback_data=data) for text, data in row] for row in rows]
    )


def _who(user: User) -> tuple[str, list[str]]:
    """A staff member's id (as recorded on cases) and the names impartiality is checked on."""
    names = [user.full_name]
    if user.username:
        names.append(user.username)
    return str(user.id), names


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class StaffCases:
    """Staff case handlers; each stops the update (`stay`), so no later group sees it."""

    @staticmethod
    def locale(update: Update, context: Context) -> str:
        return locale_of(context)

    @staticmethod
    async def say(
        update: Update, context: Context, text: str, markup: InlineKeyboardMarkup | None = None
    ) -> None:
        await common.answer_query(update)
        await send(update, context, text, markup)

    # --- lists and details --------------------------------------------------------------------

    async def list_cases(self, update: Update, context: Context) -> None:
        """/cases: open cases, overdue first, then by nearest due date; provisional dates marked."""
        loc = self.locale(update, context)
        today = desk_of(context).clock.today()
        async with desk_of(context).sessions() as s:
            rows = await repo.open_cases_by_due(s)
        if not rows:
            await self.say(update, context, th("staff.cases_none", loc))
            return
        lines = [th("staff.cases_head", loc)]
        for row in rows:
            case = row.case
            flags = ""
            if case.out_of_time:
                flags += t("staff.out_of_time_short", loc)
            if case.incomplete:
                flags += t("staff.incomplete_short", loc)
            lines.append(
                th(
                    "staff.cases_line",
                    loc,
                    mark=t(
                        "staff.overdue_mark" if _overdue(row.next_due, today) else "staff.due_mark",
                        loc,
                    ),
                    ref=case.ref,
                    kind=cases.kind_name(case.kind, loc),
                    due=cases.format_date(row.next_due, loc)
                    if row.next_due
                    else t("staff.no_due", loc),
                    provisional=t("staff.provisional", loc) if row.provisional else "",
                    assignee=t("staff.assignee", loc, who=case.assignee)
                    if case.assignee
                    else t("staff.unassigned", loc),
                    flags=flags,
                )
            )
        markup = _kb([[(row.case.ref, f"staff:show:{row.case.ref}")] for row in rows[:20]])
        await self.say(update, context, "\n".join(lines), markup)

    async def show_command(self, update: Update, context: Context) -> None:
        """/case REF: the case, its deadlines and its history."""
        ref = normalise_ref(context.args[0]) if context.args else None
        if ref is None:
            await self.say(update, context, th("staff.case_usage", self.locale(update, context)))
            return
        await self._show(update, context, ref)

    async def show_button(self, update: Update, context: Context) -> None:
        await self._show(update, context, _ref(update))

    async def _show(self, update: Update, context: Context, ref: str) -> None:
        loc = self.locale(update, context)
        async with desk_of(context).sessions() as s:
            case = await repo.find_case_by_ref(s, ref)
            if case is None or case.id is None:
                await self.say(update, context, th("staff.not_found", loc, ref=ref))
                return
            deadlines = list(await repo.deadlines_of(s, case.id))
            events = list(await repo.events_of(s, case.id))
        detail = self._detail(case, deadlines, events, loc, desk_of(context).clock.today())
        await self.say(update, context, detail, self._actions(desk_of(context), case, loc))

    def _detail(
        self, case: Case, deadlines: list[Deadline], events: list[CaseEvent], loc: str, today: date
    ) -> str:
        first = (events[0].data or {}) if events else {}
        who = first.get("complainant") or {}
        identity = " / ".join(
            str(v) for v in (who.get("name"), who.get("email"), who.get("phone")) if v
        ) or t("cases.not_given", loc)
        flags = "".join(
            t(key, loc)
            for key, on in (
                ("staff.out_of_time_short", case.out_of_time),
                ("staff.incomplete_short", case.incomplete),
            )
            if on
        )
        deadline_lines = [self._deadline_line(d, loc, today) for d in deadlines]
        history = [
            th(
                "staff.history_line",
                loc,
                seq=e.seq,
                at=e.at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M"),
                actor=e.actor,
                type=e.type,
            )
            for e in events
        ]
        subject = case.subject or ""
        if case.concerns_certificate_no and case.concerns_certificate_no != subject:
            subject = f"{subject} {case.concerns_certificate_no}".strip()
        received = date.fromisoformat(str(first.get("received_on"))) if first else None
        return (
            th(
                "staff.case_detail",
                loc,
                kind=cases.kind_name(case.kind, loc),
                ref=case.ref,
                status=t(f"cases.status_{case.status}", loc),
                flags=flags,
                channel=t(f"staff.channel_{case.channel}", loc),
                received=cases.format_date(received, loc) if received else "",
                assignee=case.assignee or t("staff.unassigned", loc),
                who=identity,
                subject=_cut(subject, 300),
                description=_cut(case.description or "", DESCRIPTION_LIMIT),
                deadlines="\x00",
                history="\x01",
            )
            .replace("\x00", "\n".join(deadline_lines) or th("staff.no_deadlines", loc))
            .replace("\x01", "\n".join(history))
        )

    def _deadline_line(self, d: Deadline, loc: str, today: date) -> str:
        rule = cases.rule_name(d.rule_id, loc)
        if d.closed_at is not None:
            return th(
                "staff.deadline_closed",
                loc,
                rule=rule,
                due=cases.format_date(d.due_on, loc),
                closed_by=d.closed_by or "",
                closed=cases.format_date(d.closed_at.astimezone(SHANGHAI).date(), loc),
            )
        mark = t("staff.overdue_mark", loc) + " " if d.due_on < today else ""
        return mark + th(
            "staff.deadline_open",
            loc,
            rule=rule,
            due=cases.format_date(d.due_on, loc),
            provisional=t("staff.provisional", loc) if d.provisional else "",
            clause=d.clause,
        )

    def _actions(self, desk: Desk, case: Case, loc: str) -> InlineKeyboardMarkup | None:
        if case.closed_at is not None:
            return None
        relevant = {r.closed_by for r in desk.profile.case_rules(case.kind) if r.closed_by}
        relevant.add(FINAL_MILESTONE[case.kind])
        rows = [[(t("staff.btn_assign_me", loc), f"staff:assign:{case.ref}")]]
        for milestone in MILESTONE_ORDER:
            if milestone in relevant:
                label = t(f"staff.btn_milestone_{milestone}", loc)
                rows.append([(label, f"staff:ms:{milestone}:{case.ref}")])
        rows.append([(t("staff.btn_reply", loc), f"staff:reply:{case.ref}")])
        return _kb(rows)

    # --- actions ------------------------------------------------------------------------------

    async def assign_button(self, update: Update, context: Context) -> None:
        user = update.effective_user
        assert user is not None
        staff_id, names = _who(user)
        await self._assign(update, context, _ref(update), staff_id, names)

    async def assign_command(self, update: Update, context: Context) -> None:
        """/assign REF [STAFF_ID]: to oneself, or to another staff member by Telegram id."""
        user = update.effective_user
        assert user is not None
        args = context.args or []
        ref = normalise_ref(args[0]) if args else None
        if ref is None:
            await self.say(update, context, th("staff.assign_usage", self.locale(update, context)))
            return
        staff_id, names = _who(user)
        if len(args) > 1:
            staff_id, names = args[1], []
        await self._assign(update, context, ref, staff_id, names)

    async def _assign(
        self, update: Update, context: Context, ref: str, staff_id: str, names: list[str]
    ) -> None:
        loc = self.locale(update, context)
        user = update.effective_user
        assert user is not None
        async with desk_of(context).sessions() as s:
            case = await repo.find_case_by_ref(s, ref)
            if case is None or case.id is None:
                await self.say(update, context, th("staff.not_found", loc, ref=ref))
                return
            case = await repo.lock_case(s, case.id)
            try:
                await cases.assign(desk_of(context), s, case, f"staff:{user.id}", staff_id, names)
            except CaseRefused as refused:
                await self.say(update, context, refused.html(loc))
                return
            await s.commit()
        shown = names[0] if names else staff_id
        await self.say(update, context, th("staff.assigned", loc, ref=ref, who=shown))

    async def milestone_button(self, update: Update, context: Context) -> None:
        query = update.callback_query
        assert query is not None and query.data is not None
        _, _, milestone, ref = query.data.split(":", 3)
        await self._milestone(update, context, ref, milestone)

    async def milestone_command(self, update: Update, context: Context) -> None:
        """/milestone REF NAME."""
        args = context.args or []
        ref = normalise_ref(args[0]) if args else None
        if ref is None or len(args) < 2 or args[1] not in MILESTONE_ORDER:
            await self.say(
                update, context, th("staff.milestone_usage", self.locale(update, context))
            )
            return
        await self._milestone(update, context, ref, args[1])

    async def _milestone(self, update: Update, context: Context, ref: str, milestone: str) -> None:
        loc = self.locale(update, context)
        user = update.effective_user
        assert user is not None
        async with desk_of(context).sessions() as s:
            case = await repo.find_case_by_ref(s, ref)
            if case is None or case.id is None:
                await self.say(update, context, th("staff.not_found", loc, ref=ref))
                return
            case = await repo.lock_case(s, case.id)
            try:
                closed = await cases.record_milestone(
                    desk_of(context), s, case, f"staff:{user.id}", milestone
                )
            except CaseRefused as refused:
                await self.say(update, context, refused.html(loc))
                return
            await s.commit()
        names = "、".join(cases.rule_name(d.rule_id, loc) for d in closed) or t("staff.none", loc)
        label = t(f"staff.btn_milestone_{milestone}", loc)
        await self.say(
            update, context, th("staff.milestone_done", loc, ref=ref, milestone=label, closed=names)
        )

    async def reply_command(self, update: Update, context: Context) -> None:
        """/reply REF text…: the answer goes to the complainant's channel via the outbox."""
        message = update.effective_message
        assert message is not None and message.text is not None
        parts = message.text.split(maxsplit=2)
        ref = normalise_ref(parts[1]) if len(parts) > 1 else None
        if ref is None or len(parts) < 3:
            await self.say(update, context, th("staff.reply_usage", self.locale(update, context)))
            return
        await self._reply(update, context, ref, parts[2])

    async def ask_reply(self, update: Update, context: Context) -> int:
        assert context.user_data is not None
        ref = _ref(update)
        context.user_data["staff_reply_ref"] = ref
        await self.say(
            update, context, th("staff.ask_reply", self.locale(update, context), ref=ref)
        )
        return REPLY_TEXT

    async def reply_text(self, update: Update, context: Context) -> int:
        message = update.effective_message
        assert message is not None and context.user_data is not None
        ref = context.user_data.pop("staff_reply_ref", None)
        if ref and message.text:
            await self._reply(update, context, ref, message.text)
        return ConversationHandler.END

    async def _reply(self, update: Update, context: Context, ref: str, text: str) -> None:
        loc = self.locale(update, context)
        user = update.effective_user
        assert user is not None
        async with desk_of(context).sessions() as s:
            case = await repo.find_case_by_ref(s, ref)
            if case is None or case.id is None:
                await self.say(update, context, th("staff.not_found", loc, ref=ref))
                return
            case = await repo.lock_case(s, case.id)
            try:
                row = await cases.reply(desk_of(context), s, case, f"staff:{user.id}", text)
            except CaseRefused as refused:
                await self.say(update, context, refused.html(loc))
                return
            await s.commit()
        channel = t(f"staff.channel_{row.channel}", loc)
        await self.say(update, context, th("staff.reply_queued", loc, ref=ref, channel=channel))


def _ref(update: Update) -> str:
    query = update.callback_query
    assert query is not None and query.data is not None
    return query.data.rsplit(":", 1)[1]


def _overdue(due: date | None, today: date) -> bool:
    return due is not None and due < today


class StaffButton(CallbackQueryHandler[Any, Any]):
    """A button handler that ignores anyone not configured as staff."""

    def __init__(self, desk: Desk, callback: Any, pattern: str) -> None:
        super().__init__(callback, pattern=pattern)
        self.desk = desk

    def check_update(self, update: object) -> Any:
        user = update.effective_user if isinstance(update, Update) else None
        if not self.desk.is_staff(user.id if user else None):
            return None
        return super().check_update(update)


def register(app: Application, desk: Desk) -> None:
    """Staff case handlers in the staff group, so they run before any public flow."""
    h = StaffCases()
    # An empty id list must refuse everyone; filters.User() with no ids would refuse no one.
    staff = filters.User(user_id=list(desk.staff_ids) or [0])
    common.conversation(
        app,
        "staff_reply",
        entry_points=[StaffButton(desk, stay(h.ask_reply), r"^staff:reply:")],
        states={REPLY_TEXT: [MessageHandler(staff & common.text_input(), stay(h.reply_text))]},
    )
    g = common.STAFF_GROUP
    app.add_handler(CommandHandler("cases", stay(h.list_cases), filters=staff), group=g)
    # `/case REF` for staff; a bare `/case` (or anyone else's) is the public filing flow.
    staff_case = staff & filters.Regex(r"^/case(@\w+)?\s+\S")
    app.add_handler(CommandHandler("case", stay(h.show_command), filters=staff_case), group=g)
    app.add_handler(CommandHandler("assign", stay(h.assign_command), filters=staff), group=g)
    app.add_handler(CommandHandler("milestone", stay(h.milestone_command), filters=staff), group=g)
    app.add_handler(CommandHandler("reply", stay(h.reply_command), filters=staff), group=g)
    app.add_handler(StaffButton(desk, stay(h.show_button), r"^staff:show:"), group=g)
    app.add_handler(StaffButton(desk, stay(h.assign_button), r"^staff:assign:"), group=g)
    app.add_handler(StaffButton(desk, stay(h.milestone_button), r"^staff:ms:"), group=g)
