"""Telegram's 20 messages a minute to a group: what may go now, and what is merged into a digest.

Pure: the times of the group's last sends and the messages waiting in, a plan out. When what waits
fits the room left in the rolling minute, each message goes as it is. When more waits than the
room allows, the texts are merged into a digest, one line per message, in parts of at most one
Telegram message each, numbered; what does not fit the room waits for the next free slot, whole
(a message is never split across two plans). A document (the file itself) cannot be a line: it
keeps its own slot, in turn with the digest parts by age, so nothing waits behind a flood forever.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.delivery.telegram_split import BUDGET, visible_length

GROUP_LIMIT = 20  # Telegram: at most 20 messages a minute to one group
WINDOW = timedelta(seconds=60)
HEADER_ROOM = 300  # a part's header and number, kept free of lines
SEPARATOR = " · "  # between a message's lines, within its digest line

Header = Callable[[int, int, int], str]  # (lines in this part, part, parts) → header HTML


@dataclass(frozen=True)
class Item:
    """A message waiting for the group: its row id, its text as one digest line (None when it
    cannot be merged: a document, a text too long for a line) and the messages it takes alone."""

    id: int
    line: str | None
    parts: int = 1


@dataclass(frozen=True)
class Send:
    """One Telegram message to go: a row as it is (`text` None) or a digest part of rows."""

    ids: tuple[int, ...]
    text: str | None = None
    cost: int = 1  # Telegram messages it takes

    @property
    def digest(self) -> bool:
        return self.text is not None


@dataclass(frozen=True)
class Plan:
    sends: list[Send]
    later: list[int]  # waiting for the next free slot

    @property
    def cost(self) -> int:
        return sum(s.cost for s in self.sends)


def in_window(
    sent: Sequence[datetime], now: datetime, window: timedelta = WINDOW
) -> list[datetime]:
    """The sends that still count at `now`, oldest first."""
    return sorted(t for t in sent if t > now - window)


def room(
    sent: Sequence[datetime],
    now: datetime,
    limit: int = GROUP_LIMIT,
    window: timedelta = WINDOW,
) -> int:
    """How many messages may go to the group now."""
    return max(0, limit - len(in_window(sent, now, window)))


def next_free(
    sent: Sequence[datetime],
    now: datetime,
    limit: int = GROUP_LIMIT,
    window: timedelta = WINDOW,
) -> datetime:
    """When one more message may go: now, or when the oldest send that fills the window leaves."""
    recent = in_window(sent, now, window)
    if len(recent) < limit:
        return now
    return recent[len(recent) - limit] + window


def as_line(text: str, is_html: bool = True) -> str:
    """A message's text as one digest line (HTML): its lines joined, nothing dropped."""
    body = text if is_html else html.escape(text, quote=False)
    return SEPARATOR.join(part.strip() for part in body.split("\n") if part.strip())


def fits_a_line(line: str, budget: int = BUDGET) -> bool:
    return visible_length(f"999. {line}") + 1 <= budget - HEADER_ROOM


def plan(items: Sequence[Item], room: int, header: Header, budget: int = BUDGET) -> Plan:
    """What goes now within `room` messages, in order of age (the items' order)."""
    if room <= 0 or not items:
        return Plan([], [i.id for i in items])
    if sum(i.parts for i in items) <= room:
        return Plan([Send((i.id,), cost=i.parts) for i in items], [])
    # More waits than the room allows: the texts become a digest. Each candidate (a digest part,
    # or an item that cannot be a line) is placed by its oldest message.
    candidates: list[tuple[int, list[Item], bool]] = []
    for part in _pack([i for i in items if i.line is not None], budget):
        candidates.append((part[0].id, part, True))
    for item in items:
        if item.line is None:
            candidates.append((item.id, [item], False))
    order = {item.id: n for n, item in enumerate(items)}
    candidates.sort(key=lambda c: order[c[0]])
    left = room
    taken: list[tuple[list[Item], bool]] = []
    for _, members, merged in candidates:
        cost = 1 if merged else members[0].parts
        if cost > left:
            break  # in turn: the next waits, so nothing overtakes an older message
        # A part of one line is that message as it is (with its buttons).
        taken.append((members, merged and len(members) > 1))
        left -= cost
        if left == 0:
            break
    parts = sum(1 for _, merged in taken if merged)
    sends: list[Send] = []
    number, part_no = 1, 0
    for members, merged in taken:
        if not merged:
            sends.append(Send((members[0].id,), cost=members[0].parts))
            continue
        part_no += 1
        lines = []
        for item in members:
            lines.append(f"{number}. {item.line}")
            number += 1
        text = "\n".join([header(len(members), part_no, parts), *lines])
        sends.append(Send(tuple(i.id for i in members), text))
    sent = {i for s in sends for i in s.ids}
    return Plan(sends, [i.id for i in items if i.id not in sent])


def _pack(items: Sequence[Item], budget: int) -> list[list[Item]]:
    """Lines into parts of at most `budget` visible units each (a header's room kept)."""
    parts: list[list[Item]] = []
    current: list[Item] = []
    size = 0
    limit = budget - HEADER_ROOM
    for n, item in enumerate(items, 1):
        assert item.line is not None
        length = visible_length(f"{n}. {item.line}") + 1
        if current and size + length > limit:
            parts.append(current)
            current, size = [], 0
        current.append(item)
        size += length
    if current:
        parts.append(current)
    return parts
