"""Every sender the settings describe: Telegram (with a token), SMTP, the group robots."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.clock import Clock
from bot.config import Settings
from bot.delivery import Sender
from bot.outbox.robots import robots_from_settings
from storage.repo.send_budget import send_budget


def senders_from_settings(
    settings: Settings, clock: Clock, engine: AsyncEngine | None = None
) -> dict[str, Sender]:
    """By channel; a channel left out (no SMTP_HOST, no token) keeps its messages queued.
    Telegram's `Bot` needs `await senders["telegram"].bot.initialize()` before use. With
    `engine` on PostgreSQL, Telegram's overall rate is the one the instances share."""
    from bot.delivery.smtp import SmtpSender
    from bot.delivery.telegram import telegram_sender
    from bot.delivery.telegram_pace import budget_scope

    found: dict[str, Sender] = {}
    if settings.telegram_bot_token is not None:
        token = settings.telegram_bot_token.get_secret_value()
        found["telegram"] = telegram_sender(
            token,
            base_url=settings.telegram_api_base_url,
            base_file_url=settings.telegram_file_base_url,
            per_second=settings.telegram_rate_per_second,
            connections=max(8, settings.outbox_lanes),
            shared=send_budget(engine, budget_scope(token)),
        )
    smtp = SmtpSender.from_settings(settings, clock)
    if smtp is not None:
        found["email"] = smtp
    found.update(robots_from_settings(settings, lambda: clock.now().timestamp()))
    return found


async def close_senders(senders: dict[str, Sender]) -> None:
    for sender in senders.values():
        close = getattr(sender, "close", None)
        if close is not None:
            await close()
        bot = getattr(sender, "bot", None)
        if bot is not None:
            await bot.shutdown()
