"""Time that acts: periodic scans of the deadline, reminder and outbox tables.

The database is the source of truth. Jobs are plain periodic scans held in memory (APScheduler's
MemoryJobStore): nothing is pickled, so a moved function cannot silently drop a job, and a restart
simply scans again. What a scan decides to send is recorded (`alert_sent`, `reminder.sent_at`, the
outbox idempotency key) in the transaction that queues it, so a restart or a second instance on
PostgreSQL never sends it twice. On SQLite one instance is assumed.

Wiring (bot/app.py): in `post_init`, `app.bot_data["scheduler"] = start_scheduler(desk, outbox)`;
in `post_shutdown`, `await shutdown(app.bot_data["scheduler"])`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, TypeVar

from bot.desk import Desk
from bot.domain.alerts import (
    ESCALATION,
    DueAlert,
    OpenDeadline,
    ScanWindow,
    digest,
    due_alerts,
    in_working_hours,
    local,
    pending,
    scan_window,
)
from bot.domain.reminders import OpenNonconformity, PlannedReminder, ScheduleItem, plan, schedule
from bot.outbox.messages import Letter, Outbound, TelegramText, enqueue
from bot.outbox.to_staff import queue_for_staff
from bot.scheduler.findings_scan import FindingsScan
from bot.scheduler.outbox_prune import OutboxPrune
from bot.services.certificate_notices import alert_no_recipient, withdrawal_review_text
from messages.render import rule_label, t, th
from storage.models import Certificate, Reminder
from storage.repo import deadlines as deadline_repo
from storage.repo import reminders as reminder_repo

if TYPE_CHECKING:
    from sqlmodel.ext.asyncio.session import AsyncSession

log = logging.getLogger(__name__)
T = TypeVar("T")

# A reminder whose day passed while no instance ran is still sent within this many days.
REMINDER_LOOKBACK_DAYS = 14
BATCH = 200
PLAN_PAGE = 2_000  # certificates planned per transaction


@dataclass
class ScanStats:
    alerts: int = 0
    digests: int = 0
    planned: int = 0
    reminders: int = 0
    obsolete: int = 0
    pruned: int = 0


class Scans:
    """The scans one tick runs; each safe to run at any instant, on several instances."""

    def __init__(self, desk: Desk) -> None:
        self.desk = desk
        self.hours = desk.settings.work_window
        self.leads = tuple(desk.settings.warning_lead_working_days)
        self.staff_locale = desk.settings.default_locale
        self._planned_on: date | None = None
        self._digest_on: date | None = None
        self._window: tuple[date, ScanWindow] | None = None
        self.findings = FindingsScan(desk)  # corrective actions: reminders, overdue, review
        self.prune = OutboxPrune(desk)  # daily: old sent/cancelled outbox rows

    @property
    def staff_chat(self) -> str | None:
        chat = self.desk.settings.staff_chat_id
        return str(chat) if chat is not None else None

    async def run_due(self) -> ScanStats:
        """Everything due now, once: alerts, digest, reminder planning and sending."""
        stats = ScanStats()
        # Each scan on its own: a failing one (logged, retried next tick) does not stop the rest.
        if (n := await self._guarded(self.deadline_alerts)) is not None:
            stats.alerts = n
        if (n := await self._guarded(self.daily_digest)) is not None:
            stats.digests = n
        if (n := await self._guarded(self.plan_reminders)) is not None:
            stats.planned = n
        if (pair := await self._guarded(self.send_reminders)) is not None:
            stats.reminders, stats.obsolete = pair
        await self._guarded(self.findings.run)
        if (n := await self._guarded(self.prune.run)) is not None:
            stats.pruned = n
        return stats

    async def _guarded(self, scan: Callable[[], Awaitable[T]]) -> T | None:
        try:
            return await scan()
        except Exception:
            log.exception("scan %s failed; it runs again at the next tick", scan.__name__)
            return None

    # --- case deadlines ---------------------------------------------------------------------

    async def deadline_alerts(self) -> int:
        desk, now = self.desk, self.desk.clock.now()
        cal = desk.calendar
        if not in_working_hours(now, self.hours, cal):
            return 0  # a breach found at night waits for the next working morning
        today = local(now).date()
        if self._window is None or self._window[0] != today:
            self._window = (today, scan_window(today, self.leads, cal))  # once a day
        window = self._window[1]
        async with desk.sessions() as session:
            # Only deadlines with an alert of today not yet recorded come back, in one statement
            # and no transaction: the steady state (all sent) reads no rows and writes nothing,
            # so the cost grows with what is due and new.
            open_, unsent = await deadline_repo.unsent_alerts(session, window)
        if not open_:
            return 0
        alerts = due_alerts(open_, now, self.leads, self.hours, cal)
        sent = {(a.deadline.id, a.kind) for a in alerts} - unsent
        todo = pending(alerts, sent)
        queued = 0
        for i in range(0, len(todo), BATCH):
            async with desk.sessions() as session, session.begin():
                for alert in todo[i : i + BATCH]:
                    # The insert that wins sends; a concurrent instance's insert does nothing.
                    if not await deadline_repo.record_alert(
                        session, alert.deadline.id, alert.kind, today
                    ):
                        continue
                    for older in alert.supersedes:
                        await deadline_repo.record_alert(session, alert.deadline.id, older, today)
                    await self._queue_alert(session, alert, today)
                    queued += 1
        return queued

    async def _queue_alert(self, session: AsyncSession, alert: DueAlert, today: date) -> None:
        d, loc, now = alert.deadline, self.staff_locale, self.desk.clock.now()
        args = {
            "ref": d.case_ref,
            "kind": _kind(d.case_kind, loc),
            "rule": rule_label(d.rule_id, loc),
            "due": d.due_on.isoformat(),
            "clause": d.clause,
        }
        if alert.is_escalation:
            days = _working_days_between(d.due_on, today, self.desk)
            key = "alerts.escalation" if alert.kind == ESCALATION else "alerts.overdue"
            text = th(key, loc, days=days, **args)
        elif alert.lead == 0 or d.due_on == today:
            text = th("alerts.warning_today", loc, **args)
        else:
            text = th("alerts.warning", loc, days=alert.lead, **args)
        base = f"alert:{d.id}:{alert.kind}"
        await queue_for_staff(self.desk, session, key=f"{base}:tg", text=text)
        if alert.is_escalation:
            days = _working_days_between(d.due_on, today, self.desk)
            for address in self.desk.settings.escalation_emails:
                letter = Letter(
                    to=address,
                    subject=t("alerts.escalation_subject", loc, **args),
                    text=t("alerts.escalation_body", loc, days=days, **args),
                    locale=loc,
                    case_ref=d.case_ref,
                )
                key = f"{base}:mail:{address}"
                await enqueue(session, letter, key=key, now=now, lane="staff")

    async def daily_digest(self) -> int:
        desk, now = self.desk, self.desk.clock.now()
        today = local(now).date()
        if self._digest_on == today or self.staff_chat is None:
            return 0
        if not in_working_hours(now, self.hours, desk.calendar):
            return 0
        async with desk.sessions() as session, session.begin():
            rows = await deadline_repo.open_case_deadlines(
                session, due_until=today + timedelta(days=7), provisional_too=True
            )
            text = self.digest_text(rows, today)
            await queue_for_staff(desk, session, key=f"digest:{today.isoformat()}", text=text)
        self._digest_on = today
        return 1

    def digest_text(self, rows: list[OpenDeadline], today: date) -> str:
        loc, cal = self.staff_locale, self.desk.calendar
        dg = digest(rows, today, cal)
        lines = [th("alerts.digest_title", loc, day=today.isoformat())]

        def line(d: OpenDeadline) -> str:
            mark = t("alerts.provisional_mark", loc) if d.provisional else ""
            return th(
                "alerts.digest_line",
                loc,
                due=d.due_on.isoformat(),
                ref=d.case_ref,
                kind=_kind(d.case_kind, loc),
                rule=rule_label(d.rule_id, loc),
                mark=mark,
            )

        if dg.overdue:
            lines += ["", t("alerts.digest_overdue", loc), *map(line, dg.overdue)]
        if dg.due_this_week:
            lines += ["", t("alerts.digest_due_week", loc), *map(line, dg.due_this_week)]
        if dg.provisional:
            years = cal.provisional_years(today, max(d.due_on for d in dg.provisional))
            shown = "、".join(map(str, years)) if loc == "zh_CN" else ", ".join(map(str, years))
            first = years[0] if years else today.year + 1
            lines += ["", th("alerts.digest_provisional", loc, years=shown, first_year=first)]
            lines += map(line, dg.provisional)
        if dg.empty:
            lines += ["", t("alerts.digest_nothing", loc)]
        return "\n".join(lines)

    # --- certificate reminders ----------------------------------------------------------------

    async def plan_reminders(self, *, force: bool = False) -> int:
        """Store the reminders of every certificate (once a day per instance; idempotent)."""
        desk = self.desk
        today = desk.clock.today()
        if self._planned_on == today and not force:
            return 0
        leads = desk.profile.certificate.reminder_days_before
        new, after = 0, 0
        # Certificates with the same dates have the same plan: computed once per run.
        memo: dict[tuple[object, ...], list[PlannedReminder]] = {}

        def planned(cert: Certificate, ncs: list[OpenNonconformity]) -> list[PlannedReminder]:
            facts = reminder_repo.facts(cert)
            key = (facts.status, facts.decided_on, facts.expires_on, facts.stage2_end_on,
                   facts.last_surveillance_on, facts.suspended_until, tuple(ncs))  # fmt: skip
            if key not in memo:
                memo[key] = plan(
                    schedule(desk.profile, facts, ncs, desk.calendar, today), leads, today
                )
            return memo[key]

        # Read a page, plan it, write it in its own short transaction: the write lock (SQLite's
        # is the whole database's) is held only while a page is inserted, so the outbox and
        # Telegram updates go on while 100,000 certificates are planned.
        while True:
            async with desk.sessions() as session:
                page = await reminder_repo.certificates_page(
                    session, after_id=after, limit=PLAN_PAGE
                )
            if not page:
                break
            rows = [(cert.id or 0, p) for cert, ncs in page for p in planned(cert, ncs)]
            async with desk.sessions() as session, session.begin():
                new += await reminder_repo.insert_planned_many(session, rows)
            after = page[-1][0].id or 0
        self._planned_on = today
        return new

    async def send_reminders(self) -> tuple[int, int]:
        """Queue the reminders due today; drop the ones whose date no longer stands."""
        desk, now = self.desk, self.desk.clock.now()
        if not in_working_hours(now, self.hours, desk.calendar):
            return 0, 0  # organisations hear from us in office hours
        today = local(now).date()
        sent = dropped = 0
        while True:
            async with desk.sessions() as session, session.begin():
                due = await reminder_repo.claim_due(
                    session, today, lookback_days=REMINDER_LOOKBACK_DAYS, limit=BATCH
                )
                if not due:
                    break
                certs = {
                    c.id: (c, ncs)
                    for c, ncs in await reminder_repo.certificates(
                        session, ids={r.certificate_id for r in due}
                    )
                }
                for reminder in due:
                    cert, ncs = certs[reminder.certificate_id]
                    facts = reminder_repo.facts(cert)
                    items = {
                        (i.rule_id, i.due_on): i
                        for i in schedule(desk.profile, facts, ncs, desk.calendar, today)
                    }
                    item = items.get((reminder.rule_id, reminder.due_on))
                    if item is None:
                        await reminder_repo.drop(session, reminder.id or 0)
                        dropped += 1
                        continue
                    if await self._queue_reminder(session, reminder, item, cert, today):
                        await reminder_repo.mark_sent(session, reminder, now)
                        sent += 1
                    else:  # nobody to tell: staff were alerted; the reminder is not "sent"
                        await reminder_repo.mark_no_recipient(session, reminder, now)
            if len(due) < BATCH:
                break
        return sent, dropped

    async def _queue_reminder(
        self,
        session: AsyncSession,
        reminder: Reminder,
        item: ScheduleItem,
        cert: Certificate,
        today: date,
    ) -> bool:
        """Queue one reminder; False when the organisation had nobody to receive it."""
        now = self.desk.clock.now()
        base = f"reminder:{reminder.id}"

        def args(loc: str) -> dict[str, object]:
            return {
                "number": cert.number,
                "holder": cert.holder,
                "what": t(f"reminders.what_{item.topic}", loc),
                "todo": t(f"reminders.todo_{item.topic}", loc),
                "due": item.due_on.isoformat(),
                "days": (item.due_on - today).days,
                "clause": item.clause,
            }

        if reminder.lead_days == 0:  # overdue: staff, not the organisation
            loc = self.staff_locale
            a = args(loc)
            if item.topic == "suspension":
                text = withdrawal_review_text(self.desk, item.due_on, item.clause, cert, loc)
            else:
                text = th("reminders.staff_overdue", loc, **{k: a[k] for k in _STAFF_ARGS})
            await queue_for_staff(self.desk, session, key=f"{base}:staff", text=text)
            return True
        found = await reminder_repo.recipients(
            session, cert.organisation_id, self.desk.settings.default_locale
        )
        if not found:
            what = t("reminders.no_recipient_what", self.staff_locale,
                     what=t(f"reminders.what_{item.topic}", self.staff_locale),
                     due=item.due_on.isoformat())  # fmt: skip
            await alert_no_recipient(self.desk, session, cert, base, what)
            return False
        for r in found:
            a = args(r.locale)
            message: Outbound
            if r.channel == "telegram":
                message = TelegramText(r.address, th("reminders.reminder", r.locale, **a))
            else:
                message = Letter(
                    to=r.address,
                    subject=t("reminders.reminder_subject", r.locale, **a),
                    text=t("reminders.reminder_body", r.locale, **a),
                    locale=r.locale,
                )
            await enqueue(session, message, key=f"{base}:{r.channel}:{r.address}", now=now)
        return True


_STAFF_ARGS = ("number", "holder", "what", "due", "clause")


def _kind(kind: str, locale: str) -> str:
    return t(f"alerts.kind_{kind}", locale) if kind in ("appeal", "complaint", "dispute") else kind


def _working_days_between(due_on: date, today: date, desk: Desk) -> int:
    """Working days after `due_on` up to and including `today`."""
    n, d = 0, due_on
    while d < today:
        d += timedelta(days=1)
        n += desk.calendar.is_workday(d)
    return n


def upcoming_reminders(
    desk: Desk, rows: list[tuple[Certificate, list[OpenNonconformity]]], today: date
) -> list[tuple[str, PlannedReminder]]:
    """(certificate number, reminder) still to be sent from `today`, for `reminders plan`."""
    out: list[tuple[str, PlannedReminder]] = []
    leads = desk.profile.certificate.reminder_days_before
    for cert, ncs in rows:
        items = schedule(desk.profile, reminder_repo.facts(cert), ncs, desk.calendar, today)
        out += [(cert.number, p) for p in plan(items, leads, today) if p.send_on >= today]
    return sorted(out, key=lambda x: (x[1].send_on, x[0], x[1].item.rule_id))


# --- the scheduler ----------------------------------------------------------------------------


__all__ = ["ScanStats", "Scans", "upcoming_reminders"]
