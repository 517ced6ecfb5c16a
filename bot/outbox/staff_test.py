"""`certdesk staff-alert test`: one test alert straight to every staff channel, not queued."""

from __future__ import annotations

from collections.abc import Awaitable
from contextlib import AsyncExitStack
from dataclasses import dataclass

from bot.clock import Clock
from bot.config import Settings
from bot.delivery import DeliveryFailure, Sender
from bot.domain.vocabulary import Channel
from bot.outbox.robots import robots_from_settings
from bot.outbox.staff_notice import Target, render, targets
from messages.render import th


@dataclass(frozen=True)
class Outcome:
    target: Target
    error: str | None  # None: the channel accepted it

    @property
    def line(self) -> str:
        where = self.target.channel.value
        if self.target.channel in (Channel.TELEGRAM, Channel.EMAIL):
            where += f" {self.target.recipient}"
        return f"{where}: {'ok' if self.error is None else self.error}"


async def _senders(
    settings: Settings, clock: Clock, stack: AsyncExitStack
) -> dict[str, Sender | str]:
    """A sender per channel, or why the channel cannot send (a setting missing)."""
    senders: dict[str, Sender | str] = {}
    if settings.telegram_bot_token is None:
        senders["telegram"] = "TELEGRAM_BOT_TOKEN is not set"
    else:
        from bot.delivery.telegram import telegram_sender

        telegram = telegram_sender(
            settings.telegram_bot_token.get_secret_value(),
            base_url=settings.telegram_api_base_url,
            base_file_url=settings.telegram_file_base_url,
        )
        stack.push_async_callback(telegram.bot.shutdown)
        failed = await _try(telegram.bot.initialize())  # getMe: a bad token shows here
        senders["telegram"] = telegram if failed is None else f"Telegram: {failed}"
    from bot.delivery.smtp import SmtpSender

    smtp = SmtpSender.from_settings(settings, clock)
    senders["email"] = smtp if smtp is not None else "SMTP_HOST is not set"
    if smtp is not None:
        stack.push_async_callback(smtp.close)
    robots = robots_from_settings(settings, lambda: clock.now().timestamp())
    for robot in robots.values():
        stack.push_async_callback(robot.close)
    senders.update(robots)
    return senders


async def _try(sending: Awaitable[object]) -> str | None:
    try:
        await sending
    except DeliveryFailure as exc:
        return str(exc) or type(exc).__name__
    except Exception as exc:  # a test reports every failure, whatever it is
        return f"{type(exc).__name__}: {exc}"
    return None


async def send_test_alerts(settings: Settings, clock: Clock) -> list[Outcome]:
    """Every configured staff channel, in turn; empty when none is configured."""
    found = targets(settings)
    outcomes = []
    async with AsyncExitStack() as stack:
        senders = await _senders(settings, clock, stack) if found else {}
        text = th("outbox.staff_alert_test", settings.default_locale)
        for target in found:
            sender = senders.get(target.channel.value)
            if isinstance(sender, str) or sender is None:
                outcomes.append(Outcome(target, sender or "no sender"))
                continue
            message = render(target, settings, text)
            outcomes.append(Outcome(target, await _try(sender.send(message))))
    return outcomes
