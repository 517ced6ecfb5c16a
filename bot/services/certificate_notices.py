"""Written notices to a certified organisation's contacts (Telegram and e-mail), and the staff
alert that replaces them when the organisation has no contact to reach."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.desk import Desk
from bot.domain.deadlines import due_date
from bot.domain.policy import Profile
from bot.outbox.messages import Letter, Outbound, TelegramText, enqueue
from bot.outbox.to_staff import queue_for_staff
from messages.render import t, th
from storage.models import Certificate
from storage.repo import reminders as reminder_repo

# (locale) -> (Telegram HTML text, e-mail subject, e-mail plain text)
Texts = Callable[[str], tuple[str, str, str]]


async def notify_organisation(
    desk: Desk, session: AsyncSession, cert: Certificate, key: str, texts: Texts
) -> int:
    """Queue the notice for every contact of the certificate's organisation, once per `key` and
    address; returns how many were queued (0: nobody to tell — the caller alerts staff)."""
    now = desk.clock.now()
    found = await reminder_repo.recipients(
        session, cert.organisation_id, desk.settings.default_locale
    )
    for r in found:
        html, subject, body = texts(r.locale)
        message: Outbound
        if r.channel == "telegram":
            message = TelegramText(r.address, html)
        else:
            message = Letter(to=r.address, subject=subject, text=body, locale=r.locale)
        await enqueue(session, message, key=f"{key}:{r.channel}:{r.address}", now=now)
    return len(found)


async def alert_no_recipient(
    desk: Desk, session: AsyncSession, cert: Certificate, key: str, what: str
) -> None:
    """Staff hear that `what` reached nobody, and how to give the organisation a contact."""
    loc = desk.settings.default_locale
    text = th("certificates.no_recipient", loc, number=cert.number, holder=cert.holder, what=what)
    await queue_for_staff(desk, session, key=f"{key}:no_recipient", text=text)


async def queue_suspension_notice(
    desk: Desk, session: AsyncSession, cert: Certificate, profile: Profile
) -> None:
    """The written notice of a suspension (GGBZ §7.3.4 《暂停资格通知书》, SGC §十一4.1): its start,
    length and end, what the organisation may not do meanwhile and how it ends."""
    policy = profile.suspension
    clause = policy.clause if policy is not None else profile.rules["suspension.max"].clause
    args = {
        "number": cert.number,
        "holder": cert.holder,
        "start": cert.suspended_on,
        "months": cert.suspension_months,
        "until": cert.suspended_until,
        "clause": clause,
    }

    def texts(loc: str) -> tuple[str, str, str]:
        return (
            th("certificates.suspension_notice", loc, **args),
            t("certificates.suspension_notice_subject", loc, **args),
            t("certificates.suspension_notice_body", loc, **args),
        )

    key = f"suspension:{cert.id}:{cert.suspended_on}"
    if not await notify_organisation(desk, session, cert, key, texts):
        what = t("certificates.what_suspension_notice", desk.settings.default_locale)
        await alert_no_recipient(desk, session, cert, key, what)


WITHDRAWAL_RULE = "withdrawal.decide"


def withdrawal_review_text(
    desk: Desk, until: date, clause: str, cert: Certificate, loc: str
) -> str:
    """Staff text: the suspension ended unresolved, review the withdrawal (GGBZ §7.4(3), BQC
    §17.1(7)), by the profile's deciding period counted from the end when it has one."""
    rule = desk.profile.rules.get(WITHDRAWAL_RULE)
    args = {"number": cert.number, "holder": cert.holder, "until": until.isoformat(),
            "clause": clause}  # fmt: skip
    if rule is None:
        return th("reminders.staff_withdrawal_review", loc, **args)
    due = due_date(until, rule.count, rule.unit, desk.calendar,
                   desk.profile.calendar.roll_to_workday)  # fmt: skip
    return th("reminders.staff_withdrawal_review_by", loc, decide_by=due.due.isoformat(),
              withdrawal_clause=rule.clause, **args)  # fmt: skip


__all__ = [
    "alert_no_recipient",
    "notify_organisation",
    "queue_suspension_notice",
    "withdrawal_review_text",
]
