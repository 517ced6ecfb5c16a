"""Tables of messaging: the outbox, followed chat migrations, every e-mail received, Telegram
update ids and conversation states.

Imported at the end of storage.models, whose naming convention and column helpers they use.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from storage.models import InboundStatus, OutboxStatus, _bigint, _instant, _json, utcnow


class OutboxMessage(SQLModel, table=True):
    __tablename__ = "outbox_message"
    __table_args__ = (
        # The worker asks for queued rows whose time has come, oldest first.
        sa.Index("ix_outbox_message_status_next_attempt_at", "status", "next_attempt_at"),
        # Each lane claims its own due rows: staff messages never queue ahead of complainants'.
        sa.Index("ix_outbox_message_lane_status_next", "lane", "status", "next_attempt_at"),
        # The auto-reply limit counts one sender's last hour by index, whatever the outbox holds.
        sa.Index("ix_outbox_message_auto_reply_created", "auto_reply_key", "created_at"),
        # The retention prune finds old finished rows without reading the rest.
        sa.Index("ix_outbox_message_status_created", "status", "created_at"),
        # A group's last minute of sends (Telegram: 20 a minute), by index: group chats only.
        sa.Index(
            "ix_outbox_message_group_sent",
            "recipient",
            "sent_at",
            sqlite_where=sa.text("recipient LIKE '-%'"),
            postgresql_where=sa.text("recipient LIKE '-%'"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(unique=True)
    channel: str  # Channel
    recipient: str  # chat id or e-mail address
    payload: dict[str, Any] = _json(nullable=False)
    lane: str = "main"  # "main" (complainants, organisations) or "staff"
    # Staff alerts about one sender share this key: a flood becomes one alert with a count.
    coalesce_key: str | None = Field(default=None, index=True)
    coalesced: int = 0  # how many alerts this row stands for beyond the first
    status: str = OutboxStatus.QUEUED.value
    attempts: int = 0
    next_attempt_at: datetime = _instant()
    last_error: str | None = Field(default=None, sa_type=sa.Text)
    claimed_by: str | None = None
    claimed_at: datetime | None = _instant(nullable=True, default=None)  # renewed: the lease
    case_id: int | None = Field(default=None, foreign_key="case_file.id", index=True)
    email_message_id: str | None = Field(default=None, index=True)
    # An automatic e-mail answer: sha256 of the lower-cased recipient (bounded whatever it is).
    auto_reply_key: str | None = Field(default=None, sa_type=sa.String(64))
    created_at: datetime = _instant(default_factory=utcnow)
    sent_at: datetime | None = _instant(nullable=True, default=None)
    # Sent as a line of a digest (a group over its 20 a minute): the Telegram message it went in.
    sent_in: str | None = None


class CaseMessageId(SQLModel, table=True):
    """Which case an e-mail Message-ID belongs to (ours or the complainant's), so a reply finds
    its case by one indexed row; the outbox rows that also hold ours may be pruned."""

    __tablename__ = "case_message_id"

    id: int | None = Field(default=None, primary_key=True)
    # sha256 of the normalised Message-ID: bounded, however long the header a sender writes.
    message_id_key: str = Field(sa_type=sa.String(64), unique=True)
    case_id: int = Field(foreign_key="case_file.id", index=True)


class ChatMigration(SQLModel, table=True):
    """A Telegram group that became a supergroup: what is queued to the old id goes to the new."""

    __tablename__ = "chat_migration"

    old_chat_id: str = Field(primary_key=True)
    new_chat_id: str
    migrated_at: datetime = _instant(default_factory=utcnow)


class InboundEmail(SQLModel, table=True):
    """Every e-mail received, raw bytes included, stored before it is acted upon.

    Only the very same letter is a duplicate: `message_key` is a hash of its raw bytes (or, for
    a letter too large to fetch, of its header and size), bounded whatever the letter holds.
    Seeing the same letter again under another UID adds a row of status `duplicate` (no bytes,
    `duplicate_of` the first), so `certdesk email log` lists every letter the intake has seen.
    """

    __tablename__ = "inbound_email"
    __table_args__ = (sa.UniqueConstraint("mailbox", "uidvalidity", "uid"),)

    id: int | None = Field(default=None, primary_key=True)
    mailbox: str
    uidvalidity: int | None = _bigint(default=None)
    uid: int | None = _bigint(default=None)
    message_id: str | None = Field(default=None, sa_type=sa.Text)  # cleaned; never a key
    message_key: str = Field(sa_type=sa.String(100), unique=True)
    raw: bytes = Field(sa_type=sa.LargeBinary)
    received_at: datetime = _instant(default_factory=utcnow)
    internal_date: datetime | None = _instant(nullable=True, default=None)  # IMAP INTERNALDATE
    status: str = Field(default=InboundStatus.STORED.value, index=True)
    case_id: int | None = Field(default=None, foreign_key="case_file.id", index=True)
    kind: str | None = None
    problems: list[str] | None = _json()
    # An enquiry sorted by staff (bot.services.enquiries): when, by whom, into what, and why.
    sorted_at: datetime | None = _instant(nullable=True, default=None)
    sorted_by: str | None = None  # staff:<e-mail>
    sorted_as: str | None = None  # case | attached | answered | no_answer
    sorted_note: str | None = Field(default=None, sa_type=sa.Text)
    duplicate_of: int | None = Field(default=None, foreign_key="inbound_email.id")
    from_addr: str | None = Field(default=None, sa_type=sa.Text)  # as parsed, for the log
    subject: str | None = Field(default=None, sa_type=sa.Text)


class TelegramUpdate(SQLModel, table=True):
    """Update ids already handled, so a redelivered update is not acted on twice."""

    __tablename__ = "telegram_update"

    update_id: int = _bigint(primary_key=True, sa_column_kwargs={"autoincrement": False})
    received_at: datetime = _instant(default_factory=utcnow)


class ConversationState(SQLModel, table=True):
    """python-telegram-bot persistence: one row per (conversation name, key)."""

    __tablename__ = "conversation_state"
    __table_args__ = (sa.UniqueConstraint("name", "key"),)

    id: int | None = Field(default=None, primary_key=True)
    name: str
    key: str
    state: Any = _json(nullable=False)


class SendBudget(SQLModel, table=True):
    """A send rate shared by the instances on PostgreSQL (storage.repo.send_budget): a scope's
    next free slot, in Unix seconds on the database's clock (one clock for every host)."""

    __tablename__ = "send_budget"

    scope: str = Field(primary_key=True, sa_type=sa.Text)  # e.g. "telegram:<bot id>"
    next_at: float = Field(sa_type=sa.Double)


# The register's link codes and change reports (after the conventions and helpers above).
