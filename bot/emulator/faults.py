"""Telegram's refusals: the ``ApiError`` answer, injected faults and flood control."""

from __future__ import annotations

import math
import time
from collections import defaultdict, deque
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
    """Sliding one-second window of accepted calls."""

    def __init__(self, per_second: int) -> None:
        self.per_second = per_second
        self.stamps: deque[float] = deque()

    def retry_after(self, now: float) -> int:
        """0 when a call may pass now; else whole seconds to wait, as Telegram says."""
        while self.stamps and self.stamps[0] <= now - 1:
            self.stamps.popleft()
        if len(self.stamps) < self.per_second:
            return 0
        return max(1, math.ceil(self.stamps[0] + 1 - now))


class Faults:
    """What the test asked to go wrong: queued failures per method and flood-control limits.

    Rate windows run on ``time.monotonic``: they measure intervals, not the (test's) wall time.
    """

    def __init__(self) -> None:
        self.rejected = 0  # calls refused by the rate limit
        self._queued: dict[str, deque[Fault]] = defaultdict(deque)
        self._global_window: Window | None = None
        self._chat_limit: int | None = None
        self._chat_windows: dict[Any, Window] = {}

    def fail_next(self, method: str, n: int, fault: Fault) -> None:
        self._queued[method.lower()].extend(fault for _ in range(n))

    def take(self, key: str) -> Fault | None:
        """The fault planned for this call of the (lower-cased) method, if any."""
        queue = self._queued.get(key)
        return queue.popleft() if queue else None

    def rate_limit(self, per_second: int | None, per_chat_per_second: int | None) -> None:
        self._global_window = Window(per_second) if per_second else None
        self._chat_limit = per_chat_per_second
        self._chat_windows.clear()

    def check_rate(self, key: str, params: dict[str, Any]) -> None:
        """Raise Telegram's 429 when a sending method is over a limit; else count the call."""
        if key not in RATED:
            return
        now = time.monotonic()
        windows = [self._global_window] if self._global_window else []
        if self._chat_limit and "chat_id" in params:
            chat = params["chat_id"]
            windows.append(self._chat_windows.setdefault(chat, Window(self._chat_limit)))
        wait = max((w.retry_after(now) for w in windows), default=0)
        if wait:
            self.rejected += 1
            raise too_many(wait)
        for w in windows:
            w.stamps.append(now)
