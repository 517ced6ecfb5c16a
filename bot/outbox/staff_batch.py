"""`queue_for_staff` for many notices at once (the e-mail intake's batches): the same rows,
written together.

For each notice and each staff channel, what `to_staff.fan_out` would queue one call at a time:
the row itself, or — for a notice `about` a sender whose group already had one within
COALESCE_WINDOW — a count folded into the group's summary row. The groups are read in one
query (the newest row of each, locked); the notices are then followed in order in memory (a
sender's third letter of the batch sees the first two), and the rows are written complete in
one insert, the summary rows already queued in one update with their new counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.delivery.messages import Actions, StaffNotice, encode
from bot.desk import Desk
from bot.domain.vocabulary import Channel
from bot.outbox.console_links import console_path
from bot.outbox.staff_notice import Target, render, targets
from bot.outbox.to_staff import COALESCE_WINDOW, STAFF
from messages.render import th
from storage.repo import bulk


@dataclass(frozen=True)
class Notice:
    """One staff notice: `key` its idempotency key, `about` the sender it is about (coalesced)."""

    key: str
    text: str
    buttons: Actions = ()
    case_id: int | None = None
    case_ref: str | None = None  # for its console link, without reading the case back
    about: str | None = None


@dataclass
class _Group:
    """The newest row of a coalescing group, as this batch leaves it."""

    coalesced: int
    status: str
    next_attempt_at: datetime
    row_id: int | None = None  # stored before the batch
    row: dict[str, Any] | None = None  # written by this batch
    added: int = 0  # counts folded into the stored summary row


@dataclass
class Looked:
    """What the database says about a batch's notices (`look`), for `queue` to write them."""

    notices: Sequence[Notice]
    now: datetime
    found: list[Target]
    wanted: list[tuple[Notice, Target, str | None]]  # each notice for each target, its group
    taken: set[str]  # the coalesced rows' keys stored already
    groups: dict[str, _Group]  # the newest row of each group within the window


async def queue_many(
    desk: Desk, session: AsyncSession, notices: Sequence[Notice], now: datetime
) -> None:
    await queue(desk, session, await look(desk, session, notices, now))


async def look(
    desk: Desk, session: AsyncSession, notices: Sequence[Notice], now: datetime
) -> Looked:
    """The reads of `queue_many`: which coalesced rows are stored, each group's newest row
    (locked). Apart from `queue` so a caller may read before it writes other tables."""
    found = list(targets(desk.settings))
    if not notices or not found:
        return Looked(notices, now, found, [], set(), {})
    wanted = [
        (n, t, f"about:{n.about}:{t.channel.value}:{t.recipient}" if n.about else None)
        for n in notices
        for t in found
    ]
    coalesced_keys = [t.key(n.key) for n, t, group in wanted if group]
    taken = await bulk.outbox_keys_taken(session, coalesced_keys)
    since = now - COALESCE_WINDOW
    stored = await bulk.latest_in_groups(session, [g for _, _, g in wanted if g], since)
    groups = {
        key: _Group(row.coalesced, row.status, row.next_attempt_at, row_id=row.id)
        for key, row in stored.items()
    }
    return Looked(notices, now, found, wanted, taken, groups)


async def queue(desk: Desk, session: AsyncSession, looked: Looked) -> None:
    """Write the notices `look` looked up: their rows, and the stored summaries' new counts."""
    notices, now, taken, groups = looked.notices, looked.now, looked.taken, looked.groups
    if not notices:
        return
    settings = desk.settings
    rows: list[dict[str, Any]] = []
    if not looked.found:  # no staff channel: kept on the staff channel, as fan_out does
        for n in notices:
            channel, recipient, payload = encode(StaffNotice(n.text, n.buttons))
            rows.append(
                bulk.outbox_row(
                    channel=channel.value, recipient=recipient, payload=payload, key=n.key,
                    now=now, lane=STAFF, case_id=n.case_id,
                )
            )  # fmt: skip
        await bulk.insert_rows(session, bulk.OUTBOX, rows, skip_conflicts=True)
        return
    links: dict[str, str | None] = {}
    for n, target, group in looked.wanted:
        if n.key not in links:
            links[n.key] = await _link(desk, session, n)
        message = render(target, settings, n.text, n.buttons, links[n.key])
        channel, recipient, payload = encode(message)
        row_key = target.key(n.key)
        base: dict[str, Any] = {
            "channel": channel.value, "recipient": recipient, "now": now, "lane": STAFF,
        }  # fmt: skip
        if group is None:
            rows.append(bulk.outbox_row(**base, payload=payload, key=row_key, case_id=n.case_id))
            continue
        if row_key in taken:  # the same alert again: nothing new
            continue
        taken.add(row_key)
        latest = groups.get(group)
        if latest is None:  # the first in a while: at once
            row = bulk.outbox_row(
                **base, payload=payload, key=row_key, case_id=n.case_id, coalesce_key=group
            )
            rows.append(row)
            groups[group] = _Group(0, "queued", now, row=row)
        elif latest.coalesced > 0 and latest.status == "queued":
            if latest.row is not None:
                latest.row["coalesced"] += 1
            else:
                latest.added += 1
            latest.coalesced += 1
        else:  # a summary, due when the window since the group's previous message closes
            due = max(now, latest.next_attempt_at + COALESCE_WINDOW)
            row = bulk.outbox_row(
                **base, payload={}, key=f"{group}:more:{now.isoformat()}", not_before=due,
                coalesce_key=group, coalesced=1,
            )  # fmt: skip
            rows.append(row)
            groups[group] = _Group(1, "queued", due, row=row)
    summaries = {id(g.row): g for g in groups.values() if g.row is not None}
    for row in rows:
        if id(row) in summaries and row["coalesced"] > 0:
            row["payload"] = _summary(desk, _target_of(row), _about(row), row["coalesced"])
    await bulk.insert_rows(session, bulk.OUTBOX, rows, skip_conflicts=True)
    folded = []
    for key, g in groups.items():
        if g.row_id is not None and g.added:  # a queued summary, locked: its new count
            about, where = _about({"coalesce_key": key}), _target_of({"coalesce_key": key})
            payload = _summary(desk, where, about, g.coalesced)
            folded.append({"id": g.row_id, "coalesced": g.coalesced, "payload": payload})
    await bulk.update_rows(session, bulk.OUTBOX, folded)


async def _link(desk: Desk, session: AsyncSession, notice: Notice) -> str | None:
    base = desk.settings.console_base_url
    if not base:
        return None
    if notice.case_ref is not None:
        path: str | None = f"/cases/{quote(notice.case_ref)}"
    else:
        await bulk.settle(session)  # an ORM query: not beside a write in flight
        path = await console_path(session, notice.key, notice.case_id)
    return base.rstrip("/") + (path or "/")


def _about(row: dict[str, Any]) -> str:
    # The group key is "about:<sender>:<channel>:<recipient>"; a sender may hold colons.
    body = str(row["coalesce_key"]).removeprefix("about:")
    return body.rsplit(":", 2)[0]


def _target_of(row: dict[str, Any]) -> tuple[str, str]:
    channel, recipient = str(row["coalesce_key"]).rsplit(":", 2)[1:]
    return channel, recipient


def _summary(desk: Desk, target: tuple[str, str], about: str, count: int) -> dict[str, Any]:
    settings = desk.settings
    text = th("outbox.staff_more_about", settings.default_locale, about=about, count=count)
    return encode(render(Target(Channel(target[0]), target[1]), settings, text))[2]


__all__ = ["Looked", "Notice", "look", "queue", "queue_many"]
