"""The history key: from HISTORY_HMAC_KEY, else made once in DATA_DIR, private to its owner."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest

from bot.config import load_settings
from storage.history_key import HistoryKeyError, key_path, load_history_key, warn_if_unset


def test_configured_key_wins_and_must_be_long_enough(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, history_hmac_key="s" * 32)
    assert load_history_key(settings) == b"s" * 32
    assert not key_path(settings).exists()
    assert "s" * 32 not in repr(settings)  # a secret, like the other keys
    with pytest.raises(HistoryKeyError, match="too short"):
        load_history_key(load_settings(data_dir=tmp_path, history_hmac_key="short"))


def test_unset_key_is_made_once_0600_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = load_settings(data_dir=tmp_path / "data")
    with pytest.raises(HistoryKeyError, match="HISTORY_HMAC_KEY"):
        load_history_key(settings, create=False)
    assert not (tmp_path / "data").exists()
    with caplog.at_level(logging.WARNING, logger="storage.history_key"):
        key = load_history_key(settings)
        assert caplog.text == ""  # a CLI command says nothing; the bot's start-up warns
        warn_if_unset(settings)
        assert "HISTORY_HMAC_KEY is not set" in caplog.text
        caplog.clear()
        warn_if_unset(load_settings(data_dir=tmp_path, history_hmac_key="s" * 32))
        assert caplog.text == ""
    path = key_path(settings)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(key) == 64 and load_history_key(settings) == key
    assert load_history_key(settings, create=False) == key
    assert [p.name for p in path.parent.iterdir()] == ["history.key"]  # no temporary left

    path.chmod(0o644)  # a careless copy: made private again, and said so
    assert load_history_key(settings) == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
