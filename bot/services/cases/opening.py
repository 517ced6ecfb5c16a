"""Opening a case: the row, its first event, its deadlines, the acknowledgement, the staff alert."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.desk import Desk
from bot.domain import cases as rules
from bot.domain.cases import Complainant, Status
from bot.domain.deadlines import ComputedDeadline, case_deadlines
from bot.domain.policy import CASE_KINDS, Profile
from bot.domain.refs import subject_tag, unique_ref
from bot.services.cases.attachments import Attachment
from bot.services.cases.events import Work, append, session_of
from bot.services.cases.lookups import followed_window
from bot.services.cases.outgoing import (
    email_to_complainant,
    staff_locale,
    telegram_to_complainant,
    to_staff,
)
from bot.services.cases.texts import Ack, Dates, ack_body, kind_name, new_case_alert
from messages.render import normalise_locale, t
from storage.models import Case, Channel, Deadline, OutboxMessage
from storage.repo import cases as repo


@dataclass
class OpenedCase:
    case: Case
    deadlines: list[Deadline]
    messages: list[OutboxMessage] = field(default_factory=list)

    @property
    def ref(self) -> str:
        return self.case.ref


async def open_case(
    desk: Desk,
    uow: Work,
    *,
    kind: str,
    channel: Channel | str,
    complainant: Complainant,
    subject: str | None,
    description: str,
    attachments: Sequence[Attachment] = (),
    decided_on: date | None = None,
    notified_on: date | None = None,
    decided_by: str | None = None,
    audit_team: Sequence[str] = (),
    concerns: str | None = None,
    concerns_certificate_no: str | None = None,
    source_message_id: str | None = None,
    received_on: date | None = None,
    acknowledge_by_email: bool = True,
) -> OpenedCase:
    """Record a case, its first event and every deadline the profile defines for the kind, and
    queue the written acknowledgement (Telegram and/or e-mail) and the staff alert.

    `decided_on` is the day the decision appealed was made, `notified_on` the day the appellant
    received its notice: each body's filing window counts from the one its clause names (GGBZ
    §8.6.1 made; BQC §19.1, SGC §八1.3(4) received). A window whose date is not given yet is
    "not yet checked" until staff give it (`give_dates`). A case filed inside a window our
    earlier outcome opened (SGC §八1.7, §八2.6(4)) is recognised as that further step.

    `acknowledge_by_email=False` records the case without the automatic e-mail answer (the intake
    passes it when a sender is over AUTO_REPLIES_PER_SENDER_PER_HOUR).
    """
    if kind not in CASE_KINDS:
        raise ValueError(f"unknown case kind {kind!r}")
    session = session_of(uow)
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
        notified=notified_on,
        about=rules.complaint_about(concerns) if kind == "complaint" else None,
    )
    windows = rules.filing_windows(profile, computed)
    unchecked = [r.id for r in rules.unchecked_windows(profile, kind, computed)]
    contact_id = None
    if complainant.telegram_user_id is not None:
        contact = await repo.contact_for_telegram(
            session, complainant.telegram_user_id, complainant.telegram_chat_id, locale, now
        )
        contact_id = contact.id
    follows = await followed_window(session, complainant, contact_id, received)
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
        # Inside a window our outcome opened, the earlier case's window is the one that counts.
        "out_of_time": follows is None and rules.out_of_time(received, windows),
        "incomplete": rules.is_incomplete(profile, kind, complainant),
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
    for mid in thread:  # the complainant's letter: a reply to it finds the case too
        await repo.add_message_id(session, case, mid)

    dates = Dates(received, decided_on, notified_on)
    deadlines = [_deadline_row(profile, case.id, d, dates, now) for d in computed]
    for row, d in zip(deadlines, computed, strict=True):
        if rules.is_filing_window(profile, d.rule):
            # A filing window is met (or missed) by the letter itself: nothing left to track.
            row.closed_at, row.closed_by = now, "received"
        session.add(row)
    await session.flush()

    await append(
        session,
        case,
        actor=_complainant_actor(channel, complainant),
        type="received",
        now=now,
        data={
            **filed,
            "received_on": received,
            "notified_on": notified_on,
            "windows_unchecked": unchecked,
            "follows": follows.to_dict() if follows else None,
            "attachments": [a.to_dict() for a in attachments],
            "complainant": complainant.to_dict(),
            "audit_team": list(audit_team),
            "source_message_id": thread[0] if thread else None,
            "deadlines": [d.to_dict() for d in computed],
        },
    )
    opened = OpenedCase(case, deadlines)
    ack = Ack(computed, windows, unchecked, dates, follows)
    opened.messages.extend(
        await _acknowledge(desk, session, case, ack, now, email=acknowledge_by_email)
    )
    text, buttons = new_case_alert(case, deadlines, staff_locale(desk), unchecked, follows)
    key, about = f"case:{case.ref}:staff:new", case.complainant_email  # a flood: one alert
    staff = await to_staff(desk, session, case, key, text, buttons, about=about)
    if staff is not None:
        opened.messages.append(staff)
    return opened


def _deadline_row(
    profile: Profile, case_id: int, d: ComputedDeadline, dates: Dates, now: datetime
) -> Deadline:
    return Deadline(
        case_id=case_id,
        rule_id=d.rule,
        clause=d.clause,
        unit=d.unit,
        count=d.count,
        start_on=rules.deadline_start(
            profile, d.rule, dates.received, dates.decided, dates.notified
        ),
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


async def _acknowledge(
    desk: Desk,
    session: AsyncSession,
    case: Case,
    ack: Ack,
    now: datetime,
    *,
    email: bool = True,
) -> list[OutboxMessage]:
    """The written acknowledgement on each channel the complainant can be reached on."""
    sent: list[OutboxMessage] = []
    message_id = None

    def body(as_html: bool, via: Channel) -> str:
        return ack_body(desk, case, ack, as_html=as_html, via=via)

    if case.complainant_chat_id is not None:
        sent.append(
            await telegram_to_complainant(
                session, case, f"case:{case.ref}:ack:telegram", body(True, Channel.TELEGRAM), now
            )
        )
    if case.complainant_email and email:
        loc = case.locale
        row = await email_to_complainant(
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
    await append(
        session,
        case,
        actor="system",
        type="acknowledged",
        now=now,
        data={"channels": [row.channel for row in sent], "message_id": message_id},
    )
    return sent
