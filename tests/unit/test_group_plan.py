"""The rules of a Telegram group's 20 messages a minute: room, next slot, digest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.delivery.telegram_split import TELEGRAM_MAX, visible_length
from bot.outbox.group_plan import (
    GROUP_LIMIT,
    Item,
    as_line,
    fits_a_line,
    next_free,
    plan,
    room,
)

T0 = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)


def header(lines: int, part: int, parts: int) -> str:
    return f"<b>{lines} merged</b> ({part}/{parts})"


def items(n: int, *, first: int = 1, text: str = "alert") -> list[Item]:
    return [
        Item(first + i, as_line(f"<b>{text} {first + i}</b>\nabout case X-{i}")) for i in range(n)
    ]


def test_room_counts_a_rolling_minute() -> None:
    sent = [T0 + timedelta(seconds=s) for s in range(20)]  # 20 in the first 20 s
    assert room(sent, T0 + timedelta(seconds=20)) == 0
    assert room(sent, T0 + timedelta(seconds=59.9)) == 0
    assert room(sent, T0 + timedelta(seconds=60)) == 1  # the first left the window
    assert room(sent, T0 + timedelta(seconds=65.5)) == 6
    assert room([], T0) == GROUP_LIMIT
    assert next_free(sent, T0 + timedelta(seconds=30)) == T0 + timedelta(seconds=60)
    assert next_free(sent[:19], T0 + timedelta(seconds=30)) == T0 + timedelta(seconds=30)


def test_next_free_with_more_than_the_limit_counted() -> None:
    # A 429 or an interactive reply may have crowded the minute: the slot frees when enough left.
    sent = [T0 + timedelta(seconds=s) for s in range(22)]
    assert next_free(sent, T0 + timedelta(seconds=30)) == T0 + timedelta(seconds=62)


def test_what_fits_the_room_goes_as_it_is() -> None:
    waiting = items(5)
    p = plan(waiting, 5, header)
    assert [s.ids for s in p.sends] == [(1,), (2,), (3,), (4,), (5,)]
    assert all(s.text is None for s in p.sends) and p.later == []


def test_more_than_the_room_becomes_one_digest_with_every_line() -> None:
    waiting = items(200)
    p = plan(waiting, 20, header)
    digests = [s for s in p.sends if s.digest]
    assert p.cost <= 20 and p.later == []
    assert {i for s in digests for i in s.ids} == set(range(1, 201))
    for s in digests:
        assert s.text is not None and visible_length(s.text) <= TELEGRAM_MAX
    numbered = [line for s in digests for line in (s.text or "").split("\n")[1:]]
    assert [line.split(". ", 1)[0] for line in numbered] == [str(n) for n in range(1, 201)]
    assert numbered[0] == "1. <b>alert 1</b> · about case X-0"
    assert all(f"({k}/{len(digests)})" in (s.text or "") for k, s in enumerate(digests, 1))


def test_parts_beyond_the_room_wait_whole_oldest_first() -> None:
    waiting = items(300, text="x" * 200)  # about 20 lines a part: 15 parts
    p = plan(waiting, 2, header)
    assert p.cost == 2 and all(s.digest for s in p.sends)
    sent = [i for s in p.sends for i in s.ids]
    assert sent == list(range(1, len(sent) + 1))  # the oldest
    assert p.later == list(range(len(sent) + 1, 301))
    assert "(2/2)" in (p.sends[1].text or "")  # numbered among what goes now


def test_no_room_sends_nothing() -> None:
    p = plan(items(3), 0, header)
    assert p.sends == [] and p.later == [1, 2, 3]


def test_a_document_keeps_its_own_slot_in_turn() -> None:
    waiting = [*items(3), Item(4, None), *items(30, first=5)]
    p = plan(waiting, 2, header)
    # The first digest part holds every text (older and newer than the document), placed by its
    # oldest line; the document takes the second slot.
    assert [s.digest for s in p.sends] == [True, False]
    assert p.sends[1].ids == (4,)
    assert p.later == []
    p = plan([Item(1, None), *items(30, first=2)], 1, header)
    assert p.sends[0].ids == (1,) and p.later == list(range(2, 32))


def test_a_long_text_waits_for_room_for_all_its_parts() -> None:
    waiting = [Item(1, None, parts=3), *items(5, first=2)]
    p = plan(waiting, 2, header)
    assert p.sends == [] and p.later == [1, 2, 3, 4, 5, 6]  # nothing overtakes it
    p = plan(waiting, 4, header)
    assert [s.ids[0] for s in p.sends] == [1, 2] and p.cost == 4


def test_a_single_line_part_goes_as_the_message_itself() -> None:
    p = plan([Item(1, None), Item(2, as_line("one")), Item(3, None)], 2, header)
    assert [s.text for s in p.sends] == [None, None]


def test_lines() -> None:
    assert as_line("a\n\n  b \nc") == "a · b · c"
    assert as_line("<x> & y", is_html=False) == "&lt;x&gt; &amp; y"
    assert fits_a_line("z" * 3000) and not fits_a_line("z" * 3900)
