"""Case references: human-readable, not guessable — `TS-2026-7K3F9Q`.

Six characters from 32 symbols without look-alikes (no 0/O, 1/I) give about 10⁹ references a
year, drawn with `secrets`, so knowing one reference tells nothing about another.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Awaitable, Callable

ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
LENGTH = 6
MAX_ATTEMPTS = 8

_REF = re.compile(rf"\b([A-Z]{{1,6}})-(\d{{4}})-([{ALPHABET}]{{{LENGTH}}})\b")


class RefExhausted(RuntimeError):
    """Every attempt collided: far likelier a broken generator than bad luck."""


def random_ref(prefix: str, year: int) -> str:
    body = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
    return f"{prefix}-{year:04d}-{body}"


async def unique_ref(
    prefix: str,
    year: int,
    exists: Callable[[str], Awaitable[bool]],
    generate: Callable[[str, int], str] = random_ref,
) -> str:
    """A reference `exists` does not know yet, retrying on collision."""
    for _ in range(MAX_ATTEMPTS):
        ref = generate(prefix, year)
        if not await exists(ref):
            return ref
    raise RefExhausted(f"no free case reference after {MAX_ATTEMPTS} attempts")


def normalise_ref(text: str) -> str | None:
    """The reference in what a user typed (`ts-2026-7k3f9q`, spaces around) or None."""
    match = _REF.fullmatch(text.strip().upper())
    return match.group(0) if match else None


def button_ref(data: str | None) -> str:
    """The reference a button's callback data ends with (`staff:show:TS-…`); "" when there is
    none, which matches no case."""
    return normalise_ref((data or "").rsplit(":", 1)[-1]) or ""


def find_ref(text: str | None) -> str | None:
    """The first reference inside a text such as an e-mail subject `Re: [TS-2026-7K3F9Q] …`."""
    if not text:
        return None
    match = _REF.search(text.upper())
    return match.group(0) if match else None


def subject_tag(ref: str) -> str:
    return f"[{ref}]"
