"""The intake's IMAP connection: list ids, read sizes, fetch, file away, wait (IDLE).

imapclient is blocking: every method here is called through `asyncio.to_thread`.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Sequence
from datetime import datetime

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from bot.desk import Desk

IMAP_TIMEOUT_SECONDS = 60.0
SEEN = b"\\Seen"


class IntakeError(Exception):
    """The mailbox could not be reached or used (connection, login, a command refused)."""


class ImapMailbox:
    """One logged-in connection to the intake folder."""

    def __init__(self, desk: Desk) -> None:
        s = desk.settings
        if not s.imap_host or not s.imap_user:
            raise IntakeError("IMAP_HOST and IMAP_USER must be set for the e-mail intake")
        self.host, self.port, self.use_ssl = s.imap_host, s.imap_port, s.imap_ssl
        self.user = s.imap_user
        self.password = s.imap_password.get_secret_value() if s.imap_password else ""
        self.folder = s.imap_folder
        self.processed_folder = s.imap_processed_folder
        self.quarantine_folder = s.imap_quarantine_folder
        self.name = f"{self.user}@{self.host}/{self.folder}"
        self.client: IMAPClient | None = None
        self.uidvalidity = 0
        self.can_idle = False
        self.can_move = False
        self.idling = False

    def open(self) -> None:
        context = ssl.create_default_context() if self.use_ssl else None
        client = IMAPClient(
            self.host,
            port=self.port,
            ssl=self.use_ssl,
            ssl_context=context,
            timeout=IMAP_TIMEOUT_SECONDS,
        )
        client.normalise_times = False  # INTERNALDATE with its own offset, not machine-local
        try:
            client.login(self.user, self.password)
            for folder in (self.processed_folder, self.quarantine_folder):
                if not client.folder_exists(folder):
                    with contextlib.suppress(IMAPClientError):  # another worker just made it
                        client.create_folder(folder)
            info = client.select_folder(self.folder)
            self.uidvalidity = int(info[b"UIDVALIDITY"])
            self.can_idle = client.has_capability("IDLE")
            self.can_move = client.has_capability("MOVE")
        except BaseException:
            with contextlib.suppress(Exception):
                client.logout()
            raise
        self.client = client

    def _client(self) -> IMAPClient:
        if self.client is None:
            raise IntakeError("mailbox not open")
        if self.idling:
            self.client.idle_done()
            self.idling = False
        return self.client

    def uids(self) -> list[int]:
        """The UIDs in the intake folder (UID SEARCH: ids only, nothing of the letters)."""
        return sorted(self._client().search(["NOT", "DELETED"]))

    def sizes(self, uids: Sequence[int]) -> dict[int, int]:
        """RFC822.SIZE of each letter still there, so none is fetched before its size is known."""
        return {uid: size for uid, (size, _) in self.sizes_and_dates(uids).items()}

    def sizes_and_dates(self, uids: Sequence[int]) -> dict[int, tuple[int, datetime | None]]:
        """RFC822.SIZE and INTERNALDATE (when the server received it, with its offset) of each
        letter still there: the size decides whether it is fetched, the date is its receipt."""
        data = self._client().fetch(list(uids), ["RFC822.SIZE", "INTERNALDATE"])
        out: dict[int, tuple[int, datetime | None]] = {}
        for uid, item in data.items():
            if b"RFC822.SIZE" in item:
                when = item.get(b"INTERNALDATE")
                aware = when if isinstance(when, datetime) and when.tzinfo is not None else None
                out[uid] = (int(item[b"RFC822.SIZE"]), aware)
        return out

    def fetch(self, uids: Sequence[int]) -> dict[int, bytes]:
        """The whole letters (BODY.PEEK[]: they stay unread on the server)."""
        data = self._client().fetch(list(uids), ["BODY.PEEK[]"])
        return {uid: item[b"BODY[]"] for uid, item in data.items() if b"BODY[]" in item}

    def fetch_headers(self, uids: Sequence[int]) -> dict[int, bytes]:
        """Only the header block of each letter (what is kept of a letter too large to fetch)."""
        data = self._client().fetch(list(uids), ["BODY.PEEK[HEADER]"])
        key = b"BODY[HEADER]"
        return {uid: item[key] for uid, item in data.items() if key in item}

    def file(self, uids: Sequence[int], folder: str) -> None:
        """Mark read and move out of the intake folder (COPY + EXPUNGE without MOVE)."""
        client = self._client()
        client.add_flags(list(uids), [SEEN], silent=True)  # no FETCH answer per letter
        if self.can_move:
            client.move(list(uids), folder)
        else:
            client.copy(list(uids), folder)
            client.delete_messages(list(uids))
            if client.has_capability("UIDPLUS"):
                client.uid_expunge(list(uids))
            else:
                client.expunge()

    def wait(self, seconds: float) -> bool:
        """IDLE (or a NOOP poll) for up to `seconds`; True when the server announced something."""
        client = self.client
        if client is None:
            raise IntakeError("mailbox not open")
        if not self.can_idle:
            return bool(client.noop()[1])
        if not self.idling:
            client.idle()
            self.idling = True
        return bool(client.idle_check(timeout=seconds))

    def close(self) -> None:
        client, self.client = self.client, None
        if client is None:
            return
        with contextlib.suppress(Exception):
            if self.idling:
                client.idle_done()
        self.idling = False
        with contextlib.suppress(Exception):
            client.logout()


def reason(exc: BaseException) -> str:
    """A short, loggable reason for an IMAP or network failure (never the credentials)."""
    first = exc.args[0] if exc.args else ""
    text = first.decode("utf-8", "replace") if isinstance(first, bytes) else str(exc)
    text = text.strip() or type(exc).__name__
    return text[:200]
