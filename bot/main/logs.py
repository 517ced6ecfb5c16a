"""Logging for the long-running commands: one readable line per record, and no secret in any.

httpx logs every request URL at INFO, and a Bot API URL carries the bot token, so redaction is
done on the final formatted text (tracebacks included), not on the message alone.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable

from bot.config import Settings

# A Telegram bot token anywhere in a line: digits, a colon, 30+ URL-safe characters.
TOKEN_PATTERN = re.compile(r"\d{3,}:[A-Za-z0-9_-]{30,}")
# Chatty libraries: their INFO lines say nothing an operator needs.
QUIET = ("httpx", "httpcore", "apscheduler.executors.default", "apscheduler.scheduler", "aiosqlite")


class RedactingFormatter(logging.Formatter):
    def __init__(self, secrets: Iterable[str], fmt: str) -> None:
        super().__init__(fmt)
        self.secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return TOKEN_PATTERN.sub("***", text)


def secrets_of(settings: Settings) -> list[str]:
    values = [
        settings.telegram_bot_token,
        settings.webhook_secret,
        settings.imap_password,
        settings.smtp_password,
    ]
    return [v.get_secret_value() for v in values if v is not None]


def setup_logging(settings: Settings, *, level: str | None = None) -> logging.Handler:
    """Send log records to stderr through the redacting formatter; returns the handler."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        RedactingFormatter(secrets_of(settings), "%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h.formatter, RedactingFormatter)]:
        root.removeHandler(old)  # set up once, however often a command runs in one process
    root.addHandler(handler)
    root.setLevel(level or settings.log_level)
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
    return handler
