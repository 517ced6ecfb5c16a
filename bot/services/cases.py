"""The case service: appeals, complaints and disputes from Telegram and e-mail alike.

Entry points other modules call (keep these signatures stable):

- `open_case(desk, session, *, kind, channel, complainant, subject, description,
  attachments=(), decided_on=None, decided_by=None, audit_team=(), concerns=None,
  concerns_certificate_no=None, source_message_id=None, received_on=None) -> OpenedCase`
  stores the case, its first event and every deadline the profile defines for the kind, and
  queues the written acknowledgement (Telegram and/or e-mail) and the staff alert.
- `add_information(desk, session, case, actor, text, attachments=(), source_message_id=None)`:
  a complainant's further letter or message (the e-mail intake calls it for replies).
- `provide_identity`, `record_milestone`, `assign`, `reply`, `withdraw`: the rest of the life.
  `assign(..., staff_names=None)` (names unknown) is refused on a case that records who decided
  or audited; `record_milestone` refuses a milestone not in `milestones_for(profile, kind)`.
- `keep_attachment(desk, session, data, name)`: type-check, size-check and store an uploaded file
  (`check_upload_size(desk, size)` alone, before downloading).
- Rules the handlers ask: `identity_required(profile, kind)`, `milestones_for(profile, kind)`;
  for staff eyes only: `complainant_identity(case, events)`.
- Rendering: `deadline_lines`, `format_date`, `kind_name`, `rule_label`, `cut`, and
  `th_with_lines(key, locale, {placeholder: html_lines}, **args)` for texts holding lists.
- `new_message_id(desk, ref)`: a Message-ID for a letter about the case, `<ref.rnd@MAIL_DOMAIN>`.
- `verify(session, ref=None) -> list[Problem]`: recompute the hash chains.
- Lookups: `storage.repo.cases.find_case_by_ref` and `find_case_by_message_id`.

Every function only adds to the caller's session: the caller commits, so the case, its events,
its deadlines and its outbox messages are written together or not at all. Refusals raise
`CaseRefused`, whose text comes from the catalog in the reader's language.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from html import escape
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.desk import Desk
from bot.domain import files
from bot.domain.deadlines import ComputedDeadline, case_deadlines
from bot.domain.history import Break, event_hash, first_break, json_ready
from bot.domain.policy import CASE_KINDS, MILESTONES, Profile
from bot.domain.refs import subject_tag, unique_ref
from bot.outbox.to_staff import queue_for_staff
from messages.render import catalog, normalise_locale, rule_label, t, th
from storage.files import store_file
from storage.models import Case, CaseEvent, Channel, Deadline, OutboxMessage
from storage.repo import cases as repo
from storage.repo.outbox import enqueue

WITHDRAWN = "withdrawn"
ALL_MILESTONES: frozenset[str] = MILESTONES | {WITHDRAWN}
# The milestone after which nothing is left to do on a case of each kind.
FINAL_MILESTONE = {"appeal": "decision_made", "complaint": "answer_sent", "dispute": "answer_sent"}
# Staff milestones in the order they happen on a case.
MILESTONE_ORDER = ("work_group_formed", "investigation_done", "decision_made", "answer_sent")


class Status:
    RECEIVED = "received"
    IN_PROGRESS = "in_progress"
    CLOSED = "closed"
    WITHDRAWN = "withdrawn"


class CaseRefused(Exception):
    """An action the rules refuse; `text(locale)` says why, from the catalog."""

    def __init__(self, key: str, **args: object) -> None:
        super().__init__(key)
        self.key, self.args_ = key, args

    def text(self, locale: str | None) -> str:
        return t(self.key, locale, **self.args_)

    def html(self, locale: str | None) -> str:
        return th(self.key, locale, **self.args_)


@dataclass(frozen=True)
class Complainant:
    """Who wrote: any of these may be missing (an anonymous letter has none)."""

    name: str | None = None
    email: str | None = None
    phone: str | None = None
    telegram_user_id: int | None = None
    telegram_chat_id: int | None = None
    locale: str = "zh_CN"

    @property
    def identified(self) -> bool:
        return bool(self.name) and bool(self.email or self.phone)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "email": self.email,
            "phone": self.phone,
            "telegram_user_id": self.telegram_user_id,
        }


@dataclass(frozen=True)
class Attachment:
    stored_file_id: int
    name: str
    content_type: str
    size: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class OpenedCase:
    case: Case
    deadlines: list[Deadline]
    messages: list[OutboxMessage] = field(default_factory=list)

    @property
    def ref(self) -> str:
        return self.case.ref


@dataclass(frozen=True)
class Problem:
    """A case whose history does not verify, naming the first broken event."""

    ref: str
    seq: int
    event_id: int | None
    reason: str

    def __str__(self) -> str:
        what = {
            "hash": "content does not match its hash (altered)",
            "prev_hash": "does not link to the event before it (inserted, removed or altered)",
            "seq": "sequence gap (an event is missing or out of order)",
            "missing": "the case has no history at all (events removed)",
        }[self.reason]
        return f"{self.ref}: event #{self.seq} (id {self.event_id}): {what}"


# --- opening --------------------------------------------------------------------------------


async def open_case(
    desk: Desk,
    session: AsyncSession,
    *,
    kind: str,
    channel: Channel | str,
    complainant: Complainant,
    subject: str | None,
    description: str,
    attachments: Sequence[Attachment] = (),
    decided_on: date | None = None,
    decided_by: str | None = None,
    audit_team: Sequence[str] = (),
    concerns: str | None = None,
    concerns_certificate_no: str | None = None,
    source_message_id: str | None = None,
    received_on: date | None = None,
    acknowledge_by_email: bool = True,
) -> OpenedCase:
    """Record a case and everything it starts; see the module docstring.

    `acknowledge_by_email=False` records the case without the automatic e-mail answer (the intake
    passes it when a sender is over AUTO_REPLIES_PER_SENDER_PER_HOUR).
    """
    if kind not in CASE_KINDS:
        raise ValueError(f"unknown case kind {kind!r}")
    channel = Channel(channel)
    profile = desk.profile
    now = desk.clock.now()
    received = received_on or desk.clock.today()
    locale = normalise_locale(complainant.locale)
    computed = case_deadlines(
        profile.rules.values(),
        kind,
        received,
        decided_on,
        desk.calendar,
        roll_to_workday=profile.calendar.roll_to_workday,
    )
    windows = [d for d in computed if _is_filing_window(profile, d.rule)]
    out_of_time = any(received > w.due for w in windows)
    incomplete = identity_required(profile, kind) and not complainant.identified
    contact_id = None
    if complainant.telegram_user_id is not None:
        contact = await repo.contact_for_telegram(
            session, complainant.telegram_user_id, complainant.telegram_chat_id, locale, now
        )
        contact_id = contact.id
    thread = [m for m in [repo.normalise_message_id(source_message_id)] if m]
    ref = await unique_ref(
        desk.settings.case_ref_prefix, received.year, lambda r: repo.ref_exists(session, r)
    )
    # What the case row and its first event both record, written once.
    filed: dict[str, Any] = {
        "kind": kind,
        "channel": channel.value,
        "subject": subject,
        "description": description,
        "concerns": concerns,
        "concerns_certificate_no": concerns_certificate_no,
        "decided_on": decided_on,
        "decided_by": decided_by,
        "out_of_time": out_of_time,
        "incomplete": incomplete,
    }
    case = Case(
        **filed,
        ref=ref,
        status=Status.RECEIVED,
        contact_id=contact_id,
        complainant_name=complainant.name,
        complainant_email=complainant.email,
        complainant_chat_id=complainant.telegram_chat_id,
        locale=locale,
        audit_team=list(audit_team) or None,
        thread_message_ids=thread or None,
        created_at=now,
    )
    session.add(case)
    await session.flush()
    assert case.id is not None

    deadlines = [_deadline_row(profile, case.id, d, received, decided_on, now) for d in computed]
    for row, d in zip(deadlines, computed, strict=True):
        if _is_filing_window(profile, d.rule):
            # A filing window is met (or missed) by the letter itself: nothing left to track.
            row.closed_at, row.closed_by = now, "received"
        session.add(row)
    await session.flush()

    await _append(
        session,
        case,
        actor=_complainant_actor(channel, complainant),
        type="received",
        now=now,
        data={
            **filed,
            "received_on": received,
            "attachments": [a.to_dict() for a in attachments],
            "complainant": complainant.to_dict(),
            "audit_team": list(audit_team),
            "source_message_id": thread[0] if thread else None,
            "deadlines": [d.to_dict() for d in computed],
        },
    )
    opened = OpenedCase(case, deadlines)
    opened.messages.extend(
        await _acknowledge(
            desk, session, case, computed, windows, received, now, email=acknowledge_by_email
        )
    )
    staff = await _alert_staff_new(desk, session, case, deadlines, now)
    if staff is not None:
        opened.messages.append(staff)
    return opened


def identity_required(profile: Profile, kind: str) -> bool:
    """Whether an anonymous case of `kind` is incomplete (BQC, SGC: complaints need a name)."""
    return kind == "complaint" and not profile.cases.anonymous_complaints_accepted


def milestones_for(profile: Profile, kind: str) -> list[str]:
    """The milestones of a case of `kind`: those its rules are closed by, and its final one."""
    relevant = {r.closed_by for r in profile.case_rules(kind) if r.closed_by}
    relevant.add(FINAL_MILESTONE[kind])
    return [m for m in MILESTONE_ORDER if m in relevant]


def _is_filing_window(profile: Profile, rule_id: str) -> bool:
    rule = profile.rules.get(rule_id)
    return rule is not None and rule.from_ == "decided" and rule.closed_by is None


def _deadline_row(
    profile: Profile,
    case_id: int,
    d: ComputedDeadline,
    received: date,
    decided: date | None,
    now: datetime,
) -> Deadline:
    rule = profile.rules.get(d.rule)
    start = decided if rule is not None and rule.from_ == "decided" and decided else received
    return Deadline(
        case_id=case_id,
        rule_id=d.rule,
        clause=d.clause,
        unit=d.unit,
        count=d.count,
        start_on=start,
        due_on=d.due,
        provisional=d.provisional,
        created_at=now,
    )


def _complainant_actor(channel: Channel, who: Complainant) -> str:
    if channel is Channel.TELEGRAM and who.telegram_user_id is not None:
        return f"complainant:telegram:{who.telegram_user_id}"
    if who.email:
        return f"complainant:email:{who.email}"
    return "complainant"


# --- the written acknowledgement ---------------------------------------------------------------


def format_date(d: date, locale: str | None) -> str:
    if normalise_locale(locale) == "zh_CN":
        return f"{d.year}年{d.month}月{d.day}日"
    return d.isoformat()


def kind_name(kind: str, locale: str | None) -> str:
    return t(f"cases.kind_{kind}", locale)


def deadline_lines(
    deadlines: Iterable[ComputedDeadline | Deadline], locale: str | None, *, as_html: bool
) -> list[str]:
    """One line per deadline: rule name, due date, clause; provisional dates marked."""
    render = th if as_html else t
    lines = []
    for d in deadlines:
        rule = d.rule if isinstance(d, ComputedDeadline) else d.rule_id
        due = d.due if isinstance(d, ComputedDeadline) else d.due_on
        line = render(
            "cases.deadline_line",
            locale,
            rule=rule_label(rule, locale),
            due=format_date(due, locale),
            clause=d.clause,
        )
        if d.provisional:
            line += render("cases.provisional_mark", locale)
        lines.append(line)
    return lines


def th_with_lines(
    key: str, locale: str | None, /, lines: Mapping[str, Sequence[str]], **args: object
) -> str:
    """`th` where some placeholders take lines that are HTML already (escaped when rendered),
    one per line; the other arguments are escaped as usual. Filled in one pass, so user text
    can never be taken for a placeholder."""
    safe = {name: escape(str(value), quote=False) for name, value in args.items()}
    blocks = {name: "\n".join(block) for name, block in lines.items()}
    return catalog()[key][normalise_locale(locale)].format(**safe, **blocks)


def complainant_identity(case: Case, events: Iterable[CaseEvent]) -> list[str]:
    """Name, e-mail and phone as last given (on receipt or later): for staff eyes only."""
    known: dict[str, Any] = {}
    for event in events:
        data = event.data or {}
        given = data.get("complainant") if event.type == "received" else data
        if event.type in ("received", "identity_provided") and given:
            known |= {k: given[k] for k in ("name", "email", "phone") if given.get(k)}
    known |= {
        k: v for k, v in (("name", case.complainant_name), ("email", case.complainant_email)) if v
    }
    return [str(known[k]) for k in ("name", "email", "phone") if known.get(k)]


def _ack_body(
    desk: Desk,
    case: Case,
    tracked: Sequence[ComputedDeadline],
    windows: Sequence[ComputedDeadline],
    received: date,
    *,
    as_html: bool,
    via: Channel,
) -> str:
    render = th if as_html else t
    loc = case.locale
    profile = desk.profile
    parts = [
        render(
            "cases.ack_intro",
            loc,
            kind=kind_name(case.kind, loc),
            received=format_date(received, loc),
            ref=case.ref,
        ),
        render(f"cases.ack_next_{case.kind}", loc),
    ]
    if tracked:
        parts.append(
            "\n".join(
                [render("cases.ack_deadlines", loc), *deadline_lines(tracked, loc, as_html=as_html)]
            )
        )
    else:
        parts.append(render("cases.ack_no_deadlines", loc))
    if case.out_of_time and windows and case.decided_on is not None:
        window = windows[0]
        parts.append(
            render(
                "cases.ack_out_of_time",
                loc,
                decided=format_date(case.decided_on, loc),
                window_end=format_date(window.due, loc),
                clause=window.clause,
            )
        )
    if case.kind == "appeal":
        parts.append(
            render("cases.ack_formalities", loc, formalities=profile.cases.appeal_formalities)
        )
    if case.incomplete:
        parts.append(
            render("cases.ack_identity_needed", loc, clause=profile.cases.anonymous_clause or "")
        )
    footer = "cases.ack_footer_email" if via is Channel.EMAIL else "cases.ack_footer_telegram"
    parts.append(render(footer, loc, tag=subject_tag(case.ref)))
    return "\n\n".join(parts)


def _both(key: str, locale: str, **args: object) -> tuple[str, str]:
    """A catalog text as plain text (e-mail) and as HTML (arguments escaped)."""
    return t(key, locale, **args), th(key, locale, **args)


def _email_html(text_html: str) -> str:
    body = text_html.replace("\n", "<br>\n")
    return f"<!DOCTYPE html><html><body>{body}</body></html>"


def new_message_id(desk: Desk, ref: str) -> str:
    return f"<{ref.lower()}.{secrets.token_hex(8)}@{desk.settings.mail_domain}>"


async def _acknowledge(
    desk: Desk,
    session: AsyncSession,
    case: Case,
    computed: Sequence[ComputedDeadline],
    windows: Sequence[ComputedDeadline],
    received: date,
    now: datetime,
    *,
    email: bool = True,
) -> list[OutboxMessage]:
    tracked = [d for d in computed if d not in windows]
    sent: list[OutboxMessage] = []
    message_id = None

    def body(as_html: bool, via: Channel) -> str:
        return _ack_body(desk, case, tracked, windows, received, as_html=as_html, via=via)

    if case.complainant_chat_id is not None:
        sent.append(
            await _telegram_to_complainant(
                session, case, f"case:{case.ref}:ack:telegram", body(True, Channel.TELEGRAM), now
            )
        )
    if case.complainant_email and email:
        loc = case.locale
        row = await _email_to_complainant(
            desk,
            session,
            case,
            key=f"case:{case.ref}:ack:email",
            subject=t(
                "cases.ack_subject", loc, tag=subject_tag(case.ref), kind=kind_name(case.kind, loc)
            ),
            text=body(False, Channel.EMAIL),
            text_html=body(True, Channel.EMAIL),
            auto_reply=True,
            now=now,
        )
        message_id = row.email_message_id
        sent.append(row)
    await _append(
        session,
        case,
        actor="system",
        type="acknowledged",
        now=now,
        data={"channels": [row.channel for row in sent], "message_id": message_id},
    )
    return sent


async def _telegram_to_complainant(
    session: AsyncSession, case: Case, key: str, text_html: str, now: datetime
) -> OutboxMessage:
    assert case.complainant_chat_id is not None
    return await enqueue(
        session,
        channel=Channel.TELEGRAM,
        recipient=str(case.complainant_chat_id),
        payload={"text": text_html},
        idempotency_key=key,
        case_id=case.id,
        now=now,
    )


async def _email_to_complainant(
    desk: Desk,
    session: AsyncSession,
    case: Case,
    *,
    key: str,
    subject: str,
    text: str,
    text_html: str,
    auto_reply: bool,
    now: datetime,
    message_id: str | None = None,
) -> OutboxMessage:
    """A letter in the case's thread: answers the latest message of it, under a new Message-ID."""
    assert case.complainant_email is not None
    thread = list(case.thread_message_ids or [])
    message_id = message_id or new_message_id(desk, case.ref)
    row = await enqueue(
        session,
        channel=Channel.EMAIL,
        recipient=case.complainant_email,
        payload={
            "subject": subject,
            "text": text,
            "html": _email_html(text_html),
            "locale": case.locale,
            "in_reply_to": thread[-1] if thread else None,
            "references": thread,
            "auto_reply": auto_reply,
            "case_ref": case.ref,
            "message_id": message_id,
        },
        idempotency_key=key,
        case_id=case.id,
        now=now,
    )
    # Recorded before sending, so a reply or a bounce to it finds the case at once.
    row.email_message_id = message_id
    session.add(row)
    case.thread_message_ids = [*thread, message_id]
    session.add(case)
    return row


# --- staff alerts -----------------------------------------------------------------------------


def _staff_locale(desk: Desk) -> str:
    return desk.settings.default_locale


async def _to_staff(
    desk: Desk,
    session: AsyncSession,
    case: Case,
    key: str,
    text: str,
    now: datetime,
    buttons: list[list[dict[str, str]]] | None = None,
) -> OutboxMessage | None:
    return await queue_for_staff(
        desk, session, key=key, text=text, buttons=buttons, case_id=case.id
    )


def case_flags(case: Case, locale: str, *, as_html: bool = True) -> list[str]:
    render = th if as_html else t
    flags = []
    if case.out_of_time:
        flags.append(render("staff.flag_out_of_time", locale))
    if case.incomplete:
        flags.append(render("staff.flag_incomplete", locale))
    return flags


async def _alert_staff_new(
    desk: Desk, session: AsyncSession, case: Case, deadlines: Sequence[Deadline], now: datetime
) -> OutboxMessage | None:
    loc = _staff_locale(desk)
    open_ = [d for d in deadlines if d.closed_at is None]
    lines = [
        th(
            "staff.new_case",
            loc,
            kind=kind_name(case.kind, loc),
            ref=case.ref,
            channel=t(f"staff.channel_{case.channel}", loc),
        ),
        *case_flags(case, loc),
        *(deadline_lines(open_, loc, as_html=True) or [th("staff.no_deadlines", loc)]),
    ]
    buttons = [
        [{"text": t("staff.btn_assign_me", loc), "callback_data": f"staff:assign:{case.ref}"}],
        [{"text": t("staff.btn_show", loc), "callback_data": f"staff:show:{case.ref}"}],
    ]
    return await _to_staff(
        desk, session, case, f"case:{case.ref}:staff:new", "\n".join(lines), now, buttons
    )


# --- events -----------------------------------------------------------------------------------


async def _append(
    session: AsyncSession,
    case: Case,
    *,
    actor: str,
    type: str,
    now: datetime,
    data: dict[str, Any] | None = None,
) -> CaseEvent:
    """Append one hash-chained event; the case row is locked so `seq` cannot be taken twice."""
    assert case.id is not None
    await repo.lock_case(session, case.id)
    last = await repo.last_event(session, case.id)
    seq = 1 if last is None else last.seq + 1
    prev = None if last is None else last.hash
    clean = json_ready(data) if data is not None else None
    event = CaseEvent(
        case_id=case.id,
        seq=seq,
        at=now,
        actor=actor,
        type=type,
        data=clean,
        prev_hash=prev,
        hash="",
    )
    event.hash = event_hash(event)
    session.add(event)
    await session.flush()
    return event


def _check_open(case: Case) -> None:
    if case.closed_at is not None:
        raise CaseRefused("cases.refused_closed", ref=case.ref)


# --- the complainant's side -------------------------------------------------------------------


async def add_information(
    desk: Desk,
    session: AsyncSession,
    case: Case,
    actor: str,
    text: str,
    attachments: Sequence[Attachment] = (),
    source_message_id: str | None = None,
) -> CaseEvent:
    """A further letter or message from the complainant, recorded and shown to staff.

    A closed case still records it (nothing sent by a complainant is dropped); staff decide.
    """
    now = desk.clock.now()
    mid = repo.normalise_message_id(source_message_id)
    if mid and mid not in (case.thread_message_ids or []):
        case.thread_message_ids = [*(case.thread_message_ids or []), mid]
        session.add(case)
    event = await _append(
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
    loc = _staff_locale(desk)
    await _to_staff(
        desk,
        session,
        case,
        f"case:{case.ref}:staff:event:{event.seq}",
        th("staff.info_added", loc, ref=case.ref, files=len(attachments), text=cut(text)),
        now,
        [[{"text": t("staff.btn_show", loc), "callback_data": f"staff:show:{case.ref}"}]],
    )
    return event


async def provide_identity(
    desk: Desk,
    session: AsyncSession,
    case: Case,
    actor: str,
    *,
    name: str,
    email: str | None = None,
    phone: str | None = None,
) -> CaseEvent:
    """Name and contact given after the fact; completes an anonymous complaint."""
    now = desk.clock.now()
    case.complainant_name = name
    if email:
        case.complainant_email = email
    case.incomplete = case.incomplete and not (name and (email or phone))
    session.add(case)
    event = await _append(
        session,
        case,
        actor=actor,
        type="identity_provided",
        now=now,
        data={"name": name, "email": email, "phone": phone, "incomplete": case.incomplete},
    )
    loc = _staff_locale(desk)
    await _to_staff(
        desk,
        session,
        case,
        f"case:{case.ref}:staff:event:{event.seq}",
        th("staff.identity_provided", loc, ref=case.ref),
        now,
    )
    return event


async def withdraw(
    desk: Desk, session: AsyncSession, case: Case, actor: str, reason: str | None = None
) -> list[Deadline]:
    """The complainant withdraws: every deadline closes, staff are told, the user gets a note."""
    closed = await record_milestone(desk, session, case, actor, WITHDRAWN, note=reason)
    now = desk.clock.now()
    loc = case.locale
    text, text_html = _both("cases.withdrawn_notice", loc, ref=case.ref)
    if case.complainant_chat_id is not None:
        await _telegram_to_complainant(
            session, case, f"case:{case.ref}:withdrawn:telegram", text_html, now
        )
    elif case.complainant_email:
        await _email_to_complainant(
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
    session: AsyncSession,
    case: Case,
    actor: str,
    milestone: str,
    note: str | None = None,
) -> list[Deadline]:
    """Record a milestone; close the deadlines it meets (`closed_by` in the profile).

    `withdrawn` and the kind's final milestone close the case and every deadline still open.
    """
    if milestone not in ALL_MILESTONES:
        raise ValueError(f"unknown milestone {milestone!r}")
    _check_open(case)
    if milestone != WITHDRAWN and milestone not in milestones_for(desk.profile, case.kind):
        raise CaseRefused("staff.milestone_not_applicable", ref=case.ref)
    now = desk.clock.now()
    final = milestone == WITHDRAWN or FINAL_MILESTONE.get(case.kind) == milestone
    assert case.id is not None
    if final:
        closed = await repo.close_deadlines(session, case.id, None, milestone, now)
        case.closed_at = now
        case.status = Status.WITHDRAWN if milestone == WITHDRAWN else Status.CLOSED
        session.add(case)
    else:
        rules = [r.id for r in desk.profile.case_rules(case.kind) if r.closed_by == milestone]
        closed = await repo.close_deadlines(session, case.id, rules, milestone, now)
    await _append(
        session,
        case,
        actor=actor,
        type=milestone,
        now=now,
        data={"note": note, "closed": [d.rule_id for d in closed]},
    )
    return closed


def _same_person(a: str, b: str) -> bool:
    return a.strip().casefold().lstrip("@") == b.strip().casefold().lstrip("@")


def impartiality_conflict(case: Case, identities: Iterable[str]) -> str | None:
    """Why these staff identities may not handle the case, as a catalog key; None if they may.

    GGBZ §8.6.2 / §8.3, SGC §八: nobody involved in the audit or the decision under appeal.
    """
    ids = [i for i in identities if i and i.strip()]
    if case.decided_by and any(_same_person(i, case.decided_by) for i in ids):
        return "staff.assign_refused_decider"
    if any(_same_person(i, member) for i in ids for member in case.audit_team or []):
        return "staff.assign_refused_auditor"
    return None


async def assign(
    desk: Desk,
    session: AsyncSession,
    case: Case,
    actor: str,
    staff_id: str,
    staff_names: Sequence[str] | None = (),
) -> CaseEvent:
    """Assign a staff member; refused (CaseRefused) to whoever took or audited the decision.

    `staff_names=None`: their names are not known, so a case that records who decided or audited
    is refused rather than assigned unchecked.
    """
    _check_open(case)
    if staff_names is None:
        if case.decided_by or case.audit_team:
            raise CaseRefused("staff.assign_refused_unverified", ref=case.ref, who=staff_id)
        staff_names = ()
    conflict = impartiality_conflict(case, [staff_id, *staff_names])
    if conflict is not None:
        raise CaseRefused(conflict, ref=case.ref, who=staff_names[0] if staff_names else staff_id)
    now = desk.clock.now()
    case.assignee = staff_id
    if case.status == Status.RECEIVED:
        case.status = Status.IN_PROGRESS
    session.add(case)
    return await _append(
        session,
        case,
        actor=actor,
        type="assigned",
        now=now,
        data={"assignee": staff_id, "names": list(staff_names)},
    )


async def reply(
    desk: Desk, session: AsyncSession, case: Case, actor: str, text: str
) -> OutboxMessage:
    """A staff answer to the complainant, on the channel the case came from, via the outbox."""
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
    event = await _append(
        session,
        case,
        actor=actor,
        type="reply_sent",
        now=now,
        data={"text": text, "channel": channel.value, "message_id": message_id},
    )
    key = f"case:{case.ref}:event:{event.seq}:{channel.value}"
    if channel is Channel.TELEGRAM:
        return await _telegram_to_complainant(
            session, case, key, th("cases.reply_telegram", loc, ref=case.ref, text=text), now
        )
    plain, text_html = _both("cases.reply_email", loc, ref=case.ref, text=text)
    return await _email_to_complainant(
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


# --- files ------------------------------------------------------------------------------------


def check_upload_size(desk: Desk, size: int | None) -> None:
    """CaseRefused when a file is over MAX_UPLOAD_BYTES (a size not known yet passes)."""
    limit = desk.settings.max_upload_bytes
    if size is not None and size > limit:
        raise CaseRefused("cases.file_too_big", limit=f"{limit / 1_000_000:g}")


async def keep_attachment(
    desk: Desk, session: AsyncSession, data: bytes, name: str | None
) -> Attachment:
    """Check and store one file (same checks as application documents); CaseRefused if not."""
    check_upload_size(desk, len(data))
    content_type = files.sniff_type(data)
    if content_type is None:
        raise CaseRefused("cases.file_type_refused")
    sha, path = await store_file(desk.data_dir, data)
    row = await repo.stored_file(
        session,
        sha256=sha,
        size=len(data),
        content_type=content_type,
        path=path,
        now=desk.clock.now(),
    )
    assert row.id is not None
    return Attachment(row.id, files.sanitise_filename(name), content_type, len(data), sha)


# --- what users type ----------------------------------------------------------------------------

_DATE = re.compile(r"^\s*(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?\s*$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+?[\d\s()-]{7,24}$")


def parse_date(text: str) -> date | None:
    """A typed date: `2026-08-01`, `2026/8/1`, `2026.8.1` or `2026年8月1日`; None if not one."""
    match = _DATE.match(text)
    if not match:
        return None
    try:
        return date(*(int(g) for g in match.groups()))
    except ValueError:
        return None


def parse_contact(text: str) -> tuple[str | None, str | None] | None:
    """(email, phone) from a typed contact, or None when it is neither."""
    value = text.strip()
    if _EMAIL.match(value):
        return value, None
    if _PHONE.match(value) and sum(c.isdigit() for c in value) >= 7:
        return None, value
    return None


# --- verification -----------------------------------------------------------------------------


async def verify(session: AsyncSession, ref: str | None = None) -> list[Problem]:
    """Recompute every case's chain (or one case's); one Problem per broken case."""
    if ref is not None:
        case = await repo.find_case_by_ref(session, ref)
        if case is None:
            raise LookupError(f"no case {ref}")
        targets = [(case.id, case.ref)]
    else:
        targets = list(await repo.all_case_ids(session))
    problems = []
    for case_id, case_ref in targets:
        assert case_id is not None
        events = await repo.events_of(session, case_id)
        if not events:  # every case is opened with its "received" event
            problems.append(Problem(case_ref, 1, None, "missing"))
            continue
        broken: Break | None = first_break(events)
        if broken is not None:
            problems.append(Problem(case_ref, broken.seq, broken.event_id, broken.reason))
    return problems


def cut(text: str, limit: int = 300) -> str:
    """User text shortened for a message; cut before escaping, so an entity is never split."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


# Re-exported for the e-mail intake and the handlers.
find_case_by_ref = repo.find_case_by_ref
find_case_by_message_id = repo.find_case_by_message_id
__all__ = [
    "ALL_MILESTONES",
    "Attachment",
    "CaseRefused",
    "Complainant",
    "OpenedCase",
    "Problem",
    "Status",
    "add_information",
    "assign",
    "find_case_by_message_id",
    "find_case_by_ref",
    "keep_attachment",
    "open_case",
    "parse_contact",
    "parse_date",
    "provide_identity",
    "record_milestone",
    "reply",
    "verify",
    "withdraw",
]
