"""No token or password reaches the log, whichever library writes the line."""

from __future__ import annotations

import io
import logging

import pytest

from bot.config import load_settings
from bot.main.logs import RedactingFormatter, secrets_of, setup_logging

TOKEN = "7123456789:AAH3kq-ZpW0oQ9dVQx2Lr5yK7bT1uE8sN4c"


def test_httpx_request_line_and_traceback_lose_the_token() -> None:
    settings = load_settings(telegram_bot_token=TOKEN, smtp_password="s3cret-pw")
    formatter = RedactingFormatter(secrets_of(settings), "%(message)s")
    record = logging.LogRecord(
        "httpx",
        logging.INFO,
        __file__,
        1,
        'HTTP Request: POST https://api.telegram.org/bot%s/getUpdates "HTTP/1.1 200 OK"',
        (TOKEN,),
        None,
    )
    assert TOKEN not in formatter.format(record) and "/bot***/getUpdates" in formatter.format(
        record
    )
    try:
        raise ConnectionError(f"login failed with s3cret-pw at https://x/bot{TOKEN}/getMe")
    except ConnectionError:
        import sys

        failing = logging.LogRecord("bot", logging.ERROR, __file__, 1, "boom", (), sys.exc_info())
    text = formatter.format(failing)
    assert "s3cret-pw" not in text and TOKEN not in text and "ConnectionError" in text


def test_a_token_not_in_the_settings_is_still_recognised() -> None:
    formatter = RedactingFormatter([], "%(message)s")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, f"url .../bot{TOKEN}/x", (), None)
    assert TOKEN not in formatter.format(record)


def test_setup_keeps_chatty_libraries_quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(telegram_bot_token=TOKEN)
    root = logging.getLogger()
    before = root.level
    setup_logging(settings, level="INFO")
    handler = setup_logging(settings, level="INFO")  # a second run in one process
    try:
        assert sum(isinstance(h.formatter, RedactingFormatter) for h in root.handlers) == 1
        stream = io.StringIO()
        handler.setStream(stream)  # type: ignore[attr-defined]
        logging.getLogger("httpx").info("POST https://api.telegram.org/bot%s/getMe", TOKEN)
        logging.getLogger("bot.main.runner").info("started with %s", TOKEN)
        assert stream.getvalue().count("\n") == 1 and TOKEN not in stream.getvalue()
        assert "started with ***" in stream.getvalue()
    finally:
        root.removeHandler(handler)
        root.setLevel(before)
