"""The staff directory's rules: roles, who may do what, identities, slowing password guessing."""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum


class Role(StrEnum):
    """Ranked: each role may do what the ones below it may."""

    # A member of a programme like ICS (a brand or retailer): below staff, it sees and verifies
    # only the findings of the factories it works with (bot.services.findings_access).
    MEMBER = "member"
    STAFF = "staff"  # handles cases: assign, reply, milestones
    DECIDER = "decider"  # also takes certification decisions
    ADMIN = "admin"  # also runs the desk: outbox, staff directory

    @property
    def rank(self) -> int:
        return list(Role).index(self)


def may(role: str, needed: Role) -> bool:
    """Whether `role` (as stored) covers `needed`; an unknown role covers nothing."""
    try:
        return Role(role).rank >= needed.rank
    except ValueError:
        return False


_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def normalise_email(text: str) -> str | None:
    """The sign-in name: trimmed and lower-cased; None if it is not an address."""
    email = text.strip().lower()
    return email if _EMAIL.match(email) else None


def staff_actor(email: str) -> str:
    """The actor recorded on events for a directory member (Telegram staff: `staff:<id>`)."""
    return f"staff:{email}"


def identities(name: str, email: str, telegram_user_id: int | None) -> list[str]:
    """Every name impartiality compares for one member (the decider and audit team of a case
    may be recorded by name, e-mail or Telegram id)."""
    found = [name, email, email.split("@", 1)[0]]
    if telegram_user_id is not None:
        found.append(str(telegram_user_id))
    return [i for i in dict.fromkeys(found) if i]


@dataclass
class LoginThrottle:
    """Repeated wrong passwords slow sign-in down: after `limit` failures within `window` for
    one key (an address, or a client), that key waits until the oldest failure leaves the window.
    Kept per process: each console instance counts its own (a guesser gains at most N×)."""

    limit: int = 5
    window: timedelta = timedelta(minutes=15)
    max_keys: int = 10_000  # memory stays bounded whatever is typed as an address
    _failures: dict[str, deque[datetime]] = field(default_factory=dict)

    def _recent(self, key: str, now: datetime) -> deque[datetime]:
        times = self._failures.setdefault(key, deque())
        while times and now - times[0] >= self.window:
            times.popleft()
        if not times:
            del self._failures[key]
            return deque()
        return times

    def wait(self, keys: list[str], now: datetime) -> timedelta | None:
        """How long these keys must wait before another try; None if they may try now."""
        waits = []
        for key in keys:
            times = self._recent(key, now)
            if len(times) >= self.limit:
                waits.append(times[0] + self.window - now)
        return max(waits) if waits else None

    def failed(self, keys: list[str], now: datetime) -> None:
        for key in keys:
            self._recent(key, now)
            self._failures.setdefault(key, deque()).append(now)
        if len(self._failures) > self.max_keys:
            for key in list(self._failures):
                self._recent(key, now)  # drops keys whose failures all left the window
            by_age = sorted(self._failures, key=lambda k: self._failures[k][-1])
            for key in by_age[: max(0, len(by_age) - self.max_keys)]:
                del self._failures[key]  # the longest quiet go first

    def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)
