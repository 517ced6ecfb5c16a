"""SQLite's WAL copied back into the database file by a thread of its own, not by a commit.

By default the commit that takes the WAL past 1,000 pages checkpoints it on the spot: copies the
pages into the database file and syncs both, while the caller waits (~80 ms for a chunk of 500
letters, a fifth of its whole transaction). Here every connection of the engine checkpoints only
past BACKSTOP_PAGES (a checkpointer that fell behind or stopped still bounds the WAL), and after
commits a thread of the engine's own runs a PASSIVE checkpoint — readers and writers go on
meanwhile — at most once every INTERVAL_SECONDS, and again when the connection goes back to
the pool (the "commit" event comes before the commit).
"""

from __future__ import annotations

import contextlib
import logging
import select
import sqlite3
import threading
import weakref
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)

BACKSTOP_PAGES = 16_000  # ~64 MB of 4 KiB pages: what a commit checkpoints itself past
INTERVAL_SECONDS = 0.25
STOP_SECONDS = 5.0  # at most, waiting for a checkpoint in progress when the engine is disposed


class Checkpointer:
    def __init__(self, path: Path) -> None:
        self.path = path.resolve()  # a relative path would follow a later chdir
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._due = threading.Event()  # the running thread's
        self._stop = threading.Event()  # the running thread's

    def poke(self) -> None:
        """A commit happened: checkpoint soon (a thread started when none is running)."""
        with self._lock:
            self._due.set()
            if self._thread is None or not self._thread.is_alive():
                self._due, self._stop = threading.Event(), threading.Event()
                self._due.set()
                self._thread = threading.Thread(
                    target=self._run, args=(self._due, self._stop), name="sqlite-checkpoint",
                    daemon=True,
                )  # fmt: skip
                self._thread.start()

    def stop(self) -> None:
        """End the thread and close its connection before returning: once an engine is
        disposed of, no connection of it holds the file (the last one to close folds the WAL
        into the file, which may then be copied alone). Quick: the thread waits on events, or
        runs one PASSIVE checkpoint. A later poke starts a new thread (a disposed engine may be
        used again)."""
        with self._lock:
            thread, self._thread = self._thread, None
            self._stop.set()
            self._due.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=STOP_SECONDS)

    def _run(self, due: threading.Event, stop: threading.Event) -> None:
        conn: sqlite3.Connection | None = None
        try:
            while True:
                due.wait()
                if stop.is_set():
                    return
                due.clear()
                try:
                    if conn is None:
                        # mode=rw: never creates a file (one made here would not be 0600).
                        uri = f"{self.path.as_uri()}?mode=rw"
                        conn = sqlite3.connect(uri, uri=True, timeout=0, check_same_thread=False)
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:  # a backstop remains: the commits themselves
                    log.debug("WAL checkpoint skipped: %s", exc)
                # select's relative timeout, not a sleep or a timed wait: both take an absolute
                # deadline, which libfaketime shifts (never reached, or refused with EINVAL).
                select.select([], [], [], INTERVAL_SECONDS)
        finally:
            if conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()


def attach(engine: AsyncEngine, path: Path) -> Checkpointer:
    """Checkpoint `engine`'s SQLite file in the background; stopped when the engine is
    disposed of (or collected)."""
    checkpointer = Checkpointer(path)
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _backstop(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")
        cursor.close()

    # "commit" fires before the commit is done: a checkpoint run at once could miss it. The
    # connection's return to the pool comes after it; a connection kept across commits pokes
    # at each of them, so only its last waits for the next poke.
    @event.listens_for(sync_engine, "commit")
    def _committing(_conn: Any) -> None:
        checkpointer.poke()

    @event.listens_for(sync_engine, "checkin")
    def _returned(_dbapi_conn: Any, _record: Any) -> None:
        checkpointer.poke()

    @event.listens_for(sync_engine, "engine_disposed")
    def _disposed(_engine: Any) -> None:
        checkpointer.stop()

    weakref.finalize(engine, checkpointer.stop)  # never disposed of: stopped when collected
    return checkpointer


__all__ = ["Checkpointer", "attach"]
