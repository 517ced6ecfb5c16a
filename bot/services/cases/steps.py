"""The steps after a case is opened that the seeds prescribe (issue 15 §3, §4): the outcome
letter with where to go next and the window it opens; SGC's acceptance decision (§八1.4);
extensions with their named approver; a complaint about a certified organisation told to it,
and the publicity decision; a serious SGC complaint (§八2.4). Each is a case event."""

from __future__ import annotations

from datetime import date, datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.desk import Desk
from bot.domain import cases as rules
from bot.domain.cases import CaseRefused, Status
from bot.domain.deadlines import ComputedDeadline, case_deadlines
from bot.domain.refs import subject_tag
from bot.services.cases.dates import received_on
from bot.services.cases.events import append, check_open
from bot.services.cases.lookups import FOLLOWUP_ROWS
from bot.services.cases.outgoing import letter_to_complainant, staff_locale, to_staff
from bot.services.cases.texts import both, format_date, kind_name, rule_label
from messages.render import t, th
from storage.models import Case, CaseEvent, Deadline, OutboxMessage
from storage.repo import cases as repo
from storage.unit_of_work import UnitOfWork

# --- the outcome ------------------------------------------------------------------------------


def _followups(desk: Desk, case: Case, sent_on: date, received: date) -> list[ComputedDeadline]:
    profile = desk.profile
    return case_deadlines(
        rules.followup_windows(profile, case.kind),
        case.kind,
        received,
        None,
        desk.calendar,
        roll_to_workday=profile.calendar.roll_to_workday,
        outcome_sent=sent_on,
    )


def next_step_text(desk: Desk, case: Case, windows: list[ComputedDeadline], loc: str) -> str:
    """Where to go next (per body), with the window's last day when the step has one."""
    steps = desk.profile.cases.next_steps
    step = next((s for kind, s in steps.items() if kind == case.kind), None)
    if step is None:
        return t("cases.next_none", loc)
    due = next((w.due for w in windows if w.rule == step.window), None)
    return t(
        f"cases.next_{step.route}",
        loc,
        clause=step.clause,
        due=format_date(due, loc) if due else "",
    )


def next_step_preview(desk: Desk, case: Case, loc: str) -> str:
    """The line the outcome letter would carry if sent today (shown beside the form)."""
    today = desk.clock.today()
    return next_step_text(desk, case, _followups(desk, case, today, today), loc)


async def send_outcome(
    desk: Desk, session: AsyncSession, case: Case, actor: str, text: str | None, now: datetime
) -> OutboxMessage | None:
    """The written outcome (it meets GGBZ §8.5.3/§8.6.4), where to go next, and the windows it
    opens (SGC §八1.7, §八2.6(4)): stored with their dates, so a filing inside one is known."""
    loc = case.locale
    assert case.id is not None
    sent_on = desk.clock.today()
    windows = _followups(desk, case, sent_on, sent_on)
    for w in windows:
        # The complainant's window, not ours to meet: stored closed, never alerted on.
        session.add(
            Deadline(
                case_id=case.id,
                rule_id=w.rule,
                clause=w.clause,
                unit=w.unit,
                count=w.count,
                start_on=sent_on,
                due_on=w.due,
                provisional=w.provisional,
                created_at=now,
                closed_at=now,
                closed_by=FOLLOWUP_ROWS,
            )
        )
    args = {
        "ref": case.ref,
        "kind": kind_name(case.kind, loc),
        "text": text or t("cases.outcome_no_text", loc),
        "next": next_step_text(desk, case, windows, loc),
    }
    plain, html = both("cases.outcome_letter", loc, **args)
    message = await letter_to_complainant(
        desk,
        session,
        case,
        key=f"case:{case.ref}:outcome",
        subject=t("cases.outcome_subject", loc, tag=subject_tag(case.ref), kind=args["kind"]),
        text=plain,
        text_html=html,
        now=now,
    )
    await append(
        session,
        case,
        actor=actor,
        type="outcome_sent",
        now=now,
        data={
            "text": text,
            "channel": message.channel if message else None,
            "windows": [w.to_dict() for w in windows],
        },
    )
    return message


# --- acceptance (SGC §八1.4) --------------------------------------------------------------------


async def decide_acceptance(
    desk: Desk, uow: UnitOfWork, case: Case, actor: str, *, accepted: bool, reason: str = ""
) -> CaseEvent:
    """The technical committee's decision whether the appeal is accepted, told to the appellant.

    Not accepted, the case closes and every deadline with it."""
    event, _ = await acceptance_told(desk, uow, case, actor, accepted=accepted, reason=reason)
    return event


ACCEPTANCE_DECIDED = "acceptance_decided"


async def acceptance_told(
    desk: Desk,
    uow: UnitOfWork,
    case: Case,
    actor: str,
    *,
    accepted: bool,
    reason: str = "",
    grounds: str | None = None,
) -> tuple[CaseEvent, OutboxMessage | None]:
    """decide_acceptance, with the notice it queued (None: no channel); taken once per case.
    `grounds`: why not accepted, as the console's refusal names it (recorded on the event)."""
    clause = desk.profile.cases.acceptance_clause
    check_open(case)
    if case.kind != "appeal" or clause is None:
        raise CaseRefused("cases.acceptance_not_applicable", ref=case.ref)
    session = uow.session
    now = desk.clock.now()
    assert case.id is not None
    if any(e.type == ACCEPTANCE_DECIDED for e in await repo.events_of(session, case.id)):
        raise CaseRefused("console.decision_taken", ref=case.ref)
    if accepted:
        case.status = Status.ACCEPTED
    else:
        await repo.close_deadlines(session, case.id, None, "not_accepted", now)
        case.status, case.closed_at = Status.CLOSED, now
    session.add(case)
    data: dict[str, object] = {"accepted": accepted, "reason": reason}
    if grounds:
        data["grounds"] = grounds
    event = await append(session, case, actor=actor, type=ACCEPTANCE_DECIDED, now=now, data=data)
    loc = case.locale
    key = "cases.accepted_notice" if accepted else "cases.not_accepted_notice"
    plain, html = both(key, loc, ref=case.ref, clause=clause, reason=reason or "—")
    message = await letter_to_complainant(
        desk,
        session,
        case,
        key=f"case:{case.ref}:acceptance",
        subject=t("cases.reply_subject", loc, tag=subject_tag(case.ref)),
        text=plain,
        text_html=html,
        now=now,
    )
    return event, message


# --- extensions -------------------------------------------------------------------------------


async def extend_deadline(
    desk: Desk,
    uow: UnitOfWork,
    case: Case,
    actor: str,
    rule_id: str,
    new_due: date,
    *,
    approved_by: str,
    reason: str = "",
) -> Deadline:
    """Move an open deadline later with the approval its clause requires, recorded with who
    approved it (BQC §19.2, SGC §八1.7, §八2.6(5))."""
    check_open(case)
    session = uow.session
    assert case.id is not None
    row = next((d for d in await repo.deadlines_of(session, case.id) if d.rule_id == rule_id), None)
    if row is None or row.closed_at is not None:
        raise CaseRefused("cases.extension_no_deadline", ref=case.ref, rule=rule_id)
    role = rules.check_extension(desk.profile, rule_id, case.ref, row.due_on, new_due, approved_by)
    now = desk.clock.now()
    before = row.due_on
    row.due_on = new_due
    session.add(row)
    await append(
        session,
        case,
        actor=actor,
        type="deadline_extended",
        now=now,
        data={
            "rule": rule_id,
            "from": before,
            "to": new_due,
            "approved_by": approved_by.strip(),
            "approver_role": role,
            "reason": reason,
        },
    )
    return row


# --- complaints about a certified organisation ------------------------------------------------


def _organisation_clause(desk: Desk, case: Case, clause: str | None) -> str:
    if case.kind != "complaint" or rules.complaint_about(case.concerns) != "organisation":
        raise CaseRefused("cases.not_about_organisation", ref=case.ref)
    if clause is None:
        raise CaseRefused("cases.step_not_in_rules", ref=case.ref)
    return clause


async def inform_organisation(
    desk: Desk, uow: UnitOfWork, case: Case, actor: str, *, how: str, on: date | None = None
) -> CaseEvent:
    """The certified organisation told of the complaint and asked to cooperate (GGBZ §8.5.2,
    SGC §八2.3); the complainant's identity is never part of it (GGBZ §8.2)."""
    check_open(case)
    clause = _organisation_clause(desk, case, desk.profile.cases.organisation_informed_clause)
    return await append(
        uow.session,
        case,
        actor=actor,
        type="organisation_informed",
        now=desk.clock.now(),
        data={"how": how, "on": on or desk.clock.today(), "clause": clause},
    )


async def decide_publicity(
    desk: Desk,
    uow: UnitOfWork,
    case: Case,
    actor: str,
    *,
    public: bool,
    extent: str = "",
    agreed_with_organisation: bool,
    agreed_with_complainant: bool,
) -> CaseEvent:
    """Whether (and how far) the matter is made public, decided jointly with the organisation
    and the complainant (GGBZ §8.5.4, SGC §八2.6(8)); publishing needs both to agree."""
    check_open(case)
    clause = _organisation_clause(desk, case, desk.profile.cases.publicity_clause)
    if public and not (agreed_with_organisation and agreed_with_complainant):
        raise CaseRefused("cases.publicity_not_agreed", ref=case.ref, clause=clause)
    return await append(
        uow.session,
        case,
        actor=actor,
        type="publicity_decided",
        now=desk.clock.now(),
        data={
            "public": public,
            "extent": extent,
            "agreed_with_organisation": agreed_with_organisation,
            "agreed_with_complainant": agreed_with_complainant,
            "clause": clause,
        },
    )


# --- serious complaints (SGC §八2.4) ------------------------------------------------------------


async def mark_serious(
    desk: Desk, uow: UnitOfWork, case: Case, actor: str, *, reason: str
) -> list[Deadline]:
    """A serious complaint: staff are told at once to review suspending the certificate's use,
    and the report to the accreditation body gets its deadline (SGC §八2.4(1))."""
    check_open(case)
    clause = desk.profile.cases.serious_clause
    if case.kind != "complaint" or clause is None:
        raise CaseRefused("cases.serious_not_applicable", ref=case.ref)
    session = uow.session
    now = desk.clock.now()
    assert case.id is not None
    received = await received_on(uow, case)
    have = {d.rule_id for d in await repo.deadlines_of(session, case.id)}
    computed = case_deadlines(
        desk.profile.rules.values(),
        "complaint",
        received,
        None,
        desk.calendar,
        roll_to_workday=desk.profile.calendar.roll_to_workday,
        serious=True,
    )
    serious = [
        d
        for d in computed
        if desk.profile.rules[d.rule].applies_to == "serious_complaint" and d.rule not in have
    ]
    rows = [
        Deadline(
            case_id=case.id,
            rule_id=d.rule,
            clause=d.clause,
            unit=d.unit,
            count=d.count,
            start_on=received,
            due_on=d.due,
            provisional=d.provisional,
            created_at=now,
        )
        for d in serious
    ]
    session.add_all(rows)
    await session.flush()
    event = await append(
        session,
        case,
        actor=actor,
        type="marked_serious",
        now=now,
        data={"reason": reason, "deadlines": [d.to_dict() for d in serious]},
    )
    loc = staff_locale(desk)
    lines = [
        th("cases.staff_serious", loc, ref=case.ref, reason=reason, clause=clause),
        *(
            th(
                "cases.staff_serious_due",
                loc,
                rule=rule_label(d.rule, loc),
                due=format_date(d.due, loc),
            )
            for d in serious
        ),
    ]
    await to_staff(
        desk, session, case, f"case:{case.ref}:staff:event:{event.seq}", "\n".join(lines)
    )
    return rows


__all__ = [
    "ACCEPTANCE_DECIDED",
    "acceptance_told",
    "decide_acceptance",
    "decide_publicity",
    "extend_deadline",
    "inform_organisation",
    "mark_serious",
    "next_step_preview",
    "next_step_text",
    "send_outcome",
]
