"""The life of a case after it is opened: the complainant's further information, identity and
withdrawal; staff milestones, assignment and replies. Each adds to the caller's unit of work."""

from __future__ import annotations

from collections.abc import Sequence

from bot.desk import Desk
from bot.domain import cases as rules
from bot.domain.cases import WITHDRAWN, CaseRefused, Status
from bot.domain.impartiality import Acting, check_assignee
from bot.domain.refs import subject_tag
from bot.services.cases.attachments import Attachment
from bot.services.cases.events import Work, append, check_open, session_of
from bot.services.cases.outgoing import (
    email_to_complainant,
    new_message_id,
    staff_locale,
    telegram_to_complainant,
    to_staff,
)
from bot.services.cases.steps import send_outcome
from bot.services.cases.texts import both, cut, show_buttons
from messages.render import t, th
from storage.models import Case, CaseEvent, Channel, Deadline, OutboxMessage
from storage.repo import cases as repo
from storage.unit_of_work import UnitOfWork

# --- the complainant's side -------------------------------------------------------------------


async def add_information(
    desk: Desk,
    uow: Work,
    case: Case,
    actor: str,
    text: str,
    attachments: Sequence[Attachment] = (),
    source_message_id: str | None = None,
) -> CaseEvent:
    """A further letter or message from the complainant, recorded and shown to staff.

    A closed case still records it (nothing sent by a complainant is dropped); staff decide.
    """
    session = session_of(uow)
    now = desk.clock.now()
    mid = repo.normalise_message_id(source_message_id)
    if mid:
        await repo.add_message_id(session, case, mid)
    event = await append(
        session,
        case,
        actor=actor,
        type="information_added",
        now=now,
        data={
            "text": text,
            "attachments": [a.to_dict() for a in attachments],
            "source_message_id": mid,
        },
    )
    loc = staff_locale(desk)
    await to_staff(
        desk,
        session,
        case,
        f"case:{case.ref}:staff:event:{event.seq}",
        th("staff.info_added", loc, ref=case.ref, files=len(attachments), text=cut(text)),
        show_buttons(case, loc),
    )
    return event


async def provide_identity(
    desk: Desk,
    uow: UnitOfWork,
    case: Case,
    actor: str,
    *,
    name: str,
    email: str | None = None,
    phone: str | None = None,
) -> CaseEvent:
    """Name and contact given after the fact; completes an anonymous complaint."""
    session = uow.session
    now = desk.clock.now()
    case.complainant_name = name
    if email:
        case.complainant_email = email
    case.incomplete = case.incomplete and not (name and (email or phone))
    session.add(case)
    event = await append(
        session,
        case,
        actor=actor,
        type="identity_provided",
        now=now,
        data={"name": name, "email": email, "phone": phone, "incomplete": case.incomplete},
    )
    loc = staff_locale(desk)
    await to_staff(
        desk,
        session,
        case,
        f"case:{case.ref}:staff:event:{event.seq}",
        th("staff.identity_provided", loc, ref=case.ref),
    )
    return event


async def withdraw(
    desk: Desk, uow: UnitOfWork, case: Case, actor: str, reason: str | None = None
) -> list[Deadline]:
    """The complainant withdraws: every deadline closes, staff are told, the user gets a note."""
    closed = await record_milestone(desk, uow, case, actor, WITHDRAWN, note=reason)
    session = uow.session
    now = desk.clock.now()
    loc = case.locale
    text, text_html = both("cases.withdrawn_notice", loc, ref=case.ref)
    if case.complainant_chat_id is not None:
        await telegram_to_complainant(
            session, case, f"case:{case.ref}:withdrawn:telegram", text_html, now
        )
    elif case.complainant_email:
        await email_to_complainant(
            desk,
            session,
            case,
            key=f"case:{case.ref}:withdrawn:email",
            subject=t("cases.reply_subject", loc, tag=subject_tag(case.ref)),
            text=text,
            text_html=text_html,
            auto_reply=True,
            now=now,
        )
    return closed


# --- the staff side ---------------------------------------------------------------------------


async def record_milestone(
    desk: Desk,
    uow: UnitOfWork,
    case: Case,
    actor: str,
    milestone: str,
    note: str | None = None,
) -> list[Deadline]:
    """Record a milestone; close the deadlines it meets (`closed_by` in the profile).

    The kind's final milestone sends the outcome letter (`note` is its text, if given): where
    to go next, and the window that opens for it (steps.send_outcome).

    `withdrawn` and the kind's final milestone close the case and every deadline still open;
    a milestone not in `milestones_for(profile, kind)` is refused.
    """
    if milestone not in rules.ALL_MILESTONES:
        raise ValueError(f"unknown milestone {milestone!r}")
    check_open(case)  # a closed case says so, whatever the milestone
    rules.check_milestone(desk.profile, case.kind, milestone, case.ref)
    session = uow.session
    now = desk.clock.now()
    assert case.id is not None
    if rules.is_final(case.kind, milestone):
        closed = await repo.close_deadlines(session, case.id, None, milestone, now)
        case.closed_at = now
        case.status = Status.WITHDRAWN if milestone == WITHDRAWN else Status.CLOSED
        session.add(case)
    else:
        met = rules.rules_met_by(desk.profile, case.kind, milestone)
        closed = await repo.close_deadlines(session, case.id, met, milestone, now)
    await append(
        session,
        case,
        actor=actor,
        type=milestone,
        now=now,
        data={"note": note, "closed": [d.rule_id for d in closed]},
    )
    if rules.is_final(case.kind, milestone) and milestone != WITHDRAWN:
        # Closing a case sends its outcome: the written notice that meets the deadline.
        await send_outcome(desk, session, case, actor, note, now)
    return closed


async def assign(
    desk: Desk,
    uow: UnitOfWork,
    case: Case,
    actor: str,
    staff_id: str | Acting,
    staff_names: Sequence[str] | None = (),
) -> CaseEvent:
    """Assign a staff member (an `Acting`, or an id and the names they are known by); refused
    (CaseRefused) to whoever took or audited the decision (bot.domain.impartiality).

    `staff_names=None` (names unknown) is refused on a case that records who decided or audited.
    A case assigned to someone else is handed over: the event names whom it was handed over from.
    Whether the actor may assign is the caller's check (bot.services.case_acting).
    """
    check_open(case)
    if isinstance(staff_id, Acting):
        to = staff_id
    else:
        names = tuple(staff_names or ())
        shown = names[0] if names else staff_id
        to = Acting((staff_id, *names), staff_id, shown, known=staff_names is not None)
    handed_from = check_assignee(case, case.ref, to)
    now = desk.clock.now()
    case.assignee = to.key
    if case.status == Status.RECEIVED:
        case.status = Status.IN_PROGRESS
    uow.session.add(case)
    known_as = list(dict.fromkeys([to.shown, *to.ids]))
    data: dict[str, object] = {"assignee": to.key, "names": known_as}
    if handed_from is not None:
        data["handed_over_from"] = handed_from
    return await append(uow.session, case, actor=actor, type="assigned", now=now, data=data)


async def reply(desk: Desk, uow: UnitOfWork, case: Case, actor: str, text: str) -> OutboxMessage:
    """A staff answer to the complainant, on the channel the case came from, via the outbox."""
    session = uow.session
    now = desk.clock.now()
    loc = case.locale
    channel = Channel(case.channel)
    if channel is Channel.TELEGRAM and case.complainant_chat_id is None:
        channel = Channel.EMAIL
    if channel is Channel.EMAIL and not case.complainant_email:
        if case.complainant_chat_id is None:
            raise CaseRefused("staff.reply_no_channel", ref=case.ref)
        channel = Channel.TELEGRAM
    message_id = new_message_id(desk, case.ref) if channel is Channel.EMAIL else None
    # The event first: its seq keys the message, so each reply is sent once.
    event = await append(
        session,
        case,
        actor=actor,
        type="reply_sent",
        now=now,
        data={"text": text, "channel": channel.value, "message_id": message_id},
    )
    key = f"case:{case.ref}:event:{event.seq}:{channel.value}"
    if channel is Channel.TELEGRAM:
        return await telegram_to_complainant(
            session, case, key, th("cases.reply_telegram", loc, ref=case.ref, text=text), now
        )
    plain, text_html = both("cases.reply_email", loc, ref=case.ref, text=text)
    return await email_to_complainant(
        desk,
        session,
        case,
        key=key,
        subject=t("cases.reply_subject", loc, tag=subject_tag(case.ref)),
        text=plain,
        text_html=text_html,
        auto_reply=False,
        now=now,
        message_id=message_id,
    )
