"""Senders that deliver one typed message (bot.delivery.messages): Telegram, e-mail, robots.

A sender raises `TransientFailure` for what may succeed later (Telegram 429/5xx, network, SMTP 4xx)
and `PermanentFailure` for what never will (chat blocked, SMTP 5xx). The outbox worker decides
what to do with either; senders never retry by themselves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from bot.delivery.messages import Outbound


class DeliveryFailure(Exception):
    pass


class TransientFailure(DeliveryFailure):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class PermanentFailure(DeliveryFailure):
    pass


class ChatMoved(DeliveryFailure):
    """Telegram: the group became a supergroup under a new id; send there instead."""

    def __init__(self, reason: str, new_chat_id: str) -> None:
        super().__init__(reason)
        self.new_chat_id = new_chat_id


class Sender(Protocol):
    channel: str

    async def send(self, message: Outbound) -> str | None:
        """Deliver; return the channel's id for what was sent (Message-ID, message_id)."""
        ...
