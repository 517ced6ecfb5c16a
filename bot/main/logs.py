"""Logging for the long-running commands: one readable line per record, and no secret and no
personal data in any.

httpx logs every request URL at INFO, and a Bot API URL carries the bot token, so redaction is
done on the final formatted text (tracebacks included), not on the message alone. E-mail addresses
and phone numbers are masked the same way. The libraries (PTB, httpx, imapclient, SQLAlchemy…)
log at LOG_LEVEL_LIBRARIES (WARNING) even at LOG_LEVEL=DEBUG: at DEBUG they write every update
and every raw letter.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit

from pydantic import SecretStr

from bot.config import Settings

# A Telegram bot token anywhere in a line: digits, a colon, 30+ URL-safe characters.
TOKEN_PATTERN = re.compile(r"\d{3,}:[A-Za-z0-9_-]{30,}")
# An e-mail address: the local part is masked, the domain kept (it says which provider failed).
EMAIL_PATTERN = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)")
# Phone numbers: mainland mobiles (+86 optional), landlines with an area code, and international
# numbers written with a +. Not bare ids (chat ids, update ids, timestamps): those have no
# mobile prefix, or more digits.
PHONE_PATTERN = re.compile(
    r"(?<![\w+])(?:(?:\+|00)86[ -]?)?1[3-9]\d(?:[ -]?\d{4}){2}(?!\d)"
    r"|(?<![\w])0\d{2,3}-\d{7,8}(?!\d)"
    r"|(?<![\w+])\+\d{1,3}[ -]?\d[\d -]{6,14}\d(?!\d)"
)
# The libraries whose records stay at LOG_LEVEL_LIBRARIES.
LIBRARIES = (
    "telegram",
    "httpx",
    "httpcore",
    "hpack",
    "imapclient",
    "aiosqlite",
    "asyncpg",
    "sqlalchemy",
    "alembic",
    "apscheduler",
    "aiosmtplib",
    "aiohttp",
    "tornado",
    "urllib3",
    "asyncio",
)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """The text without the secrets, tokens, e-mail addresses and phone numbers."""
    for secret in secrets:
        text = text.replace(secret, "***")
    text = TOKEN_PATTERN.sub("***", text)
    text = EMAIL_PATTERN.sub(r"***@\1", text)
    return PHONE_PATTERN.sub("<phone>", text)


class RedactingFormatter(logging.Formatter):
    def __init__(self, secrets: Iterable[str], fmt: str) -> None:
        super().__init__(fmt)
        self.secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record), self.secrets)


def secrets_of(settings: Settings) -> list[str]:
    """Every secret setting's value (SecretStr fields), and the database password, also as it is
    written in the URL (percent-encoded)."""
    values = [
        v.get_secret_value()
        for name in type(settings).model_fields
        if isinstance(v := getattr(settings, name), SecretStr)
    ]
    if settings.database_url:
        password = urlsplit(settings.database_url).password
        if password:
            values += [password, unquote(password)]
    return values


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
    libraries = getattr(logging, settings.log_level_libraries)
    for name in LIBRARIES:
        logger = logging.getLogger(name)
        logger.setLevel(libraries)
        # A library that set a level on a child logger of its own (e.g. "telegram.ext") would
        # escape the parent's: reset the children it already created.
        for child in list(logging.Logger.manager.loggerDict):
            if child.startswith(name + ".") and isinstance(
                existing := logging.Logger.manager.loggerDict[child], logging.Logger
            ):
                existing.setLevel(logging.NOTSET)
    return handler
