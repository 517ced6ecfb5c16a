"""Cases opened and letters joined to cases many at a time (the e-mail intake's batches).

What `open_case` and `add_information` write for one case, for a batch, set-based: the case
rows in one multi-row insert (their ids returned), every first event, head, deadline, Message-ID
and outbox row built in memory and written complete — nothing is read back. Deadlines are
computed once per kind and receipt day. The caller (bot.services.inbound_mail.batch) runs this
in a savepoint, and acts on each letter alone when the batch fails.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, ClassVar

from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.delivery.compose import text_to_html
from bot.delivery.messages import Letter, encode
from bot.desk import Desk
from bot.domain import cases as rules
from bot.domain.cases import Complainant, Status
from bot.domain.deadlines import ComputedDeadline, case_deadlines
from bot.domain.history import CASE_FIELDS
from bot.domain.refs import MAX_ATTEMPTS, RefExhausted, random_ref, subject_tag
from bot.outbox.messages import actions
from bot.outbox.staff_batch import Notice
from bot.services.cases.attachments import Attachment
from bot.services.cases.chain import Chains
from bot.services.cases.lookups import FOLLOWUP_ROWS, Followed
from bot.services.cases.outgoing import new_message_id, staff_locale
from bot.services.cases.texts import (
    Ack,
    Dates,
    ack_body,
    case_alert,
    cut,
    email_html,
    kind_name,
    show_buttons,
)
from messages.render import normalise_locale, t, th
from storage.models import Case, Channel
from storage.repo import bulk
from storage.repo import cases as repo
from storage.repo.outbox import MAIN_LANE


@dataclass(frozen=True)
class NewCase:
    """A case a letter asks for (what `open_case` takes from the e-mail intake)."""

    kind: str
    complainant: Complainant
    subject: str | None
    description: str
    source_message_id: str | None
    received_on: date
    acknowledge_by_email: bool = True


@dataclass
class CaseView:
    """A case this batch opened, as the texts and a later letter of the batch read it (its row
    is written, not read back)."""

    id: int
    ref: str
    kind: str
    channel: str
    locale: str
    out_of_time: bool
    incomplete: bool
    complainant_email: str | None
    thread_message_ids: list[str] | None


AnyCase = Case | CaseView


@dataclass(frozen=True)
class Opened:
    case: CaseView
    alert: Notice


@dataclass
class Batch:
    """What a batch writes besides the cases: filled by `open_many` and `add_many`, written by
    `write` (their staff notices are returned, for the caller to queue in its letters' order
    with bot.outbox.staff_batch)."""

    session: AsyncSession
    chains: Chains
    now: datetime
    outbox: list[dict[str, Any]] = field(default_factory=list)
    deadlines: list[dict[str, Any]] = field(default_factory=list)  # of the cases opened
    message_ids: dict[str, int] = field(default_factory=dict)  # key → case id, first one wins
    threads: dict[int, list[str]] = field(default_factory=dict)  # case id → its new thread
    cases: dict[int, AnyCase] = field(default_factory=dict)  # cases whose thread grew

    def thread_add(self, case_id: int, thread: list[str], mid: str | None) -> None:
        mid = repo.normalise_message_id(mid)
        if not mid:
            return
        if mid not in thread:
            thread.append(mid)
        self.message_ids.setdefault(repo.message_id_key(mid), case_id)

    async def write(self) -> None:
        session = self.session
        await bulk.insert_rows(session, bulk.DEADLINES, self.deadlines)
        await self.chains.write()
        await bulk.insert_rows(session, bulk.OUTBOX, self.outbox, skip_conflicts=True)
        rows = [{"message_id_key": k, "case_id": c} for k, c in self.message_ids.items()]
        await bulk.insert_rows(session, bulk.MESSAGE_IDS, rows, skip_conflicts=True)
        changed = [{"id": cid, "thread_message_ids": self.threads[cid]} for cid in self.cases]
        await bulk.update_rows(session, bulk.CASES, changed)
        for cid, case in self.cases.items():  # the loaded objects say what the rows say
            if isinstance(case, Case):
                set_committed_value(case, "thread_message_ids", list(self.threads[cid]))
            else:
                case.thread_message_ids = list(self.threads[cid])
        self.outbox, self.deadlines, self.message_ids, self.cases = [], [], {}, {}


Computed = tuple[list[ComputedDeadline], list[ComputedDeadline], list[str]]


class _Deadlines:
    """Deadlines, filing windows and unchecked windows once per kind and receipt day, for one
    profile and calendar (held by the memo, so their ids cannot be taken by others)."""

    _memo: ClassVar[dict[tuple[int, int, str, date], tuple[object, object, Computed]]] = {}
    SIZE = 1_000

    def __init__(self, desk: Desk) -> None:
        self.desk = desk

    def of(self, kind: str, received: date) -> Computed:
        profile, calendar = self.desk.profile, self.desk.calendar
        key = (id(profile), id(calendar), kind, received)
        found = self._memo.get(key)
        if found is not None and found[0] is profile and found[1] is calendar:
            return found[2]
        if len(self._memo) >= self.SIZE:
            self._memo.clear()
        computed = case_deadlines(
            profile.rules.values(), kind, received, None, calendar,
            roll_to_workday=profile.calendar.roll_to_workday, notified=None,
            about=rules.complaint_about(None) if kind == "complaint" else None,
        )  # fmt: skip
        windows = rules.filing_windows(profile, computed)
        unchecked = [r.id for r in rules.unchecked_windows(profile, kind, computed)]
        self._memo[key] = (profile, calendar, (computed, windows, unchecked))
        return computed, windows, unchecked


async def _refs(desk: Desk, session: AsyncSession, years: Sequence[int]) -> list[str]:
    """A free reference per case (drawn as `unique_ref` draws them, checked in one query)."""
    prefix = desk.settings.case_ref_prefix
    refs = [random_ref(prefix, y) for y in years]
    for _ in range(MAX_ATTEMPTS):
        taken = await bulk.refs_taken(session, refs)
        seen: set[str] = set()
        clash = []
        for i, ref in enumerate(refs):
            if ref in taken or ref in seen:
                clash.append(i)
            seen.add(ref)
        if not clash:
            return refs
        for i in clash:
            refs[i] = random_ref(prefix, years[i])
    raise RefExhausted(f"no free case reference after {MAX_ATTEMPTS} attempts")


async def _follows(session: AsyncSession, asked: Sequence[NewCase]) -> list[Followed | None]:
    emails = [a.complainant.email for a in asked if a.complainant.email]
    if not emails:
        return [None] * len(asked)
    days = [a.received_on for a in asked]
    rows = await bulk.outcome_windows(session, emails, min(days), max(days), FOLLOWUP_ROWS)
    found: list[Followed | None] = []
    for a in asked:
        hit = next(
            (
                r for r in rows
                if r.complainant_email == a.complainant.email
                and r.start_on <= a.received_on <= r.due_on
            ),
            None,
        )  # fmt: skip
        found.append(Followed(hit.ref, hit.rule_id, hit.due_on, hit.clause) if hit else None)
    return found


async def open_many(desk: Desk, batch: Batch, asked: Sequence[NewCase]) -> list[Opened]:
    """Open a case for each request; each one's case and staff alert, in order."""
    if not asked:
        return []
    session, now, profile = batch.session, batch.now, desk.profile
    memo = _Deadlines(desk)
    follows = await _follows(session, asked)
    refs = await _refs(desk, session, [a.received_on.year for a in asked])
    rows: list[dict[str, Any]] = []
    plans = []
    for a, ref, follow in zip(asked, refs, follows, strict=True):
        computed, windows, unchecked = memo.of(a.kind, a.received_on)
        who = a.complainant
        source = repo.normalise_message_id(a.source_message_id)
        row: dict[str, Any] = {
            "ref": ref, "kind": a.kind, "channel": Channel.EMAIL.value,
            "status": Status.RECEIVED, "contact_id": None,
            "complainant_name": who.name, "complainant_email": who.email,
            "complainant_chat_id": None, "locale": normalise_locale(who.locale),
            "subject": a.subject, "description": a.description, "concerns": None,
            "concerns_certificate_no": None, "decided_on": None, "decided_by": None,
            "audit_team": None, "assignee": None,
            "out_of_time": follow is None and rules.out_of_time(a.received_on, windows),
            "incomplete": rules.is_incomplete(profile, a.kind, who),
            "thread_message_ids": None, "created_at": now, "closed_at": None,
        }  # fmt: skip
        ack_mid = new_message_id(desk, ref) if who.email and a.acknowledge_by_email else None
        thread = [source] if source else []
        row["thread_message_ids"] = [*thread, ack_mid] if ack_mid else (thread or None)
        rows.append(row)
        plans.append((a, row, computed, windows, unchecked, follow, thread, ack_mid))
    ids = await bulk.insert_returning_ids(session, bulk.CASES, rows, "ref")
    deadlines = batch.deadlines  # written by `batch.write`: the reads before it need not wait
    opened = []
    loc_staff = staff_locale(desk)
    for a, row, computed, windows, unchecked, follow, thread, ack_mid in plans:
        cid = ids[row["ref"]]
        row["id"] = cid
        case = CaseView(
            cid, row["ref"], row["kind"], row["channel"], row["locale"], row["out_of_time"],
            row["incomplete"], row["complainant_email"], row["thread_message_ids"],
        )  # fmt: skip
        batch.chains.start(cid, row["ref"], {name: row[name] for name in CASE_FIELDS})
        for mid in thread:
            batch.message_ids.setdefault(repo.message_id_key(mid), cid)
        dates = Dates(a.received_on)
        for d in computed:
            closed = rules.is_filing_window(profile, d.rule)
            deadlines.append({
                "case_id": cid, "certificate_id": None, "rule_id": d.rule, "clause": d.clause,
                "unit": d.unit, "count": d.count,
                "start_on": rules.deadline_start(profile, d.rule, a.received_on, None, None),
                "due_on": d.due, "provisional": d.provisional, "created_at": now,
                "closed_at": now if closed else None, "closed_by": "received" if closed else None,
            })  # fmt: skip
        who = a.complainant
        batch.chains.append(
            cid, actor=f"complainant:email:{who.email}" if who.email else "complainant",
            type="received", now=now,
            data={
                **{k: row[k] for k in _FILED}, "received_on": a.received_on.isoformat(),
                "notified_on": None, "windows_unchecked": unchecked,
                "follows": follow.to_dict() if follow else None, "attachments": [],
                "complainant": who.to_dict(), "audit_team": [],
                "source_message_id": thread[0] if thread else None,
                "deadlines": [d.to_dict() for d in computed],
            },
        )  # fmt: skip
        ack = Ack(computed, windows, unchecked, dates, follow)
        channels = []
        if ack_mid is not None:
            _ack_letter(desk, batch, case, ack, thread, ack_mid)
            channels.append(Channel.EMAIL.value)
        batch.chains.append(
            cid, actor="system", type="acknowledged", now=now,
            data={"channels": channels, "message_id": ack_mid},
        )  # fmt: skip
        open_ = [d for d in computed if d not in windows]
        text, buttons = case_alert(case, open_, loc_staff, unchecked, follow)
        alert = Notice(
            f"case:{row['ref']}:staff:new", text, actions(buttons), cid, row["ref"], who.email
        )
        opened.append(Opened(case, alert))
    return opened


_FILED = (
    "kind", "channel", "subject", "description", "concerns", "concerns_certificate_no",
    "decided_on", "decided_by", "out_of_time", "incomplete",
)  # fmt: skip


def _ack_letter(
    desk: Desk, batch: Batch, case: CaseView, ack: Ack, thread: list[str], message_id: str
) -> None:
    """The written acknowledgement by e-mail (`opening._acknowledge`), threaded."""
    assert case.id is not None and case.complainant_email is not None
    loc = case.locale
    letter = Letter(
        to=case.complainant_email,
        subject=t(
            "cases.ack_subject", loc, tag=subject_tag(case.ref), kind=kind_name(case.kind, loc)
        ),
        text=ack_body(desk, case, ack, as_html=False, via=Channel.EMAIL),
        html=email_html(ack_body(desk, case, ack, as_html=True, via=Channel.EMAIL)),
        locale=loc,
        in_reply_to=thread[-1] if thread else None,
        references=tuple(thread),
        auto_reply=True,
        case_ref=case.ref,
        message_id=message_id,
    )
    _queue_letter(batch, letter, f"case:{case.ref}:ack:email", case.id, message_id)


def _queue_letter(
    batch: Batch, letter: Letter, key: str, case_id: int | None, message_id: str | None
) -> None:
    channel, recipient, payload = encode(letter)
    batch.outbox.append(
        bulk.outbox_row(
            channel=channel.value, recipient=recipient, payload=payload, key=key,
            now=batch.now, lane=MAIN_LANE, case_id=case_id, email_message_id=message_id,
        )
    )  # fmt: skip
    if case_id is not None and message_id:
        batch.message_ids.setdefault(repo.message_id_key(message_id), case_id)


@dataclass(frozen=True)
class Joined:
    """A letter joining a case (`add_information` plus the intake's acknowledgement)."""

    case: AnyCase
    actor: str
    text: str
    source_message_id: str | None
    sender: str
    message_key: str  # the inbound letter's key: its acknowledgement's idempotency key
    references: tuple[str, ...]
    acknowledge: bool
    attachments: Sequence[Attachment] = ()


async def add_many(desk: Desk, batch: Batch, joined: Sequence[Joined]) -> list[Notice]:
    """Record each letter on its case (events in order, several per case if need be), and
    acknowledge each to its sender when `acknowledge`; the staff alert of each, in order."""
    if not joined:
        return []
    alerts = []
    cases = {j.case.id: j.case for j in joined if isinstance(j.case, Case) and j.case.id}
    await batch.chains.load(cases)
    loc = staff_locale(desk)
    for j in joined:
        case = j.case
        cid = case.id
        assert cid is not None
        thread = batch.threads.setdefault(cid, list(case.thread_message_ids or []))
        batch.cases[cid] = case
        mid = repo.normalise_message_id(j.source_message_id)
        batch.thread_add(cid, thread, mid)
        seq = batch.chains.append(
            cid, actor=j.actor, type="information_added", now=batch.now,
            data={"text": j.text, "attachments": [a.to_dict() for a in j.attachments],
                  "source_message_id": mid},
        )  # fmt: skip
        text = th("staff.info_added", loc, ref=case.ref, files=len(j.attachments), text=cut(j.text))
        key = f"case:{case.ref}:staff:event:{seq}"
        alerts.append(Notice(key, text, actions(show_buttons(case, loc)), cid, case.ref))
        if j.acknowledge:
            _reply_ack(desk, batch, j, thread)
    return alerts


def _reply_ack(desk: Desk, batch: Batch, j: Joined, thread: list[str]) -> None:
    case = j.case
    assert case.id is not None
    loc, tag = case.locale, subject_tag(case.ref)
    text = t("email.reply_ack_body", loc, ref=case.ref, tag=tag)
    message_id = new_message_id(desk, case.ref)
    letter = Letter(
        to=j.sender,
        subject=t("email.reply_ack_subject", loc, tag=tag),
        text=text,
        html=text_to_html(text),
        locale=loc,
        in_reply_to=j.source_message_id,
        references=j.references,
        auto_reply=True,
        case_ref=case.ref,
        message_id=message_id,
    )
    _queue_letter(batch, letter, f"inbound:{j.message_key}:ack", case.id, message_id)
    batch.thread_add(case.id, thread, message_id)


__all__ = ["AnyCase", "Batch", "CaseView", "Joined", "NewCase", "Opened", "add_many", "open_many"]
