"""The outbox retention: once a day, sent and cancelled rows older than OUTBOX_RETENTION_DAYS
are deleted, so the table holds what is pending and recent, not every message ever sent.

What a body must keep (case events and their hash chain, GGBZ §10; received letters) lives in
other tables and is never touched; a letter's Message-ID stays in `case_message_id`.
"""

from __future__ import annotations

import logging
from datetime import date

from bot.desk import Desk
from storage.repo import outbox as outbox_repo

log = logging.getLogger(__name__)


class OutboxPrune:
    """Runs at most once per day per instance; safe on several instances (a DELETE by id)."""

    def __init__(self, desk: Desk) -> None:
        self.desk = desk
        self._pruned_on: date | None = None

    async def run(self, *, force: bool = False) -> int:
        desk = self.desk
        today = desk.clock.today()
        if self._pruned_on == today and not force:
            return 0
        cutoff = outbox_repo.retention_cutoff(desk.clock.now(), desk.settings.outbox_retention_days)
        pruned = 0
        if cutoff is not None:
            while True:  # in batches: each transaction short, the table never locked for long
                async with desk.sessions() as session, session.begin():
                    n = await outbox_repo.prune_finished(session, cutoff)
                pruned += n
                if n < outbox_repo.PRUNE_BATCH:
                    break
        self._pruned_on = today
        if pruned:
            log.info("outbox retention: %d rows older than %s deleted", pruned, cutoff)
        return pruned
