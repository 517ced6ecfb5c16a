"""Case references: format, alphabet without look-alikes, retry on collision, parsing."""

from __future__ import annotations

import re

import pytest

from bot.domain import refs


def test_format_and_alphabet() -> None:
    assert not set(refs.ALPHABET) & set("01IO")
    assert len(set(refs.ALPHABET)) == 32
    for _ in range(200):
        ref = refs.random_ref("TS", 2026)
        assert re.fullmatch(r"TS-2026-[23456789A-HJ-NP-Z]{6}", ref)


def test_references_are_not_predictable() -> None:
    drawn = {refs.random_ref("TS", 2026) for _ in range(1000)}
    assert len(drawn) == 1000  # 32**6 ≈ 10⁹ per year: repeats in 1000 would mean a bad source


async def test_retries_on_collision() -> None:
    taken = {"TS-2026-AAAAAA", "TS-2026-BBBBBB"}
    script = iter(["TS-2026-AAAAAA", "TS-2026-BBBBBB", "TS-2026-CCCCCC"])

    async def exists(ref: str) -> bool:
        return ref in taken

    ref = await refs.unique_ref("TS", 2026, exists, lambda _p, _y: next(script))
    assert ref == "TS-2026-CCCCCC"


async def test_gives_up_after_repeated_collisions() -> None:
    async def exists(ref: str) -> bool:
        return True

    with pytest.raises(refs.RefExhausted):
        await refs.unique_ref("TS", 2026, exists)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("TS-2026-7K3F9Q", "TS-2026-7K3F9Q"),
        ("  ts-2026-7k3f9q ", "TS-2026-7K3F9Q"),
        ("TS-2026-7K3F9", None),
        ("TS-2026-7K3F0Q", None),  # 0 is not in the alphabet
        ("/case TS-2026-7K3F9Q", None),
    ],
)
def test_normalise(text: str, expected: str | None) -> None:
    assert refs.normalise_ref(text) == expected


def test_find_in_subject() -> None:
    assert refs.find_ref("Re: [TS-2026-7K3F9Q] 我们已收到您的投诉") == "TS-2026-7K3F9Q"
    assert refs.find_ref("回复：[ts-2026-7k3f9q]") == "TS-2026-7K3F9Q"
    assert refs.find_ref("no reference") is None
    assert refs.subject_tag("TS-2026-7K3F9Q") == "[TS-2026-7K3F9Q]"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("staff:show:TS-2026-7K3F9Q", "TS-2026-7K3F9Q"),
        ("mycase:withdraw_yes:ts-2026-7k3f9q", "TS-2026-7K3F9Q"),
        ("mycase:show:' OR 1=1 --", ""),
        ("staff:show:", ""),
        (None, ""),
    ],
)
def test_button_ref(data: str | None, expected: str) -> None:
    assert refs.button_ref(data) == expected
