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
