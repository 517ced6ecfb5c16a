"""Configuration: one validated model, loaded once from the environment and `.env`."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.domain.alerts import WorkHours


class ConfigError(SystemExit):
    """Start-up stops with one line naming the variable and what is expected."""

    def __init__(self, line: str) -> None:
        super().__init__(2)
        self.line = line

    def __str__(self) -> str:
        return self.line


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
    staff_user_ids: list[int] = Field(default_factory=list)
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

    # time and alerts
    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")
    work_hours: str = Field(default="09:00-17:30", pattern=r"^\d{2}:\d{2}-\d{2}:\d{2}$")
    warning_lead_working_days: list[int] = Field(default_factory=lambda: [3, 0])
    escalation_emails: list[str] = Field(default_factory=list)
    # staff alerts where the staff are (Telegram is blocked in mainland China)
    wecom_webhook_url: SecretStr | None = None  # the key is in the URL: a secret too
    dingtalk_webhook_url: SecretStr | None = None
    dingtalk_secret: SecretStr | None = None
    feishu_webhook_url: SecretStr | None = None
    feishu_secret: SecretStr | None = None
    staff_alert_emails: list[str] = Field(default_factory=list)
    console_base_url: str | None = Field(default=None, pattern=r"^https?://")
    telegram_rate_per_second: float = Field(default=30.0, gt=0)
    outbox_lanes: int = Field(default=1, ge=1, le=32)
    # A claim not renewed for this long is a dead worker's: another takes the message over.
    outbox_lease_seconds: float = Field(default=30.0, ge=1, le=600)

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
        raise ConfigError(f"configuration error: {var}: {err['msg']}") from None
