"""The update queue the bot long-polls, and the Bot API methods that read or redirect it:
getUpdates, setWebhook, deleteWebhook, getWebhookInfo."""

from __future__ import annotations

import itertools
from typing import Any

from bot.emulator.faults import ApiError
from bot.emulator.state import State


class UpdateQueue:
    """Updates wait here until a getUpdates offset confirms them, as on Telegram."""

    def __init__(self, state: State, poll_cap: float | None = None) -> None:
        self.state = state
        self.poll_cap = poll_cap  # upper bound on a long poll's wait, seconds
        self.history: list[dict[str, Any]] = []  # every update ever queued
        self.webhook_url: str | None = None
        self._pending: list[dict[str, Any]] = []  # not yet confirmed by getUpdates offset
        self._allowed: set[str] | None = None
        self._update_ids = itertools.count(100_001)
        self._poll_generation = 0
        self._closing = False

    async def put(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Queue an update of type ``kind`` ("message", "callback_query", …)."""
        update = {"update_id": next(self._update_ids), kind: payload}
        async with self.state.changed:
            self.history.append(update)
            self._pending.append(update)
            self.state.changed.notify_all()
        return update

    async def close(self) -> None:
        """Pending long polls answer [] now."""
        async with self.state.changed:
            self._closing = True
            self.state.changed.notify_all()

    # ---- Bot API methods -----------------------------------------------------------------------

    async def get_updates(self, p: dict, files: dict) -> list[dict[str, Any]]:
        if self.webhook_url:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset, limit = int(p.get("offset", 0)), min(max(int(p.get("limit", 100)), 1), 100)
        timeout = float(p.get("timeout", 0))
        if self.poll_cap is not None:
            timeout = min(timeout, self.poll_cap)
        if "allowed_updates" in p:
            self._allowed = set(p["allowed_updates"]) or None
        async with self.state.changed:
            self._confirm(offset)
            self._poll_generation += 1
            generation = self._poll_generation
            self.state.changed.notify_all()  # an older poll still waiting is superseded

        def ready() -> bool:
            return (
                bool(self._deliverable(limit))
                or self._closing
                or (generation != self._poll_generation)
            )

        await self.state.wait_for(ready, timeout)
        if generation != self._poll_generation:
            raise ApiError(
                409,
                "Conflict: terminated by other getUpdates request; make sure that only one "
                "bot instance is running",
            )
        return self._deliverable(limit)

    def set_webhook(self, p: dict, files: dict) -> bool:
        self.webhook_url = p.get("url") or None
        return True

    def delete_webhook(self, p: dict, files: dict) -> bool:
        self.webhook_url = None
        if p.get("drop_pending_updates"):
            self._pending.clear()
        return True

    def get_webhook_info(self, p: dict, files: dict) -> dict[str, Any]:
        return {
            "url": self.webhook_url or "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._pending),
        }

    # ---- the queue -----------------------------------------------------------------------------

    def _confirm(self, offset: int) -> None:
        if offset < 0:
            self._pending = self._pending[offset:]
        elif offset:
            self._pending = [u for u in self._pending if u["update_id"] >= offset]

    def _deliverable(self, limit: int) -> list[dict[str, Any]]:
        if self._allowed is not None:
            # Telegram drops updates of types the bot did not ask for.
            self._pending = [u for u in self._pending if _kind(u) in self._allowed]
        return self._pending[:limit]


def _kind(update: dict[str, Any]) -> str:
    return next(k for k in update if k != "update_id")
