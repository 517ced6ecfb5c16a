"""The key that signs case histories (bot.domain.history): kept out of the database it protects.

From HISTORY_HMAC_KEY when set (the same on every instance). Unset, a random key is generated
once and kept in DATA_DIR/history.key (mode 0600) so that a local desk works out of the box; a
warning says so at start-up, since several instances with their own DATA_DIR would then sign
with different keys, and a copy of the data folder carries the key with it.

Every session of a desk carries the key in `session.info` (`bind`), so whatever appends an
event signs it without each service passing the key along.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from pathlib import Path

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.config import Settings

log = logging.getLogger(__name__)

KEY_FILE = "history.key"
MIN_LENGTH = 16
_INFO = "certdesk_history_key"


class HistoryKeyError(ValueError):
    """No usable key: what to set or fix."""


def key_path(settings: Settings) -> Path:
    return settings.data_dir / KEY_FILE


def load_history_key(settings: Settings, *, create: bool = True) -> bytes:
    """The configured key, else the one kept in DATA_DIR (generated when `create`)."""
    if settings.history_hmac_key is not None:
        key = settings.history_hmac_key.get_secret_value().strip().encode("utf-8")
        if len(key) < MIN_LENGTH:
            raise HistoryKeyError(
                f"HISTORY_HMAC_KEY is too short: at least {MIN_LENGTH} characters (32 random "
                "ones are best)"
            )
        return key
    path = key_path(settings)
    if not path.exists():
        if not create:
            raise HistoryKeyError(
                f"no history key: HISTORY_HMAC_KEY is not set and {path} does not exist "
                "(set HISTORY_HMAC_KEY, or DATA_DIR to the desk's data folder)"
            )
        _generate(path)
        log.info("generated a new history key in %s", path)
    return _read(path)


def warn_if_unset(settings: Settings) -> None:
    """The start-up warning of a bot whose key lives next to its data (fine locally)."""
    if settings.history_hmac_key is None:
        log.warning(
            "HISTORY_HMAC_KEY is not set: case histories are signed with the key in %s. Set "
            "HISTORY_HMAC_KEY (the same on every instance, kept away from the database and its "
            "backups) for a real deployment.",
            key_path(settings),
        )


def _generate(path: Path) -> None:
    """Write a new key atomically: two processes starting at once end up with the same one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(secrets.token_hex(32) + "\n")
            out.flush()
            os.fsync(out.fileno())
        # Fails if another process got there first: theirs is kept, and read by both.
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _read(path: Path) -> bytes:
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)  # a key readable by others is no key
        log.warning("%s was readable by other users: made it 0600", path)
    key = path.read_text(encoding="ascii").strip().encode("ascii")
    if len(key) < MIN_LENGTH:
        raise HistoryKeyError(f"{path} holds no usable key (too short): restore it from backup")
    return key


def bind(sessions: async_sessionmaker[AsyncSession], key: bytes) -> None:
    """Give every session `sessions` opens from now on the history key."""
    info = dict(sessions.kw.get("info") or {})
    info[_INFO] = key
    sessions.configure(info=info)


def key_of(session: AsyncSession) -> bytes:
    key = session.info.get(_INFO)
    if not isinstance(key, bytes):
        raise RuntimeError("this session has no history key (storage.history_key.bind)")
    return key


__all__ = ["HistoryKeyError", "bind", "key_of", "key_path", "load_history_key", "warn_if_unset"]
