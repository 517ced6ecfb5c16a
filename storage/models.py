"""The tables. Plain data: no business rules here, only shapes, keys and indexes.

Conventions:
- instants are UTC-aware (`UTCDateTime`); calendar dates (deadlines, decisions) are `date`;
- statuses are plain strings checked in Python (the StrEnums below), never database enums,
  so adding a status needs no migration;
- Telegram ids are 64-bit (`BigInteger`);
- no ORM relationships: queries live in storage/repo and load what they need explicitly,
  which also keeps async code free of lazy loads.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import JSON, Field, SQLModel

from storage.types import UTCDateTime

# Deterministic constraint names: SQLite batch migrations and later ALTERs need a name to
# address a constraint by. Must be set before any table below is declared.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """Fallback for row bookkeeping (`created_at`); services pass their clock's time instead."""
    return datetime.now(UTC)


def _instant(*, nullable: bool = False, **kw: Any) -> Any:
    return Field(sa_type=UTCDateTime, nullable=nullable, **kw)


def _json(*, nullable: bool = True, **kw: Any) -> Any:
    return Field(sa_type=JSON, nullable=nullable, **kw)


def _bigint(**kw: Any) -> Any:
    return Field(sa_type=sa.BigInteger, **kw)


# The value sets live with the rules (bot.domain.vocabulary); re-exported for the repositories.
from bot.domain.vocabulary import CertificateStatus as CertificateStatus  # noqa: E402
from bot.domain.vocabulary import Channel as Channel  # noqa: E402
from bot.domain.vocabulary import DocumentStatus as DocumentStatus  # noqa: E402
from bot.domain.vocabulary import InboundStatus as InboundStatus  # noqa: E402
from bot.domain.vocabulary import OutboxStatus as OutboxStatus  # noqa: E402
from bot.domain.vocabulary import Severity as Severity  # noqa: E402

# --- applicants ---------------------------------------------------------------------------------


class Organisation(SQLModel, table=True):
    __tablename__ = "organisation"

    id: int | None = Field(default=None, primary_key=True)
    name: str
    uscc: str | None = Field(default=None, unique=True)  # 统一社会信用代码, checked on import
    locale: str = "zh_CN"
    eligibility_answers: dict[str, Any] | None = _json()
    eligibility_verdict: dict[str, Any] | None = _json()
    eligibility_checked_at: datetime | None = _instant(nullable=True, default=None)
    created_at: datetime = _instant(default_factory=utcnow)


class Contact(SQLModel, table=True):
    __tablename__ = "contact"

    id: int | None = Field(default=None, primary_key=True)
    organisation_id: int | None = Field(default=None, foreign_key="organisation.id", index=True)
    telegram_user_id: int | None = _bigint(default=None, unique=True)
    telegram_chat_id: int | None = _bigint(default=None)
    email: str | None = Field(default=None, index=True)
    name: str | None = None
    locale: str = "zh_CN"
    created_at: datetime = _instant(default_factory=utcnow)


class StoredFile(SQLModel, table=True):
    """A file kept under the data folder at a path derived from its content hash."""

    __tablename__ = "stored_file"

    id: int | None = Field(default=None, primary_key=True)
    sha256: str = Field(sa_type=sa.String(64), unique=True)
    size: int = _bigint()
    content_type: str
    path: str  # relative to the data folder
    created_at: datetime = _instant(default_factory=utcnow)


class Application(SQLModel, table=True):
    __tablename__ = "application"

    id: int | None = Field(default=None, primary_key=True)
    ref: str = Field(unique=True)
    organisation_id: int = Field(foreign_key="organisation.id", index=True)
    contact_id: int = Field(foreign_key="contact.id", index=True)
    scheme: str
    scope: str | None = Field(default=None, sa_type=sa.Text)
    headcount: int | None = None
    sites: int = 1
    stage: str = "draft"
    created_at: datetime = _instant(default_factory=utcnow)
    updated_at: datetime = _instant(default_factory=utcnow, sa_column_kwargs={"onupdate": utcnow})


class ApplicationEvent(SQLModel, table=True):
    """Stage history of an application."""

    __tablename__ = "application_event"

    id: int | None = Field(default=None, primary_key=True)
    application_id: int = Field(foreign_key="application.id", index=True)
    stage: str
    at: datetime = _instant()
    note: str | None = Field(default=None, sa_type=sa.Text)
    # Who moved it (staff:<e-mail>; None: the applicant's uploads or the system), and what
    # else was done at this stage (a document reviewed, a certificate issued): bot.services.
    actor: str | None = None
    type: str | None = None
    data: dict[str, Any] | None = _json()


class Document(SQLModel, table=True):
    __tablename__ = "document"

    id: int | None = Field(default=None, primary_key=True)
    application_id: int = Field(foreign_key="application.id", index=True)
    item_id: str  # checklist item of the profile
    stored_file_id: int = Field(foreign_key="stored_file.id", index=True)
    original_name: str
    status: str = DocumentStatus.RECEIVED.value
    reason: str | None = Field(default=None, sa_type=sa.Text)
    uploaded_at: datetime = _instant()
    reviewed_at: datetime | None = _instant(nullable=True, default=None)
    reviewed_by: str | None = None


# --- staff --------------------------------------------------------------------------------------


class StaffMember(SQLModel, table=True):
    """The staff directory: who signs in to the console, and whom impartiality compares."""

    __tablename__ = "staff"

    id: int | None = Field(default=None, primary_key=True)
    name: str
    email: str = Field(unique=True)  # stored lower-cased: the sign-in name
    telegram_user_id: int | None = _bigint(default=None, unique=True)
    role: str = "staff"  # bot.domain.staff.Role
    password_hash: str
    disabled: bool = False
    created_at: datetime = _instant(default_factory=utcnow)


# --- certificates -------------------------------------------------------------------------------


class Certificate(SQLModel, table=True):
    __tablename__ = "certificate"

    id: int | None = Field(default=None, primary_key=True)
    number: str = Field(unique=True)
    organisation_id: int | None = Field(default=None, foreign_key="organisation.id", index=True)
    holder: str
    standard: str
    scope: str | None = Field(default=None, sa_type=sa.Text)
    status: str = CertificateStatus.VALID.value
    decided_on: date
    stage2_end_on: date | None = None
    expires_on: date
    last_surveillance_on: date | None = None
    suspended_on: date | None = None  # start and length are published (GGBZ §9.4)
    suspension_months: int | None = None
    suspended_until: date | None = None  # suspended_on + suspension_months
    updated_at: datetime = _instant(default_factory=utcnow, sa_column_kwargs={"onupdate": utcnow})


class CertificateEvent(SQLModel, table=True):
    """What staff did to a certificate (suspended, withdrawn, restored, a link code given, an
    import from the console), with who did it (staff:<e-mail>): the register's history."""

    __tablename__ = "certificate_event"

    id: int | None = Field(default=None, primary_key=True)
    certificate_id: int = Field(foreign_key="certificate.id", index=True)
    at: datetime = _instant()
    actor: str
    type: str
    data: dict[str, Any] | None = _json()


class Nonconformity(SQLModel, table=True):
    __tablename__ = "nonconformity"

    id: int | None = Field(default=None, primary_key=True)
    certificate_id: int = Field(foreign_key="certificate.id", index=True)
    severity: str  # Severity
    raised_on: date
    audit_type: str | None = None  # initial | surveillance | recertification (GGBZ §5.10.3)
    closed_on: date | None = None
    description: str | None = Field(default=None, sa_type=sa.Text)


# --- appeals, complaints, disputes --------------------------------------------------------------


class Case(SQLModel, table=True):
    """An appeal, complaint or dispute ("case" is an SQL keyword, hence the table name)."""

    __tablename__ = "case_file"

    id: int | None = Field(default=None, primary_key=True)
    ref: str = Field(unique=True)
    kind: str  # appeal | complaint | dispute
    channel: str  # Channel
    status: str = Field(index=True)
    contact_id: int | None = Field(default=None, foreign_key="contact.id", index=True)
    complainant_name: str | None = None
    complainant_email: str | None = Field(default=None, index=True)
    complainant_chat_id: int | None = _bigint(default=None)
    locale: str = "zh_CN"
    subject: str | None = None
    description: str | None = Field(default=None, sa_type=sa.Text)
    concerns: str | None = None
    concerns_certificate_no: str | None = None
    decided_on: date | None = None  # the decision appealed against
    decided_by: str | None = None
    audit_team: list[str] | None = _json()
    assignee: str | None = None
    out_of_time: bool = False
    incomplete: bool = False
    thread_message_ids: list[str] | None = _json()  # e-mail Message-IDs, for threading
    created_at: datetime = _instant(default_factory=utcnow)
    closed_at: datetime | None = _instant(nullable=True, default=None)


class CaseEvent(SQLModel, table=True):
    """Append-only, hash-chained history of a case (GGBZ §10.4)."""

    __tablename__ = "case_event"
    __table_args__ = (sa.UniqueConstraint("case_id", "seq"),)

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case_file.id")  # indexed by the unique constraint
    seq: int
    at: datetime = _instant()
    actor: str
    type: str
    data: dict[str, Any] | None = _json()
    prev_hash: str | None = Field(default=None, sa_type=sa.String(64))
    case_digest: str | None = Field(default=None, sa_type=sa.String(64))  # the case row then
    hash: str = Field(sa_type=sa.String(64))
    mac: str | None = Field(default=None, sa_type=sa.String(64))  # HMAC of `hash`, keyed


class CaseHead(SQLModel, table=True):
    """The signed head of each case's history, rewritten by every append in its transaction.

    No foreign key: it outlives a case row deleted behind the application's back, so the
    deletion shows. Signed with the history key (bot.domain.history.head_mac).
    """

    __tablename__ = "case_head"

    case_id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    seq: int  # the last event's seq
    head_hash: str = Field(sa_type=sa.String(64))
    fields: dict[str, str] = _json(nullable=False)  # seals of the case row's covered fields
    note: str | None = Field(default=None, sa_type=sa.Text)  # sticky: history found altered
    key_id: str = Field(sa_type=sa.String(16))
    mac: str = Field(sa_type=sa.String(64))


# --- deadlines, alerts, reminders ---------------------------------------------------------------


class Deadline(SQLModel, table=True):
    __tablename__ = "deadline"
    __table_args__ = (
        # The due scan reads only open rows, so its cost follows what is open, not history. On
        # PostgreSQL the index also holds every column the scan reads: an index-only scan, no
        # visit to the table's pages (one each for thousands of due rows spread over history).
        sa.Index(
            "ix_deadline_open_due_on",
            "due_on",
            sqlite_where=sa.text("closed_at IS NULL"),
            postgresql_where=sa.text("closed_at IS NULL"),
            postgresql_include=["id", "case_id", "rule_id", "clause", "provisional"],
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    case_id: int | None = Field(default=None, foreign_key="case_file.id", index=True)
    certificate_id: int | None = Field(default=None, foreign_key="certificate.id", index=True)
    rule_id: str
    clause: str
    unit: str  # calendar_days | working_days | months
    count: int
    start_on: date
    due_on: date
    provisional: bool = False  # computed beyond the known holiday data
    created_at: datetime = _instant(default_factory=utcnow)
    closed_at: datetime | None = _instant(nullable=True, default=None)
    closed_by: str | None = None


class AlertSent(SQLModel, table=True):
    """One row per warning or escalation of a deadline: the unique key stops a second send."""

    __tablename__ = "alert_sent"
    __table_args__ = (sa.UniqueConstraint("deadline_id", "kind"),)

    id: int | None = Field(default=None, primary_key=True)
    deadline_id: int = Field(foreign_key="deadline.id")
    kind: str
    sent_on: date


class Reminder(SQLModel, table=True):
    __tablename__ = "reminder"
    __table_args__ = (sa.UniqueConstraint("certificate_id", "rule_id", "due_on", "lead_days"),)

    id: int | None = Field(default=None, primary_key=True)
    certificate_id: int = Field(foreign_key="certificate.id")
    rule_id: str
    due_on: date
    lead_days: int
    send_on: date = Field(index=True)
    sent_at: datetime | None = _instant(nullable=True, default=None)
    # Nobody to send it to: staff were alerted instead; the reminder is not "sent".
    no_recipient_at: datetime | None = _instant(nullable=True, default=None)


# --- messaging, findings, the register (declared beside this module, same metadata) -----------
from storage.models_findings import CertificateStatusRecord as CertificateStatusRecord  # noqa: E402
from storage.models_findings import Finding as Finding  # noqa: E402
from storage.models_findings import FindingEvidence as FindingEvidence  # noqa: E402
from storage.models_findings import FindingEvidenceFile as FindingEvidenceFile  # noqa: E402
from storage.models_findings import MemberFactory as MemberFactory  # noqa: E402
from storage.models_messaging import CaseMessageId as CaseMessageId  # noqa: E402
from storage.models_messaging import ChatMigration as ChatMigration  # noqa: E402
from storage.models_messaging import ConversationState as ConversationState  # noqa: E402
from storage.models_messaging import InboundEmail as InboundEmail  # noqa: E402
from storage.models_messaging import OutboxMessage as OutboxMessage  # noqa: E402
from storage.models_messaging import SendBudget as SendBudget  # noqa: E402
from storage.models_messaging import TelegramUpdate as TelegramUpdate  # noqa: E402
from storage.models_register import ChangeReport as ChangeReport  # noqa: E402
from storage.models_register import LinkAttempt as LinkAttempt  # noqa: E402
from storage.models_register import LinkCode as LinkCode  # noqa: E402
