"""Pure helpers of the Telegram layer: message splitting, flood gate, input parsing."""

from __future__ import annotations

from datetime import date

import pytest

from handlers.telegram.common import FloodGate, split_text
from handlers.telegram.eligibility import BadDate, parse_since
from handlers.telegram.quote import parse_count


def utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def test_long_messages_are_split_at_line_ends_under_the_limit() -> None:
    text = "\n".join(f"第 {n} 行：" + "资料" * 40 for n in range(200))
    pieces = split_text(text)
    assert len(pieces) > 1 and all(utf16(p) <= 4096 for p in pieces)
    assert "\n".join(pieces) == text


def test_a_single_long_line_is_cut_outside_entities_and_tags() -> None:
    line = ("a&amp;b <b>x</b> " * 600).strip()
    pieces = split_text(line, limit=100)
    assert "".join(pieces) == line
    for piece in pieces:
        assert utf16(piece) <= 100
        assert piece.count("&") == piece.count(";") and piece.count("<") == piece.count(">")


def test_emoji_count_twice() -> None:
    pieces = split_text("😀" * 3000)
    assert [utf16(p) for p in pieces] == [4096, 6000 - 4096]


def test_flood_gate_refuses_past_the_limit_then_recovers() -> None:
    gate = FloodGate(3, 10)
    assert [gate.allow(1, t) for t in (0, 1, 2, 3)] == [True, True, True, False]
    assert gate.allow(2, 3)  # another user is not affected
    assert gate.allow(1, 10.5)


def test_flood_gate_forgets_users_with_nothing_in_the_window() -> None:
    gate = FloodGate(3, 10)
    assert gate.allow(1, 0) and gate.allow(2, 5)
    gate.prune(12)  # user 1's last update left the window, user 2's did not
    assert list(gate.seen) == [2]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-08-01", date(2026, 8, 1)),
        ("2026/8/1", date(2026, 8, 1)),
        ("2026年8月1日", date(2026, 8, 1)),
        (" 2026 年 8 月 1 日 ", date(2026, 8, 1)),
        ("5", date(2026, 6, 20)),
        ("5个月", date(2026, 6, 20)),
        ("5 months", date(2026, 6, 20)),
    ],
)
def test_running_since_answers(text: str, expected: date) -> None:
    assert parse_since(text, date(2026, 11, 20)) == expected


@pytest.mark.parametrize("text", ["2026-02-30", "soon", "2026-12-01", "-3"])
def test_bad_running_since_answers(text: str) -> None:
    with pytest.raises(BadDate):
        parse_since(text, date(2026, 11, 20))


def test_counts() -> None:
    assert parse_count("1,200", 10**6) == 1200
    assert parse_count("120人", 10**6) == 120
    assert (
        parse_count("0", 10) is None
        and parse_count("11", 10) is None
        and parse_count("x", 10) is None
    )
