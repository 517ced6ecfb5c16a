"""Time that acts on findings: reminders to the organisation before each due date (the profile's
`[findings] reminder_days_before`), a staff escalation the day after it passes, and — for the
grades the profile names (GGBZ: major) — a suspension review put to staff (GGBZ §5.10.4, §7.3).
For a status-model programme (IETP) a status whose corrective plan is not started within its
months (progressing: 3) is put to staff the day after (bot.services.statuses.plan_deadlines).

Safe at any instant and on several instances: every message is queued under an idempotency key
naming the finding, its due date and the lead, so it goes out once; a finding's status moves to
overdue in the same transaction. Organisations hear from us in office hours only.
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.desk import Desk
from bot.domain import findings as rules
from bot.domain.alerts import in_working_hours, local
from bot.domain.reminders import PlannedReminder, ScheduleItem, plan
from bot.outbox.messages import Letter, Outbound, TelegramText, enqueue
from bot.outbox.to_staff import queue_for_staff
from bot.services import statuses
from messages.render import t, th
from storage.models import Certificate, Finding
from storage.repo import findings as repo
from storage.repo import reminders as reminder_repo

log = logging.getLogger(__name__)


class FindingsScan:
    def __init__(self, desk: Desk) -> None:
        self.desk = desk
        self.staff_locale = desk.settings.default_locale
        self._done_on: date | None = None  # one full pass a day per instance is enough

    async def run(self, *, force: bool = False) -> int:
        """Queue what is due today; the number of messages queued (staff and organisation)."""
        desk, now = self.desk, self.desk.clock.now()
        policy = desk.profile.findings
        if policy is None and desk.profile.statuses is None:
            return 0
        if not in_working_hours(now, desk.settings.work_window, desk.calendar):
            return 0
        today = local(now).date()
        if self._done_on == today and not force:
            return 0
        queued = 0
        async with desk.sessions() as session, session.begin():
            actionable = (
                [] if policy is None else await repo.listed(session, statuses=rules.ACTIONABLE)
            )
            for finding, cert in actionable:
                assert policy is not None
                item = ScheduleItem(
                    f"finding:{finding.id}", "finding", finding.due_on, finding.rule_clause
                )
                for p in plan([item], policy.reminder_days_before, today):
                    if p.send_on <= today:
                        queued += await self._send(session, finding, cert, p, today)
            queued += await self._plans(session, today)
        self._done_on = today
        return queued

    async def _plans(self, session: AsyncSession, today: date) -> int:
        """A status's corrective plan not started by its date (IETP progressing: within 3
        months): staff are alerted once, the day after the date has passed."""
        desk, loc, queued = self.desk, self.staff_locale, 0
        for d in await statuses.plan_deadlines(session, desk.profile):
            if d.started_on is not None or today <= d.due_on:
                continue
            text = th(
                "findings.staff_plan_overdue", loc, number=d.certificate.number,
                holder=d.certificate.holder, status=t(f"statuses.status_{d.record.status}", loc),
                starts=d.record.starts_on.isoformat(), due=d.due_on.isoformat(), clause=d.clause,
            )  # fmt: skip
            key = f"status-plan:{d.record.id}:{d.due_on.isoformat()}:overdue"
            await queue_for_staff(desk, session, key=key, text=text)
            queued += 1
        return queued

    async def _send(
        self, session: AsyncSession, f: Finding, cert: Certificate, p: PlannedReminder, today: date
    ) -> int:
        desk, now = self.desk, self.desk.clock.now()
        base = f"finding-reminder:{f.id}:{f.due_on.isoformat()}"
        if p.to_staff:
            if f.status != rules.FindingStatus.OVERDUE:
                await repo.set_status(session, f, rules.FindingStatus.OVERDUE, now, reason=f.reason)
            return await self._escalate(session, f, cert, base)

        def args(loc: str) -> dict[str, Any]:
            return {
                "number": cert.number,
                "due": f.due_on.isoformat(),
                "days": (f.due_on - today).days,
                "clause": f.clause,
                "text": f.text,
                "rule": f.rule_clause,
                "tag": rules.tag(f.id or 0),
            }

        recipients = await reminder_repo.recipients(
            session, cert.organisation_id, desk.settings.default_locale
        )
        for r in recipients:
            message: Outbound
            if r.channel == "telegram":
                message = TelegramText(
                    r.address, th("findings.reminder", r.locale, **args(r.locale))
                )
            else:
                message = Letter(
                    r.address,
                    t("findings.reminder_subject", r.locale, **args(r.locale)),
                    t("findings.reminder_body", r.locale, **args(r.locale)),
                    locale=r.locale,
                )
            key = f"{base}:{p.lead_days}:{r.channel}:{r.address}"
            await enqueue(session, message, key=key, now=now)
        if not recipients:  # a reminder nobody receives is a staff alert, never "sent"
            loc = self.staff_locale
            text = th("findings.staff_no_recipient", loc, number=cert.number, holder=cert.holder)
            await queue_for_staff(desk, session, key=f"{base}:{p.lead_days}:nobody", text=text)
            return 1
        return len(recipients)

    async def _escalate(
        self, session: AsyncSession, f: Finding, cert: Certificate, base: str
    ) -> int:
        desk, loc = self.desk, self.staff_locale
        common = {
            "id": f.id,
            "number": cert.number,
            "holder": cert.holder,
            "clause": f.clause,
            "due": f.due_on.isoformat(),
        }
        grade = t(f"findings.grade_{f.grade}", loc)
        text = th("findings.staff_overdue", loc, grade=grade, rule=f.rule_clause, **common)
        await queue_for_staff(desk, session, key=f"{base}:overdue", text=text)
        if not rules.raises_suspension_review(desk.profile, f.grade):
            return 1
        policy = desk.profile.findings
        assert policy is not None and policy.suspension_review_clause is not None
        text = th(
            "findings.staff_suspension_review", loc, clause_rule=policy.suspension_review_clause,
            **common,
        )  # fmt: skip
        await queue_for_staff(desk, session, key=f"{base}:suspension-review", text=text)
        return 2


__all__ = ["FindingsScan"]
