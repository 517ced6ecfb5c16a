"""The shared vocabulary: channels and statuses, stored as plain strings (adding a value needs no
migration) and checked in Python."""

from __future__ import annotations

from enum import StrEnum


class Channel(StrEnum):
    TELEGRAM = "telegram"
    EMAIL = "email"
    STAFF = "staff"  # a staff message waiting for a staff channel to be configured
    # Group robots for staff alerts where Telegram is blocked (mainland China).
    WECOM = "wecom"
    DINGTALK = "dingtalk"
    FEISHU = "feishu"


class DocumentStatus(StrEnum):
    RECEIVED = "received"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    REPLACED = "replaced"


class CertificateStatus(StrEnum):
    VALID = "valid"
    SUSPENDED = "suspended"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"


class Severity(StrEnum):
    MINOR = "minor"
    MAJOR = "major"


class OutboxStatus(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"  # by staff, from the console: never sent


class InboundStatus(StrEnum):
    STORED = "stored"
    PROCESSED = "processed"
    QUARANTINED = "quarantined"
    IGNORED = "ignored"
