"""Telegram's refusals: the ``ApiError`` answer, injected faults and flood control."""

from __future__ import annotations

import math
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# Sending methods Telegram throttles (flood control); polling and look-ups are not.
RATED = frozenset(
    [
        "sendmessage",
        "senddocument",
        "sendphoto",
        "editmessagetext",
        "editmessagereplymarkup",
        "editmessagecaption",
        "copymessage",
        "forwardmessage",
    ]
)
_DEFAULT_DESCRIPTIONS = {
    400: "Bad Request",
    403: "Forbidden: bot was blocked by the user",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


class ApiError(Exception):
    """A Bot API error answer: HTTP status, Telegram's description, optional parameters."""

    def __init__(self, status: int, description: str, parameters: dict | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.status,
            "description": self.description,
        }
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def too_many(retry_after: float) -> ApiError:
    """Telegram's 429; a whole number of seconds is shown without a fraction."""
    shown = int(retry_after) if float(retry_after).is_integer() else retry_after
    return ApiError(429, f"Too Many Requests: retry after {shown}", {"retry_after": shown})


@dataclass
class Fault:
    """One injected failure of one call."""

    status: int
    retry_after: float
    description: str | None
    after_delivery: bool  # perform the call, then answer the error (a 5xx after delivery)

    def error(self) -> ApiError:
        if self.status == 429:
            return too_many(self.retry_after)
        return ApiError(
            self.status,
            self.description or _DEFAULT_DESCRIPTIONS.get(self.status, "Error"),
        )


class Window:
    """Sliding window of accepted calls: at most `allowed` within any `span` seconds."""

    def __init__(self, allowed: int, span: float = 1.0) -> None:
        self.allowed = allowed
        self.span = span
        self.stamps: deque[float] = deque()

    def retry_after(self, now: float) -> int:
        """0 when a call may pass now; else whole seconds to wait, as Telegram says."""
        while self.stamps and self.stamps[0] <= now - self.span:
            self.stamps.popleft()
        if len(self.stamps) < self.allowed:
            return 0
        return max(1, math.ceil(self.stamps[0] + self.span - now))


class Faults:
    """What the test asked to go wrong: queued failures per method and flood-control limits.

    The per-second windows run on ``time.monotonic``: they measure intervals, not the (test's)
    wall time. The groups' 20 a minute runs on ``group_clock`` (the emulator's clock, Unix
    seconds), so a test can check a minute's pacing by moving its own clock, without waiting.
    """

    def __init__(self, group_clock: Callable[[], float] = time.monotonic) -> None:
        self.rejected = 0  # calls refused by the rate limit
        self.group_rejected = 0  # of which by a group's per-minute limit
        self._queued: dict[str, deque[Fault]] = defaultdict(deque)
        self._global_window: Window | None = None
        self._chat_limit: int | None = None
        self._chat_windows: dict[Any, Window] = {}
        self._group_limit: int | None = None
        self._group_windows: dict[Any, Window] = {}
        self._group_clock = group_clock

    def fail_next(self, method: str, n: int, fault: Fault) -> None:
        self._queued[method.lower()].extend(fault for _ in range(n))

    def take(self, key: str) -> Fault | None:
        """The fault planned for this call of the (lower-cased) method, if any."""
        queue = self._queued.get(key)
        return queue.popleft() if queue else None

    def rate_limit(
        self,
        per_second: int | None,
        per_chat_per_second: int | None,
        per_group_per_minute: int | None = None,
    ) -> None:
        self._global_window = Window(per_second) if per_second else None
        self._chat_limit = per_chat_per_second
        self._chat_windows.clear()
        self._group_limit = per_group_per_minute
        self._group_windows.clear()

    def check_rate(self, key: str, params: dict[str, Any]) -> None:
        """Raise Telegram's 429 when a sending method is over a limit; else count the call."""
        if key not in RATED:
            return
        now = time.monotonic()
        windows = [(self._global_window, now)] if self._global_window else []
        chat = params.get("chat_id")
        if self._chat_limit and chat is not None:
            window = self._chat_windows.setdefault(chat, Window(self._chat_limit))
            windows.append((window, now))
        group = None
        if self._group_limit and str(chat).startswith("-"):  # groups have negative ids
            group = self._group_windows.setdefault(chat, Window(self._group_limit, 60.0))
            windows.append((group, self._group_clock()))
        wait = max((w.retry_after(at) for w, at in windows), default=0)
        if wait:
            self.rejected += 1
            if group is not None and group.retry_after(self._group_clock()):
                self.group_rejected += 1
            raise too_many(wait)
        for w, at in windows:
            w.stamps.append(at)
