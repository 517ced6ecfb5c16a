"""The group-robot senders the settings describe (WECOM_*, DINGTALK_*, FEISHU_*)."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import SecretStr

from bot.config import Settings
from bot.delivery.robots import RobotSender, robot_senders


def _value(secret: SecretStr | None) -> str | None:
    return secret.get_secret_value() if secret is not None else None


def robots_from_settings(settings: Settings, now: Callable[[], float]) -> dict[str, RobotSender]:
    """By channel ("wecom", "dingtalk", "feishu"), only those configured; `now` is wall-clock
    epoch seconds for the signatures (the desk clock's)."""
    return robot_senders(
        _value(settings.wecom_webhook_url),
        _value(settings.dingtalk_webhook_url),
        _value(settings.dingtalk_secret),
        _value(settings.feishu_webhook_url),
        _value(settings.feishu_secret),
        now=now,
    )
