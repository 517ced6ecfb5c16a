"""Staff handling of cases: `/cases`, `/case REF`, `/assign`, `/milestone`, `/reply` and buttons.

Every handler here is behind the one staff gate (handlers.telegram.staff_gate): anyone else gets
nothing from them, whatever they type or forge as button data (their `/case` reaches the public
filing flow instead; their press of a staff button is answered "staff only").
Texts: messages/catalogs/staff.toml.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from telegram import InlineKeyboardMarkup, Update
from telegram.ext import (
    Application,
    CommandHandler,
    ConversationHandler,
    MessageHandler,
    filters,
)

from bot.desk import Desk
from bot.domain.impartiality import Acting
from bot.domain.refs import button_ref, normalise_ref
from bot.services import case_acting, cases, staff
from bot.services.cases import MILESTONE_ORDER, CaseRefused
from handlers.telegram import common, staff_case_file
from handlers.telegram.cases_common import typed
from handlers.telegram.common import (
    Context,
    Group,
    desk_of,
    keyboard,
    locale_of,
    send,
    stay,
    uow_of,
)
from handlers.telegram.staff_gate import StaffButton, StaffOnly
from messages.render import rule_label, t, th
from storage.models import Case, CaseEvent, Deadline, OutboxMessage
from storage.unit_of_work import UnitOfWork

REPLY_TEXT = 0
T = TypeVar("T")
# A service call on one locked case: (uow, case, actor, who acts) -> result.
Action = Callable[[UnitOfWork, Case, str, Acting], Awaitable[T]]


def _short_flags(case: Case, loc: str) -> str:
    flags = (
        ("staff.out_of_time_short", case.out_of_time),
        ("staff.incomplete_short", case.incomplete),
    )
    return "".join(t(key, loc) for key, on in flags if on)


def _staff_actor(update: Update) -> str:
    assert update.effective_user is not None
    return f"staff:{update.effective_user.id}"


class StaffCases:
    """Staff case handlers; each stops the update (`stay`), so no later group sees it."""

    @staticmethod
    async def say(
        update: Update, context: Context, text: str, markup: InlineKeyboardMarkup | None = None
    ) -> None:
        await common.answer_query(update)
        await send(update, context, text, markup)

    async def _act(self, update: Update, context: Context, ref: str, action: Action[T]) -> T | None:
        """Run a service action on case `ref`, locked in the update's unit of work (which
        commits before any answer); None (and the reason said) when there is no such case or
        the rules refuse."""
        loc = locale_of(context)
        uow = uow_of(context)
        case = await cases.lock_case(uow, ref)
        if case is None:
            await self.say(update, context, th("staff.not_found", loc, ref=ref))
            return None
        user = update.effective_user
        assert user is not None
        # Who acts, as the staff directory knows them (never by a display name).
        who = await case_acting.acting_telegram(uow, user.id, user.full_name)
        try:
            return await action(uow, case, _staff_actor(update), who)
        except CaseRefused as refused:
            await self.say(update, context, cases.refused_html(refused, loc))
            return None

    # --- lists and details --------------------------------------------------------------------

    async def list_cases(self, update: Update, context: Context) -> None:
        """/cases: open cases, overdue first, then by nearest due date; provisional dates marked."""
        loc = locale_of(context)
        today = desk_of(context).clock.today()
        rows = await cases.open_cases(uow_of(context))
        names = await staff.names_of_actors(
            uow_of(context), [f"staff:{r.case.assignee}" for r in rows if r.case.assignee]
        )
        if not rows:
            await self.say(update, context, th("staff.cases_none", loc))
            return
        lines = [th("staff.cases_head", loc)]
        for row in rows:
            case, due = row.case, row.next_due
            lines.append(
                th(
                    "staff.cases_line",
                    loc,
                    mark=t("staff.overdue_mark" if due and due < today else "staff.due_mark", loc),
                    ref=case.ref,
                    kind=cases.kind_name(case.kind, loc),
                    due=cases.format_date(due, loc) if due else t("staff.no_due", loc),
                    provisional=t("staff.provisional", loc) if row.provisional else "",
                    assignee=t("staff.assignee", loc, who=names.get(case.assignee, case.assignee))
                    if case.assignee
                    else t("staff.unassigned", loc),
                    flags=_short_flags(case, loc),
                )
            )
        markup = keyboard([[(row.case.ref, f"staff:show:{row.case.ref}")] for row in rows[:20]])
        await self.say(update, context, "\n".join(lines), markup)

    async def show_command(self, update: Update, context: Context) -> None:
        """/case REF: the case, its deadlines and its history."""
        ref = normalise_ref(context.args[0]) if context.args else None
        if ref is None:
            await self.say(update, context, th("staff.case_usage", locale_of(context)))
            return
        await self._show(update, context, ref)

    async def show_button(self, update: Update, context: Context) -> None:
        await self._show(update, context, button_ref(_data(update)))

    async def _show(self, update: Update, context: Context, ref: str) -> None:
        """The case file in words (handlers.telegram.staff_case_file), actions under it."""
        loc = locale_of(context)
        desk = desk_of(context)
        uow = uow_of(context)
        shown = await staff_case_file.case_file_text(desk, uow, ref, loc)
        if shown is None:
            await self.say(update, context, th("staff.not_found", loc, ref=ref))
            return
        text, _open = shown
        case = await cases.find_case_by_ref(uow.session, ref)
        assert case is not None
        await self.say(update, context, text, self._actions(desk, case, loc))

    def _actions(self, desk: Desk, case: Case, loc: str) -> InlineKeyboardMarkup | None:
        if case.closed_at is not None:
            return None
        rows = [[(t("staff.btn_assign_me", loc), f"staff:assign:{case.ref}")]]
        for milestone in cases.milestones_for(desk.profile, case.kind):
            label = t(f"staff.btn_milestone_{milestone}", loc)
            rows.append([(label, f"staff:ms:{milestone}:{case.ref}")])
        rows.append([(t("staff.btn_reply", loc), f"staff:reply:{case.ref}")])
        return keyboard(rows)

    # --- actions ------------------------------------------------------------------------------

    async def assign_button(self, update: Update, context: Context) -> None:
        user = update.effective_user
        assert user is not None
        await self._assign(update, context, button_ref(_data(update)), user.id)

    async def assign_command(self, update: Update, context: Context) -> None:
        """/assign REF [STAFF_ID]: to oneself, or to another staff member by Telegram id."""
        user = update.effective_user
        assert user is not None
        loc = locale_of(context)
        args = context.args or []
        ref = normalise_ref(args[0]) if args else None
        if ref is None:
            await self.say(update, context, th("staff.assign_usage", loc))
            return
        if len(args) == 1:
            await self._assign(update, context, ref, user.id)
            return
        other = int(args[1]) if args[1].lstrip("-").isdigit() else None
        if not desk_of(context).is_staff(other):
            await self.say(update, context, th("staff.assign_not_staff", loc, who=args[1]))
            return
        assert other is not None
        # Impartiality compares the other member by their directory entry (by Telegram id);
        # someone not in it is refused on a case that records who decided or audited.
        await self._assign(update, context, ref, other)

    async def _assign(self, update: Update, context: Context, ref: str, to_id: int) -> None:
        desk = desk_of(context)
        user = update.effective_user
        shown = user.full_name if user is not None and user.id == to_id else None
        to = await case_acting.acting_telegram(uow_of(context), to_id, shown)

        async def assign(uow: UnitOfWork, case: Case, actor: str, who: Acting) -> CaseEvent:
            return await case_acting.assign(desk, uow, case, actor, who, to)

        event = await self._act(update, context, ref, assign)
        if event is not None:
            shown = (event.data or {}).get("names", [str(to_id)])[0]
            await self.say(
                update, context, th("staff.assigned", locale_of(context), ref=ref, who=shown)
            )

    async def milestone_button(self, update: Update, context: Context) -> None:
        _, _, milestone, ref = _data(update).split(":", 3)
        await self._milestone(update, context, normalise_ref(ref) or "", milestone)

    async def milestone_command(self, update: Update, context: Context) -> None:
        """/milestone REF NAME."""
        args = context.args or []
        ref = normalise_ref(args[0]) if args else None
        if ref is None or len(args) < 2 or args[1] not in MILESTONE_ORDER:
            await self.say(update, context, th("staff.milestone_usage", locale_of(context)))
            return
        await self._milestone(update, context, ref, args[1])

    async def _milestone(self, update: Update, context: Context, ref: str, milestone: str) -> None:
        loc = locale_of(context)
        desk = desk_of(context)

        async def record(uow: UnitOfWork, case: Case, actor: str, who: Acting) -> list[Deadline]:
            return await case_acting.milestone(desk, uow, case, actor, who, milestone)

        closed = await self._act(update, context, ref, record)
        if closed is None:
            return
        names = "、".join(rule_label(d.rule_id, loc) for d in closed) or t("staff.none", loc)
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
            await self.say(update, context, th("staff.reply_usage", locale_of(context)))
            return
        await self._reply(update, context, ref, parts[2])

    async def ask_reply(self, update: Update, context: Context) -> int:
        assert context.user_data is not None
        ref = button_ref(_data(update))
        context.user_data["staff_reply_ref"] = ref
        await self.say(update, context, th("staff.ask_reply", locale_of(context), ref=ref))
        return REPLY_TEXT

    async def reply_text(self, update: Update, context: Context) -> int:
        message = update.effective_message
        assert message is not None and context.user_data is not None
        ref = context.user_data.pop("staff_reply_ref", None)
        if ref and message.text:
            await self._reply(update, context, ref, message.text)
        return ConversationHandler.END

    async def _reply(self, update: Update, context: Context, ref: str, text: str) -> None:
        loc = locale_of(context)
        desk = desk_of(context)

        async def answer(uow: UnitOfWork, case: Case, actor: str, who: Acting) -> OutboxMessage:
            return await case_acting.reply(desk, uow, case, actor, who, text)

        row = await self._act(update, context, ref, answer)
        if row is not None:
            channel = t(f"staff.channel_{row.channel}", loc)
            await self.say(update, context, th("staff.reply_queued", loc, ref=ref, channel=channel))


def _data(update: Update) -> str:
    query = update.callback_query
    assert query is not None and query.data is not None
    return query.data


def register(app: Application, desk: Desk) -> None:
    """Staff case handlers in the staff group, so they run before any public flow; every one
    behind the staff gate (handlers.telegram.staff_gate)."""
    h = StaffCases()
    # Commands and typed answers are taken from new messages only (the guard drops edits too).
    staff = StaffOnly(desk) & filters.UpdateType.MESSAGE
    common.conversation(
        app,
        "staff_reply",
        Group.STAFF_REPLY,
        entry_points=[StaffButton(stay(h.ask_reply), r"^staff:reply:")],
        states={REPLY_TEXT: [MessageHandler(staff & typed(), stay(h.reply_text))]},
    )
    g = Group.STAFF
    app.add_handler(CommandHandler("cases", stay(h.list_cases), filters=staff), group=g)
    # `/case REF` for staff; a bare `/case` (or anyone else's) is the public filing flow.
    staff_case = staff & filters.Regex(r"^/case(@\w+)?\s+\S")
    app.add_handler(CommandHandler("case", stay(h.show_command), filters=staff_case), group=g)
    app.add_handler(CommandHandler("assign", stay(h.assign_command), filters=staff), group=g)
    app.add_handler(CommandHandler("milestone", stay(h.milestone_command), filters=staff), group=g)
    app.add_handler(CommandHandler("reply", stay(h.reply_command), filters=staff), group=g)
    app.add_handler(StaffButton(stay(h.show_button), r"^staff:show:"), group=g)
    app.add_handler(StaffButton(stay(h.assign_button), r"^staff:assign:"), group=g)
    milestones = "|".join(MILESTONE_ORDER)  # forged data naming anything else matches nothing
    app.add_handler(StaffButton(stay(h.milestone_button), rf"^staff:ms:({milestones}):"), group=g)
