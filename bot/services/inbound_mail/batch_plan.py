"""Planning a batch of letters (bot.services.inbound_mail.batch): the letters read, the lookups
for them in one query a kind, and which of them the batch takes together — up to the first that
needs acting upon alone."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.desk import Desk
from bot.domain import findings as finding_rules
from bot.domain.cases import Complainant, letter_receipt_day
from bot.domain.letters import case_ref_in_subject, classify_text, letter_locale
from bot.domain.mail import ParsedMail
from bot.services.cases.many import NewCase
from bot.services.inbound_mail.acting import THREAD_LOOKUPS
from storage.models import Case
from storage.repo import bulk
from storage.repo import cases as cases_repo
from storage.repo import inbound_email as repo
from storage.unit_of_work import UnitOfWork

_REPLY_KINDS = ("appeal", "complaint", "dispute", "reply")


@dataclass
class Letter:
    id: int
    row: Any  # bulk.lock_letters' row
    parsed: ParsedMail
    threading: list[str]  # normalised threading ids, newest first (as `cases_answered`)
    tag: str | None
    written: str | None  # a reference in the body (the last candidate, as `cases_answered`)


@dataclass
class _Lookups:
    """What the database says about the letters still to plan."""

    by_tag: dict[str, int]
    by_mid: dict[str, int]  # normalised Message-ID → case id
    cases: dict[int, Case]
    known: dict[int, set[str]]  # addresses each case knows (lower-cased)
    answered: dict[str, int]  # automatic answers of the last hour, by sender


@dataclass(frozen=True)
class _Join:
    """A letter joining a case: `case` its id, or -1-n for the n-th case this plan opens."""

    x: Letter
    case: int
    actor: str
    sender: str
    acknowledge: bool


@dataclass
class Plan:
    news: list[tuple[Letter, NewCase]] = field(default_factory=list)
    joins: list[_Join] = field(default_factory=list)
    automatic: list[tuple[Letter, int | None]] = field(default_factory=list)
    order: list[tuple[str, Letter]] = field(default_factory=list)  # letters in order
    cases: dict[int, Case] = field(default_factory=dict)  # the existing cases looked up
    alone: bool = False  # the letter after the plan is for `act` alone

    def __len__(self) -> int:
        return len(self.order)


def letter_of(desk: Desk, row: Any, parsed: ParsedMail) -> Letter:
    threading = [*reversed(parsed.in_reply_to), *reversed(parsed.references)]
    mids = [cases_repo.normalise_message_id(m) for m in dict.fromkeys(threading)]
    tag = case_ref_in_subject(parsed.subject, desk.settings.case_ref_prefix)
    written = parsed.case_ref if parsed.case_ref != tag else None
    return Letter(row.id, row, parsed, [m for m in mids if m][:THREAD_LOOKUPS], tag, written)


def _simple(letter: Letter) -> bool:
    """Whether the batch can take the letter (else `act` takes it alone)."""
    p = letter.parsed
    return (
        p.unprocessable() is None
        and p.bounce is None
        and not p.attachments
        and finding_rules.tagged_finding(p.subject) is None
    )


async def _lookups(desk: Desk, uow: UnitOfWork, letters: Sequence[Letter]) -> _Lookups:
    session = uow.session
    refs = [ref for x in letters for ref in (x.tag, x.written) if ref]
    by_tag = await bulk.case_ids_by_ref(session, refs)
    mids = {m for x in letters for m in x.threading}
    keys = {cases_repo.message_id_key(m): m for m in mids}
    by_key = await bulk.cases_by_message_key(session, keys)
    by_mid = {keys[k]: cid for k, cid in by_key.items()}
    unknown = [m for m in mids if m not in by_mid]
    by_mid |= await bulk.cases_by_sent_message_id(session, unknown)
    ids = set(by_tag.values()) | set(by_mid.values())
    cases = await bulk.cases_by_id(session, ids)
    senders = await bulk.senders_of_cases(session, ids)
    contacts = await bulk.contact_emails(
        session, [c.contact_id for c in cases.values() if c.contact_id is not None]
    )
    known: dict[int, set[str]] = {}
    for cid, case in cases.items():
        found = set(senders.get(cid, set()))
        if case.complainant_email:
            found.add(case.complainant_email)
        if case.contact_id in contacts:
            found.add(contacts[case.contact_id])
        known[cid] = {a.strip().lower() for a in found}
    since = desk.clock.now() - repo.HOUR
    addresses = [x.parsed.sender for x in letters if x.parsed.sender]
    answered: dict[str, int] = {}
    for address, n in (await bulk.automatic_answers(session, addresses, since)).items():
        answered[address.strip().lower()] = n
    return _Lookups(by_tag, by_mid, cases, known, answered)


def _may_answer(answered: dict[str, int], address: str, limit: int) -> bool:
    """`answers.may_answer` with the batch's own answers counted in."""
    key = address.strip().lower()
    if answered.get(key, 0) >= limit:
        return False
    answered[key] = answered.get(key, 0) + 1
    return True


async def plan_batch(desk: Desk, uow: UnitOfWork, letters: Sequence[Letter]) -> Plan:
    """The longest run of letters from the first that the batch can take."""
    plan = Plan()
    head = []
    for x in letters:
        if not _simple(x):
            plan.alone = True
            break
        head.append(x)
    if not head:
        return plan
    found = await _lookups(desk, uow, head)
    plan.cases = found.cases
    limit = desk.settings.auto_replies_per_sender_per_hour
    now = desk.clock.now()
    # A Message-ID of a letter of this plan → the case it opens or joins (a new case by its
    # place in plan.news, as -1-n): a later letter answering it joins that case here too.
    pending: dict[str, int] = {}
    for x in head:
        p = x.parsed
        candidates = [found.by_tag[x.tag]] if x.tag in found.by_tag else []
        for m in x.threading:
            if m in found.by_mid and found.by_mid[m] in found.cases:
                candidates.append(found.by_mid[m])
            elif m in pending:
                candidates.append(pending[m])
        if x.written in found.by_tag:
            candidates.append(found.by_tag[x.written])
        candidates = list(dict.fromkeys(candidates))
        sender = (p.from_addr or "").strip().lower()
        own = next((c for c in candidates if sender and sender in found.known[c]), None)
        target: int | None = own
        if p.automatic:  # recorded with its case, not put in the case's thread
            plan.automatic.append((x, own))
            plan.order.append(("automatic", x))
            target = None
        elif own is not None or candidates:
            if own is None:
                plan.alone = True
                break  # a stranger writing about a case: `act` (strangers.about_case)
            address = p.sender
            assert address is not None
            allowed = _may_answer(found.answered, address, limit)
            plan.joins.append(_Join(
                x, own, f"complainant:email:{p.from_addr or address}", address, allowed,
            ))  # fmt: skip
            plan.order.append(("join", x))
            if p.from_addr:
                found.known[own].add(p.from_addr.strip().lower())
        else:
            kind = classify_text(p.subject, p.text) if p.kind == "reply" else p.kind
            if kind == "enquiry":
                plan.alone = True
                break  # for staff to sort: `act`
            address = p.sender
            assert address is not None
            allowed = _may_answer(found.answered, address, limit)
            who = Complainant(
                name=p.from_name or None,
                email=address,
                locale=letter_locale(p.subject, p.text, desk.settings.default_locale),
            )
            asked = NewCase(
                kind, who, p.subject or None, p.text, p.thread_id,
                letter_receipt_day(x.row.internal_date, now), allowed,
            )  # fmt: skip
            target = -1 - len(plan.news)
            plan.news.append((x, asked))
            plan.order.append(("new", x))
            # What `strangers.known_addresses` will find of it: its complainant, its sender.
            found.known[target] = {address.strip().lower(), sender} - {""}
        mid = cases_repo.normalise_message_id(p.thread_id)
        if mid and target is not None and mid not in found.by_mid:
            pending.setdefault(mid, target)
    return plan


__all__ = ["Letter", "Plan", "letter_of", "plan_batch"]
