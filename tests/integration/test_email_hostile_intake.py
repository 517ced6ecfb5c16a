"""The hostile letters by class (tests/fixtures/mail_classes.py) through the real intake on
Dovecot: nothing stops it, each is stored and acted upon, robots get no answer."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from bot.desk import Desk
from handlers.email import intake
from handlers.email.parse import parse_message
from tests.fixtures.mail import Mailbox
from tests.fixtures.mail_classes import classes
from tests.integration.test_email_intake import deliver, desk, folder_count

__all__ = ["deliver", "desk"]  # the fixtures, imported for pytest
pytestmark = pytest.mark.dovecot


async def test_every_hostile_class_goes_through_the_intake(
    desk: Desk, mailbox: Mailbox, deliver: Callable[[], asyncio.Future[int]]
) -> None:
    desk.settings.auto_replies_per_sender_per_hour = 1_000
    desk.settings.max_upload_bytes = 20_000_000
    # Dovecot refuses a zero-byte APPEND (facts.md): that letter never reaches an inbox.
    samples = [s for s in classes() if s.raw.strip()]
    for n, sample in enumerate(samples):
        mailbox.append(sample.raw.replace(b"<s@x>", f"<class{n}@qq.com>".encode()))
    stats = await intake.run_once(desk)
    assert stats.handled + stats.duplicates == len(samples)
    assert folder_count(mailbox, "INBOX") == 0
    parsed = [parse_message(s.raw) for s in samples]
    assert stats.quarantined == sum(1 for p in parsed if p.unprocessable())
    assert stats.automatic + stats.bounces == sum(1 for p in parsed if p.automatic)
    assert await deliver() == stats.cases > 0  # every case acknowledged once, nothing else
