"""Acting on a chunk of stored letters at once: what `act` does letter by letter, set-based.

The chunk is locked in one statement and parsed in one call. The common letters — a new case,
a reply from an address its case knows, an automatic letter — are planned in memory from one
query per kind of lookup (the cases their tags and threading headers name, the addresses those
cases know, the senders' automatic answers of the last hour: batch_plan) and written together
in one savepoint (bot.services.cases.many, bot.outbox.staff_batch). Planning stops at a letter that
needs more (a bounce, files, an enquiry, a stranger writing about a case, one to quarantine)
or that answers a letter of the same batch: it is acted upon alone by `act`, in the same unit
of work, and the next batch is planned after it, so every letter sees the ones before it.

Nothing is lost to a bad letter: when a batch fails, its savepoint is rolled back and each of
its letters is acted upon alone (`act`: its own savepoint, quarantined if it breaks).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from bot.desk import Desk
from bot.domain.mail import ParsedMail, too_large
from bot.outbox import staff_batch
from bot.outbox.staff_batch import Notice
from bot.services.cases.chain import Chains
from bot.services.cases.many import AnyCase, Batch, Joined, add_many, open_many
from bot.services.inbound_mail.acting import (
    SUBJECT_MAX,
    TRANSIENT,
    Outcome,
    Parse,
    _kept,
    act,
)
from bot.services.inbound_mail.batch_plan import Letter, Plan, letter_of, plan_batch
from messages.render import th
from storage.models import Case, InboundStatus
from storage.repo import bulk
from storage.repo import inbound_email as repo
from storage.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

# Parses a chunk's letters, each given with its key (the hash of its bytes): the caller may have
# parsed some already, while the database was busy with the chunk before.
ParseMany = Callable[[Sequence[tuple[str, bytes]]], Awaitable[list[ParsedMail]]]


async def act_many(
    desk: Desk, uow: UnitOfWork, inbound_ids: Sequence[int], parse: Parse, parse_many: ParseMany
) -> dict[int, Outcome]:
    """Act on the stored letters `inbound_ids` (in id order); each one's outcome."""
    outcomes: dict[int, Outcome] = {}
    rows = await bulk.lock_letters(uow.session, inbound_ids)
    found = {row.id for row in rows}
    run: list[Any] = []  # letters for one batch, in order
    for row in rows:
        if row.status != InboundStatus.STORED:
            outcomes[row.id] = Outcome(row.status)
        elif too_large(row.problems) is not None:  # quarantined alone, in its place
            outcomes |= await _batched(desk, uow, run, parse, parse_many)
            run = []
            outcomes[row.id] = await act(desk, uow, row.id, parse)
        else:
            run.append(row)
    outcomes |= await _batched(desk, uow, run, parse, parse_many)
    for inbound_id in inbound_ids:
        if inbound_id not in found:  # gone meanwhile: `act` says what became of it
            outcomes[inbound_id] = await act(desk, uow, inbound_id, parse)
    return outcomes


async def _batched(
    desk: Desk, uow: UnitOfWork, rows: Sequence[Any], parse: Parse, parse_many: ParseMany
) -> dict[int, Outcome]:
    """Parse, plan and write `rows` in batches; what breaks parsing or planning sends the
    letters it concerns to `act` one by one, so one letter never stops the others."""
    if not rows:
        return {}
    outcomes: dict[int, Outcome] = {}
    try:
        parsed = await parse_many([(row.message_key, row.raw) for row in rows])
        letters = [letter_of(desk, row, p) for row, p in zip(rows, parsed, strict=True)]
    except TRANSIENT:
        raise
    except Exception as exc:  # `act` parses each again and quarantines the one
        _alone_warning("parsing", len(rows), exc)
        return {row.id: await act(desk, uow, row.id, parse) for row in rows}
    start = 0
    while start < len(letters):
        rest = letters[start:]
        try:
            async with uow.session.begin_nested():  # a failed read leaves the transaction usable
                plan = await plan_batch(desk, uow, rest)
        except TRANSIENT:
            raise
        except Exception as exc:
            _alone_warning("planning", len(rest), exc)
            for x in rest:
                outcomes[x.id] = await act(desk, uow, x.id, parse)
            break
        if plan:
            outcomes |= await _run(desk, uow, plan, parse)
        start += len(plan)
        if start < len(letters) and plan.alone:  # the letter that stopped the plan
            alone = letters[start]
            outcomes[alone.id] = await act(desk, uow, alone.id, parse)
            start += 1
    return outcomes


def _alone_warning(step: str, n: int, exc: Exception) -> None:
    detail = repo.db_reason(exc) if isinstance(exc, SQLAlchemyError) else type(exc).__name__
    log.warning(
        "%s a batch of %d letters failed (%s): acting on each alone",
        step,
        n,
        detail,
        exc_info=log.isEnabledFor(logging.DEBUG),
    )


async def _run(desk: Desk, uow: UnitOfWork, plan: Plan, parse: Parse) -> dict[int, Outcome]:
    """Write the plan in a savepoint; when it fails, act on each of its letters alone."""
    session = uow.session
    try:
        # Pipelined: Python builds the next rows while the database writes the last.
        async with session.begin_nested(), bulk.pipelined(session):
            return await _write(desk, uow, plan)
    except TRANSIENT:
        raise
    except Exception as exc:  # one letter broke the batch: each alone, so it breaks only itself
        _alone_warning("writing", len(plan), exc)
        for obj in list(session.identity_map.values()):
            if isinstance(obj, Case):
                session.expunge(obj)  # its thread was set in memory by the failed batch
        return {x.id: await act(desk, uow, x.id, parse) for _, x in plan.order}


async def _write(desk: Desk, uow: UnitOfWork, plan: Plan) -> dict[int, Outcome]:
    session = uow.session
    now = desk.clock.now()
    batch = Batch(session, Chains(session), now)
    opened = await open_many(desk, batch, [asked for _, asked in plan.news])

    def case_of(target: int) -> AnyCase:
        return plan.cases[target] if target > 0 else opened[-1 - target].case

    joined = []
    for j in plan.joins:
        p = j.x.parsed
        joined.append(Joined(
            case_of(j.case), j.actor, p.text, p.thread_id, j.sender, j.x.row.message_key,
            tuple(p.thread_references()), j.acknowledge,
        ))  # fmt: skip
    alerts = await add_many(desk, batch, joined)
    loc = desk.settings.default_locale
    limit = desk.settings.auto_replies_per_sender_per_hour
    updates: list[dict[str, Any]] = []
    outcomes: dict[int, Outcome] = {}
    notices: dict[int, list[Notice]] = {}
    done = InboundStatus.PROCESSED.value

    def limit_noted(x: Letter, address: str, case_id: int, ref: str) -> Notice:
        text = th("email.staff_auto_reply_limit", loc, sender=address, limit=limit, ref=ref)
        return Notice(f"inbound:{x.id}:limit", text, (), case_id, ref, about=address)

    for (x, asked), new in zip(plan.news, opened, strict=True):
        notices[x.id] = [new.alert]
        if not asked.acknowledge_by_email:
            assert asked.complainant.email is not None
            notices[x.id].append(limit_noted(x, asked.complainant.email, new.case.id, new.case.ref))
        updates.append(_update(x, kind=asked.kind, status=done, case_id=new.case.id))
        outcomes[x.id] = Outcome(done, "cases", new.case.ref)
    for j, info, alert in zip(plan.joins, joined, alerts, strict=True):
        case_id = info.case.id
        assert case_id is not None
        notices[j.x.id] = [alert]
        if not j.acknowledge:
            notices[j.x.id].append(limit_noted(j.x, j.sender, case_id, info.case.ref))
        updates.append(_update(j.x, kind="reply", status=done, case_id=case_id))
        outcomes[j.x.id] = Outcome(done, "replies")
    ignored = InboundStatus.IGNORED.value
    for x, own in plan.automatic:
        case_id = None if own is None else case_of(own).id
        updates.append(_update(x, kind="automatic", status=ignored, case_id=case_id))
        outcomes[x.id] = Outcome(ignored, "automatic")
    ordered = [n for _, x in plan.order for n in notices.get(x.id, [])]
    # The staff rows' lookups first (the batch's own rows are complainants', never coalesced):
    # then every write is sent at once, and the staff rows are built while they go.
    looked = await staff_batch.look(desk, session, ordered, now)
    await batch.write()
    await staff_batch.queue(desk, session, looked)
    await bulk.update_rows(session, bulk.INBOUND, updates)
    return outcomes


def _update(x: Letter, *, kind: str, status: str, case_id: int | None) -> dict[str, Any]:
    """The stored row afterwards, as `act_on` leaves it."""
    p = x.parsed
    return {
        "id": x.id,
        "from_addr": p.from_addr,
        "subject": p.subject[:SUBJECT_MAX] or None,
        "message_id": x.row.message_id if x.row.message_id is not None else p.message_id,
        "problems": [*_kept(x.row.problems), *p.problems] or None,
        "kind": kind,
        "status": status,
        "case_id": case_id,
    }


__all__ = ["ParseMany", "act_many"]
