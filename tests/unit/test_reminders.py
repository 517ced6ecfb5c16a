"""A certificate's schedule from the profile's rules, and the reminders announcing it."""

from __future__ import annotations

from datetime import date

from bot.domain.calendar import WorkCalendar
from bot.domain.reminders import (
    OVERDUE_LEAD,
    CertificateFacts,
    OpenNonconformity,
    plan,
    schedule,
)
from bot.profiles import load_profile

CAL = WorkCalendar()
GGBZ = load_profile("ggbz")
BQC = load_profile("bqc")


def cert(**kw: object) -> CertificateFacts:
    base: dict[str, object] = {
        "id": 1,
        "number": "GGBZ-SA-0001",
        "holder": "武汉示例有限公司",
        "status": "valid",
        "decided_on": date(2026, 7, 10),
        "expires_on": date(2029, 7, 9),
        "stage2_end_on": date(2026, 6, 15),
    }
    return CertificateFacts(**{**base, **kw})  # type: ignore[arg-type]


def by_topic(items: list) -> dict[str, date]:
    return {i.topic: i.due_on for i in items}


def test_first_surveillance_anchor_is_the_profiles() -> None:
    # GGBZ counts from the stage-2 end (the earlier date), BQC from the decision.
    ggbz = by_topic(schedule(GGBZ, cert(), [], CAL, date(2026, 4, 1)))
    bqc = by_topic(schedule(BQC, cert(), [], CAL, date(2026, 4, 1)))
    assert ggbz["surveillance"] == date(2027, 6, 15)
    assert bqc["surveillance"] == date(2027, 7, 12)  # 2027-07-10 is a Saturday


def test_next_surveillance_is_within_15_months_and_the_next_calendar_year() -> None:
    items = schedule(GGBZ, cert(last_surveillance_on=date(2027, 1, 20)), [], CAL, date(2027, 2, 1))
    assert by_topic(items)["surveillance"] == date(2028, 4, 20)  # 15 months, inside 2028
    late = schedule(GGBZ, cert(last_surveillance_on=date(2026, 11, 5)), [], CAL, date(2027, 1, 1))
    assert by_topic(late)["surveillance"] == date(2027, 12, 31)  # calendar year 2027 comes first


def test_no_surveillance_in_the_recertification_year() -> None:
    items = schedule(GGBZ, cert(last_surveillance_on=date(2028, 2, 1)), [], CAL, date(2028, 3, 1))
    assert "surveillance" not in by_topic(items)


def test_recertification_application_three_months_before_expiry() -> None:
    due = by_topic(schedule(GGBZ, cert(), [], CAL, date(2026, 4, 1)))["recertification"]
    assert due == date(2029, 4, 9)


def test_expired_certificate_has_the_restoration_window() -> None:
    items = by_topic(schedule(GGBZ, cert(status="expired"), [], CAL, date(2029, 8, 1)))
    assert items == {"restoration": date(2030, 1, 9)}
    assert "restoration" not in by_topic(schedule(BQC, cert(), [], CAL, date(2029, 8, 1)))


def test_open_nonconformities_and_suspension_end() -> None:
    ncs = [
        OpenNonconformity(7, "minor", date(2027, 1, 15)),
        OpenNonconformity(8, "major", date(2027, 1, 15)),
    ]
    suspended = cert(status="suspended", suspended_until=date(2027, 6, 30))
    items = schedule(GGBZ, suspended, ncs, CAL, date(2027, 2, 1))
    got = {i.rule_id: i.due_on for i in items}
    assert got["nc.minor:7"] == date(2027, 4, 15)  # 90 days
    assert got["nc.major:8"] == date(2027, 7, 15)  # 6 months
    assert got["suspension.max"] == date(2027, 6, 30)
    assert all(i.clause for i in items)


def test_withdrawn_certificate_has_nothing() -> None:
    assert schedule(GGBZ, cert(status="withdrawn"), [], CAL, date(2026, 4, 1)) == []


def test_plan_at_90_60_30_7_days_and_a_staff_notice_after() -> None:
    items = [
        i for i in schedule(GGBZ, cert(), [], CAL, date(2026, 8, 1)) if i.topic == "surveillance"
    ]
    planned = plan(items, GGBZ.certificate.reminder_days_before, date(2026, 8, 1))
    assert [(p.lead_days, p.send_on) for p in planned] == [
        (90, date(2027, 3, 17)),
        (60, date(2027, 4, 16)),
        (30, date(2027, 5, 16)),
        (7, date(2027, 6, 8)),
        (OVERDUE_LEAD, date(2027, 6, 16)),
    ]
    assert planned[-1].to_staff and not planned[0].to_staff


def test_plan_made_late_sends_the_nearest_reminder_today() -> None:
    items = [
        i for i in schedule(GGBZ, cert(), [], CAL, date(2027, 5, 20)) if i.topic == "surveillance"
    ]
    planned = plan(items, (90, 60, 30, 7), date(2027, 5, 20))
    assert [(p.lead_days, p.send_on) for p in planned] == [
        (30, date(2027, 5, 20)),
        (7, date(2027, 6, 8)),
        (OVERDUE_LEAD, date(2027, 6, 16)),
    ]
