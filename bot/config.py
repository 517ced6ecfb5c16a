"""Configuration: one validated model, loaded once from the environment and `.env`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, ValidationError, field_serializer, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from bot.domain.alerts import WorkHours


class ConfigError(SystemExit):
    """Start-up stops with one line naming the variable and what is expected."""

    def __init__(self, line: str) -> None:
        super().__init__(2)
        self.line = line

    def __str__(self) -> str:
        return self.line


def masked_url(url: str) -> str:
    """A database URL as it may be shown: its password replaced by ***."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "***"
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def _list(value: Any) -> Any:
    """A list setting from the environment: JSON (`[111, 222]`) or commas (`111,222`)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            raise ValueError("expected a JSON list like [111, 222], or 111,222") from None
    return [item.strip() for item in text.split(",") if item.strip()]


IntList = Annotated[list[int], NoDecode]
StrList = Annotated[list[str], NoDecode]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,  # `VAR=` in .env means "use the default"
        extra="ignore",
        case_sensitive=False,
    )

    # storage
    data_dir: Path = Path("./data")
    database_url: str = ""
    # the local terminal chat's own folder and SQLite database (default: DATA_DIR/local)
    local_data_dir: Path | None = None
    history_hmac_key: SecretStr | None = None  # signs case histories (storage.history_key)

    # policy
    profile: str = "ggbz"
    calendar_overrides: Path | None = None
    case_ref_prefix: str = Field(default="TS", pattern=r"^[A-Z]{1,6}$")
    default_locale: str = Field(default="zh_CN", pattern=r"^(zh_CN|en)$")

    # telegram
    telegram_bot_token: SecretStr | None = None
    telegram_api_base_url: str = "https://api.telegram.org/bot"
    telegram_file_base_url: str = "https://api.telegram.org/file/bot"
    webhook_url: str | None = None
    webhook_listen: str = "0.0.0.0"
    webhook_port: int = Field(default=8443, ge=1, le=65535)
    webhook_secret: SecretStr | None = None
    staff_user_ids: IntList = Field(default_factory=list)
    staff_chat_id: int | None = None
    conversation_timeout_seconds: int = Field(default=900, ge=30)
    max_upload_bytes: int = Field(default=20_000_000, ge=1)
    flood_max_updates: int = Field(default=30, ge=1)
    flood_window_seconds: float = Field(default=10.0, gt=0)

    # e-mail in
    imap_host: str | None = None
    imap_port: int = Field(default=993, ge=1, le=65535)
    imap_ssl: bool = True
    imap_user: str | None = None
    imap_password: SecretStr | None = None
    imap_folder: str = "INBOX"
    imap_processed_folder: str = "Processed"
    imap_quarantine_folder: str = "Quarantine"
    imap_poll_seconds: int = Field(default=60, ge=1)

    # e-mail out
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_security: str = Field(default="starttls", pattern=r"^(starttls|tls|none)$")
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    mail_from: str = "certdesk@example.com"
    mail_domain: str = "example.com"
    auto_replies_per_sender_per_hour: int = Field(default=5, ge=0)
    # Sent or cancelled outbox rows older than this many days are deleted daily; 0 keeps them.
    outbox_retention_days: int = Field(default=180, ge=0)

    # time and alerts
    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")
    # telegram, httpx, imapclient, sqlalchemy…: quiet even at LOG_LEVEL=DEBUG unless asked
    log_level_libraries: str = Field(default="WARNING", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")
    work_hours: str = Field(default="09:00-17:30", pattern=r"^\d{2}:\d{2}-\d{2}:\d{2}$")
    warning_lead_working_days: IntList = Field(default_factory=lambda: [3, 0])
    escalation_emails: StrList = Field(default_factory=list)
    # staff alerts where the staff are (Telegram is blocked in mainland China)
    wecom_webhook_url: SecretStr | None = None  # the key is in the URL: a secret too
    dingtalk_webhook_url: SecretStr | None = None
    dingtalk_secret: SecretStr | None = None
    feishu_webhook_url: SecretStr | None = None
    feishu_secret: SecretStr | None = None
    staff_alert_emails: StrList = Field(default_factory=list)
    console_base_url: str | None = Field(default=None, pattern=r"^https?://")
    # staff console (handlers/console): served by `certdesk console`
    console_listen: str = "127.0.0.1"
    console_port: int | None = Field(default=None, ge=1, le=65535)
    console_secret_key: SecretStr | None = None  # signs the session cookie; 32+ characters
    password_time_cost: int = Field(default=3, ge=1)  # argon2id cost of staff passwords
    password_memory_kib: int = Field(default=65536, ge=8)
    telegram_rate_per_second: float = Field(default=30.0, gt=0)
    outbox_lanes: int = Field(default=1, ge=1, le=32)
    # A claim not renewed for this long is a dead worker's: another takes the message over.
    outbox_lease_seconds: float = Field(default=30.0, ge=1, le=600)

    @field_validator(
        "staff_user_ids",
        "warning_lead_working_days",
        "escalation_emails",
        "staff_alert_emails",
        mode="before",
    )
    @classmethod
    def _lists(cls, v: Any) -> Any:
        return _list(v)

    # The database URL may carry a password: never in repr/str or a dump (use the attribute).
    @field_serializer("database_url")
    def _hide_password(self, v: str) -> str:
        return masked_url(v)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            yield name, masked_url(value) if name == "database_url" else value

    @field_validator("database_url")
    @classmethod
    def _known_driver(cls, v: str) -> str:
        if v and not v.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError(
                "expected sqlite+aiosqlite:///PATH or postgresql+asyncpg://USER@HOST/DB"
            )
        return v

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'certdesk.db'}"

    @field_validator("work_hours")
    @classmethod
    def _real_hours(cls, v: str) -> str:
        try:
            hours = WorkHours.parse(v)
        except ValueError:
            raise ValueError("expected HH:MM-HH:MM with real times, e.g. 09:00-17:30") from None
        if hours.start >= hours.end:
            raise ValueError("the start must be before the end, e.g. 09:00-17:30")
        return v

    @property
    def work_window(self) -> WorkHours:
        """WORK_HOURS as times (validated at start)."""
        return WorkHours.parse(self.work_hours)


def load_settings(**overrides: object) -> Settings:
    """Load settings, turning a validation error into one line naming the variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        err = exc.errors()[0]
        var = str(err["loc"][0]).upper() if err["loc"] else "?"
        msg = err["msg"].removeprefix("Value error, ")
        raise ConfigError(f"configuration error: {var}: {msg}") from None
    except SettingsError as exc:  # a value the environment source could not decode
        field = str(exc).split('"')[1] if '"' in str(exc) else "?"
        raise ConfigError(f"configuration error: {field.upper()}: cannot parse the value") from None
