"""What a drain did, and how long a message waits before its next attempt."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import timedelta

BACKOFF_FIRST = timedelta(seconds=30)
BACKOFF_CAP = timedelta(hours=2)


@dataclass
class DrainStats:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    deferred: int = 0
    routed: int = 0  # staff messages kept while no staff channel was set, now queued to them
    digested: int = 0  # of those sent, sent as lines of a group digest (bot.outbox.groups)
    errors: list[str] = field(default_factory=list)

    @property
    def handled(self) -> int:
        return self.sent + self.retried + self.failed + self.deferred + self.routed


def backoff(attempts: int, rng: random.Random | None = None) -> timedelta:
    """Exponential backoff with full jitter in its upper half, capped."""
    base = min(BACKOFF_FIRST * (2 ** max(attempts - 1, 0)), BACKOFF_CAP)
    return base * (0.5 + (rng or random).random() / 2)
