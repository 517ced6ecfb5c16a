"""Change reports from a certified organisation's contacts: stored with a reference and the
reporter's identity, and told to staff with what was reported, when, and the organisation's
reporting period under the profile (BQC counts days; GGBZ "promptly", SGC "at once")."""

from __future__ import annotations

from dataclasses import dataclass

from bot.clock import SHANGHAI
from bot.desk import Desk
from bot.domain.certificates import ChangePeriod, change_kinds, change_period
from bot.domain.policy import Profile
from bot.domain.refs import unique_ref
from bot.outbox.to_staff import queue_for_staff
from messages.render import t, th
from storage.models import ChangeReport, Contact, Organisation
from storage.repo import organisations as org_repo
from storage.unit_of_work import UnitOfWork

REF_PREFIX = "BG"  # 变更
URGENT_KINDS = ("accident",)


@dataclass(frozen=True)
class Filed:
    report: ChangeReport
    new: bool  # False: the same Telegram message was handled before


def kinds(profile: Profile) -> tuple[str, ...]:
    return change_kinds(profile)


def period_of(profile: Profile, kind: str) -> ChangePeriod | None:
    """The reporting period, or None when the profile says nothing about change reports."""
    return change_period(profile, kind) if profile.change_report is not None else None


def period_text(profile: Profile, kind: str, locale: str) -> str:
    """Plain text (an argument of the HTML texts): "within 3 days of the change", "promptly
    (及时)", "at once (第一时间)", each with its clause."""
    period = period_of(profile, kind)
    if period is None:
        return t("changes.period_unstated", locale)
    if period.rule is None:
        return t(f"changes.period_{period.timing}", locale, clause=period.clause)
    rule = period.rule
    unit = t(f"changes.unit_{rule.unit}", locale)
    start = t(f"changes.from_{rule.from_}", locale)
    return t("changes.period_counted", locale, count=rule.count, unit=unit, start=start,
             clause=period.clause)  # fmt: skip


async def file_report(
    desk: Desk,
    uow: UnitOfWork,
    *,
    contact: Contact,
    org: Organisation,
    numbers: list[str],
    kind: str,
    details: str,
    chat_id: int,
    message_id: int,
    reporter_name: str | None,
) -> Filed:
    """Store the report and queue the staff alert, once per Telegram message."""
    session = uow.session
    known = await org_repo.report_by_message(session, chat_id, message_id)
    if known is not None:
        return Filed(known, False)
    now = desk.clock.now()

    async def exists(ref: str) -> bool:
        return await org_repo.ref_exists(session, ref)

    ref = await unique_ref(REF_PREFIX, now.astimezone(SHANGHAI).year, exists)
    report = await org_repo.add_report(
        session,
        ChangeReport(
            ref=ref, organisation_id=org.id or 0, contact_id=contact.id or 0,
            reporter_name=reporter_name, reporter_telegram_user_id=contact.telegram_user_id,
            kind=kind, details=details, certificate_numbers=numbers, reported_at=now,
            telegram_chat_id=chat_id, telegram_message_id=message_id,
        ),
    )  # fmt: skip
    await queue_for_staff(desk, session, key=f"change:{ref}", text=staff_text(desk, report, org))
    return Filed(report, True)


def staff_text(desk: Desk, report: ChangeReport, org: Organisation) -> str:
    loc = desk.settings.default_locale
    at = report.reported_at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")
    reporter = report.reporter_name or "—"
    args = {
        "ref": report.ref,
        "holder": org.name,
        "numbers": ", ".join(report.certificate_numbers or []),
        "kind": t(f"changes.kind_{report.kind}", loc),
        "at": at,
        "reporter": reporter,
        "user_id": report.reporter_telegram_user_id or "—",
        "details": report.details,
        "period": period_text(desk.profile, report.kind, loc),
    }
    key = "changes.staff_alert_urgent" if report.kind in URGENT_KINDS else "changes.staff_alert"
    return th(key, loc, **args)


__all__ = ["Filed", "file_report", "kinds", "period_text", "staff_text"]
