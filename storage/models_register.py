"""Tables of the certificate register's contacts: one-time link codes, guesses, change reports.

Imported at the end of storage.models, whose naming convention and column helpers they use.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from storage.models import _bigint, _instant, _json


class LinkCode(SQLModel, table=True):
    """A one-time code staff give an organisation (letter, e-mail) to link a Telegram contact."""

    __tablename__ = "link_code"

    id: int | None = Field(default=None, primary_key=True)
    organisation_id: int = Field(foreign_key="organisation.id", index=True)
    code_hash: str = Field(sa_type=sa.String(64), unique=True)  # only the hash is kept
    created_by: str
    created_at: datetime = _instant()
    expires_at: datetime = _instant()
    used_at: datetime | None = _instant(nullable=True, default=None)
    used_by_contact_id: int | None = Field(default=None, foreign_key="contact.id")


class LinkAttempt(SQLModel, table=True):
    """A wrong code sent to /link: counted to limit guessing."""

    __tablename__ = "link_attempt"

    id: int | None = Field(default=None, primary_key=True)
    contact_id: int = Field(foreign_key="contact.id", index=True)
    at: datetime = _instant()


class ChangeReport(SQLModel, table=True):
    """A change an organisation reported (BQC 获证组织信息通报制度, GGBZ §5.7.6, SGC 六)."""

    __tablename__ = "change_report"

    id: int | None = Field(default=None, primary_key=True)
    ref: str = Field(unique=True)
    organisation_id: int = Field(foreign_key="organisation.id", index=True)
    contact_id: int = Field(foreign_key="contact.id", index=True)
    reporter_name: str | None = None
    reporter_telegram_user_id: int | None = _bigint(default=None)
    kind: str  # bot.domain.policy_certificates.CHANGE_KINDS
    details: str = Field(sa_type=sa.Text)
    certificate_numbers: list[str] | None = _json()
    reported_at: datetime = _instant()
    telegram_chat_id: int | None = _bigint(default=None)
    telegram_message_id: int | None = _bigint(default=None)
