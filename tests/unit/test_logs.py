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


def _capture(settings: object, level: str | None = None) -> tuple[logging.Handler, io.StringIO]:
    handler = setup_logging(settings, level=level)  # type: ignore[arg-type]
    stream = io.StringIO()
    handler.setStream(stream)  # type: ignore[attr-defined]
    return handler, stream


LIBRARY_LOGGERS = [
    "telegram.ext.Updater",
    "httpx",
    "imapclient.imaplib",
    "aiosqlite",
    "sqlalchemy.engine.Engine",
    "apscheduler.scheduler",
]


def test_libraries_stay_quiet_at_debug_unless_asked() -> None:
    root = logging.getLogger()
    before = root.level
    # A library may have set a level on its own child logger already.
    logging.getLogger("telegram.ext.Updater").setLevel(logging.DEBUG)
    handler, stream = _capture(load_settings(_env_file=None, log_level="DEBUG"))
    try:
        for name in LIBRARY_LOGGERS:
            logging.getLogger(name).debug("raw update %s", name)
            logging.getLogger(name).info("request %s", name)
        logging.getLogger("bot.scheduler.jobs").debug("ours")
        assert stream.getvalue().count("\n") == 1 and "ours" in stream.getvalue()
        root.removeHandler(handler)
        loud = load_settings(_env_file=None, log_level="DEBUG", log_level_libraries="DEBUG")
        handler, stream = _capture(loud)
        logging.getLogger("httpx").debug("asked for")
        assert "asked for" in stream.getvalue()
    finally:
        root.removeHandler(handler)
        root.setLevel(before)
        for name in ("telegram", "httpx", "imapclient", "aiosqlite", "sqlalchemy", "apscheduler"):
            logging.getLogger(name).setLevel(logging.WARNING)


@pytest.mark.parametrize(
    ("line", "hidden", "kept"),
    [
        ("letter from 李四 <lisi.zhang@example.cn> stored", "lisi.zhang", "@example.cn"),
        ("call 13800138000 or +86 138 0013 8000", "138", "call"),
        ("office 027-87654321", "87654321", "office"),
        ("fax +44 20 7946 0958 please", "7946", "please"),
    ],
)
def test_personal_data_is_masked_in_log_lines(line: str, hidden: str, kept: str) -> None:
    formatter = RedactingFormatter([], "%(message)s")
    record = logging.LogRecord("bot", logging.INFO, __file__, 1, line, (), None)
    text = formatter.format(record)
    assert hidden not in text and kept in text, text
    # …and ids, timestamps and dates are not taken for phone numbers.
    ids = "update 1763604000 chat -1001234567890 at 2026-12-01 10:00:00+08:00 case 20261201"
    plain = logging.LogRecord("bot", logging.INFO, __file__, 1, f"{line} {ids}", (), None)
    assert formatter.format(plain).endswith(ids)


def test_the_database_password_is_redacted_in_logs() -> None:
    settings = load_settings(
        _env_file=None, database_url="postgresql+asyncpg://certdesk:Pg%25pw-9x@db/certdesk"
    )
    formatter = RedactingFormatter(secrets_of(settings), "%(message)s")
    record = logging.LogRecord(
        "sqlalchemy", logging.ERROR, __file__, 1, "login as certdesk/%s failed", ("Pg%pw-9x",), None
    )
    assert "Pg%pw-9x" not in formatter.format(record)
    assert {"Pg%25pw-9x", "Pg%pw-9x"} <= set(secrets_of(settings))
