"""Configuration: every setting documented, bad values named in one line, secrets hidden."""

import re
from pathlib import Path

import pytest

from bot.config import ConfigError, Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_is_in_env_example_with_a_comment() -> None:
    lines = (ROOT / ".env.example").read_text(encoding="utf-8").splitlines()
    documented = {}
    for i, line in enumerate(lines):
        if m := re.match(r"^([A-Z_]+)=", line):
            documented[m.group(1)] = any(lines[j].startswith("#") for j in range(max(0, i - 3), i))
    for name in Settings.model_fields:
        assert name.upper() in documented, f"{name.upper()} missing from .env.example"
    assert all(documented.values()), [k for k, v in documented.items() if not v]


def test_env_example_itself_loads(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text((ROOT / ".env.example").read_text(encoding="utf-8"))
    settings = load_settings()
    assert settings.profile == "ggbz"
    assert settings.effective_database_url.startswith("sqlite+aiosqlite:///")


def test_malformed_setting_stops_with_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", "mysql://x")
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert str(err.value).startswith("configuration error: DATABASE_URL:")
    assert "\n" not in str(err.value)


def test_secrets_stay_out_of_repr(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123:very-secret")
    monkeypatch.setenv("SMTP_PASSWORD", "hunter2")
    settings = load_settings()
    assert "very-secret" not in repr(settings) and "hunter2" not in repr(settings)
    assert settings.telegram_bot_token is not None
    assert settings.telegram_bot_token.get_secret_value() == "123:very-secret"


def test_the_database_password_is_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://certdesk:pa%40ss-w0rd@db.internal/cd")
    monkeypatch.setenv("IMAP_PASSWORD", "imap-pw-123")
    settings = load_settings(_env_file=None)
    for shown in (
        repr(settings),
        str(settings),
        settings.model_dump_json(),
        str(settings.model_dump()),
    ):
        assert "pa%40ss-w0rd" not in shown and "imap-pw-123" not in shown, shown
    assert "certdesk:***@db.internal" in repr(settings)
    # The attribute itself still connects.
    assert settings.effective_database_url.endswith("certdesk:pa%40ss-w0rd@db.internal/cd")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("111,222", [111, 222]), ("[111, 222]", [111, 222]), (" 111 ", [111]), ("[]", [])],
)
def test_lists_take_json_or_commas(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: list[int]
) -> None:
    monkeypatch.setenv("STAFF_USER_IDS", value)
    monkeypatch.setenv("STAFF_ALERT_EMAILS", "a@example.cn, b@example.cn")
    settings = load_settings(_env_file=None)
    assert settings.staff_user_ids == expected
    assert settings.staff_alert_emails == ["a@example.cn", "b@example.cn"]


@pytest.mark.parametrize("value", ["111,abc", "[111", "{1: 2}"])
def test_a_bad_list_is_one_line_naming_it(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("STAFF_USER_IDS", value)
    with pytest.raises(ConfigError) as err:
        load_settings(_env_file=None)
    assert str(err.value).startswith("configuration error: STAFF_USER_IDS:"), str(err.value)
    assert "\n" not in str(err.value)
