"""Telegram's rate limits for one token: 30 messages a second overall, one a second per private
chat, 20 a minute per group. `RateLimiter` spaces the sends of the outbox's sender
(bot.delivery.telegram) and the interactive bot's replies (telegram_limits.SharedRateLimiter)
alike; with several instances on PostgreSQL the overall slots, and a group's turns, come from a
budget they share (`shared`, storage.repo.send_budget), so the limits hold in total.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from contextvars import ContextVar
from typing import Protocol

# Per-chat spacing Telegram asks for: private chats 1/s, groups 20/min, plus a margin: requests
# spaced exactly 1 s apart here may arrive less than 1 s apart after network jitter.
MARGIN = 0.03
PRIVATE_INTERVAL = 1.0 + MARGIN
# A group: one turn every 4 s, and a reply (a staff member waiting for the answer, its parts) may
# take up to GROUP_BURST turns ahead. Any 60 s then hold at most 60/4 + GROUP_BURST + 1 = 20
# sends: 15 a minute sustained, a burst of 5 (a cell-rate limit, the turn kept per group).
GROUP_INTERVAL = 4.0 + MARGIN
GROUP_BURST = 4
_CHATS_REMEMBERED = 10_000
# The shared budget's slots: spaced wider than the local ones, since a send may go up to
# SHARED_LATE after its slot (more is a lost slot: a new one is taken) and the instances' requests
# travel apart. Any second then holds at most per_second slots' sends, with ~35 ms to spare.
SHARED_MARGIN = 0.05
SHARED_LATE = 0.015
SHARED_TRIES = 3  # slots missed in a row (a stalled loop, a slow database): then it goes


class SharedSlots(Protocol):
    """Slots shared by the instances, overall and per group (storage.repo.send_budget)."""

    async def reserve(
        self, interval: float, chat: str | None = None, ahead: float = 0.0
    ) -> float | None:
        """Seconds until the slot taken (overall, or the chat's with `chat`), up to `ahead`
        seconds before its turn; None: not available now (the local limiter decides)."""
        ...

    async def pause(self, seconds: float) -> bool: ...

    async def close(self) -> None: ...


# Set while the outbox's sender makes a request: its limiter has paced it and its row records it,
# so a `Bot` with PTB's rate-limiter hook (the application's) lets it through as it is.
PACED_BY_OUTBOX: ContextVar[bool] = ContextVar("paced_by_outbox", default=False)


def budget_scope(token: str) -> str:
    """The shared budget's scope: the bot's id (the token before ':'), never its secret."""
    return f"telegram:{token.split(':', 1)[0]}"


class RateLimiter:
    """Spaces sends: at most `per_second` overall and one per chat interval (monotonic time).

    With `shared`, the overall slots are the shared budget's (the local ones while it cannot be
    reached), and so are a group's: the outbox's holder paces the group, and any instance may
    answer a staff command in it (replies to a group take its turns, bot.delivery.
    telegram_limits). A private chat's spacing stays local: only the holder of the outbox's
    sender lock sends a chat its queued messages, and replies take no per-chat spacing."""

    def __init__(
        self,
        per_second: float,
        *,
        private_interval: float = PRIVATE_INTERVAL,
        group_interval: float = GROUP_INTERVAL,
        group_burst: int = GROUP_BURST,
        shared: SharedSlots | None = None,
    ) -> None:
        self.interval = (1.0 + MARGIN) / per_second
        self.group_burst = group_burst
        self.shared = shared
        self.shared_interval = (1.0 + SHARED_MARGIN) / per_second
        self.private_interval = private_interval
        self.group_interval = group_interval
        self._next_global = 0.0
        self._next_chat: OrderedDict[str, float] = OrderedDict()
        self._lock = asyncio.Lock()
        self._sent: deque[float] = deque(maxlen=max(1, int(per_second)))  # last second's sends

    async def acquire(self, chat_id: str, *, reply: bool = False) -> None:
        """Wait for this chat's turn, then for the overall one; callers are served in order.
        A `reply` to a group may go up to `group_burst` turns ahead of it."""
        group = chat_id.startswith("-")
        ahead = self.group_burst * self.group_interval if reply and group else 0.0
        if self.shared is not None and group:
            wait = await self.shared.reserve(self.group_interval, chat_id, ahead)
            if wait is not None:  # the group's turn, among every instance's sends to it
                if wait > 0:
                    await asyncio.sleep(wait)
                await self.acquire_overall()
                return
        now = time.monotonic()
        turn = self._next_chat.get(chat_id, 0.0)  # when the chat's next send is due
        chat_turn = max(now, turn - ahead)
        gap = self.group_interval if group else self.private_interval
        self._next_chat[chat_id] = max(now, turn) + gap  # reserved now: the next one waits
        self._next_chat.move_to_end(chat_id)
        while len(self._next_chat) > _CHATS_REMEMBERED:
            self._next_chat.popitem(last=False)
        # The chat's wait outside the lock: other chats proceed meanwhile.
        if chat_turn > now:
            await asyncio.sleep(chat_turn - now)
        sent = await self.acquire_overall()
        # The chat's spacing counts from when the send really went.
        self._next_chat[chat_id] = max(self._next_chat.get(chat_id, 0.0), sent + gap)

    async def acquire_overall(self) -> float:
        """Wait for a slot under the overall cap only; returns when the send may go."""
        if self.shared is not None:
            # A 429 this instance was told of holds here too, had the database missed it.
            paused = self._next_global - time.monotonic()
            if paused > 0:
                await asyncio.sleep(paused)
            sent = await self._shared_slot(self.shared)
            if sent is not None:
                self._sent.append(sent)  # known to the local cap, should the database go
                return sent
        # The overall slot: reserved in turn, slept for in parallel.
        now = time.monotonic()
        slot = max(now, self._next_global)
        self._next_global = slot + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)
        # Sleepers woken late together (the event loop stalled on a commit, GC) would go out in a
        # bunch and overrun Telegram's one-second window: what really goes out is capped too.
        async with self._lock:
            while len(self._sent) == self._sent.maxlen:
                wait = self._sent[0] + 1.0 + MARGIN - time.monotonic()
                if wait <= 0:
                    break
                await asyncio.sleep(wait)
            sent = time.monotonic()
            self._sent.append(sent)
        return sent

    async def _shared_slot(self, shared: SharedSlots) -> float | None:
        """A slot of the shared budget, gone for within SHARED_LATE of it; None: not shared."""
        sent = None
        for _ in range(SHARED_TRIES):
            wait = await shared.reserve(self.shared_interval)
            if wait is None:
                return None
            # The database's now came before the answer: the slot is no later than answered +
            # wait, and going from then is never early. Late only when surely late: the round
            # trip and the wait for the budget's connection are not lateness.
            answered = time.monotonic()
            ready = answered + wait
            if ready > time.monotonic():
                await asyncio.sleep(ready - time.monotonic())
            sent = time.monotonic()
            if sent - ready <= SHARED_LATE:
                return sent
            # Woken late (the loop stalled, a slow round trip): going now could bunch with the
            # next slots, which other instances take in time. This one is lost; a new one.
        return sent

    async def pause(self, seconds: float) -> None:
        """Telegram said to wait (429): no send of this bot before then (on any instance)."""
        self._next_global = max(self._next_global, time.monotonic() + seconds)
        if self.shared is not None:
            await self.shared.pause(seconds)

    async def close(self) -> None:
        if self.shared is not None:
            await self.shared.close()


__all__ = [
    "GROUP_BURST",
    "GROUP_INTERVAL",
    "MARGIN",
    "PACED_BY_OUTBOX",
    "PRIVATE_INTERVAL",
    "RateLimiter",
    "SharedSlots",
    "budget_scope",
]
