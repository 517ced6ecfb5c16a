"""bot.domain.cases without a database: milestones, identity, filing windows, impartiality,
typed dates and contacts. Expected dates are worked out by hand on the 2026 schedule."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import pytest

from bot.clock import SHANGHAI
from bot.domain import cases as rules
from bot.domain import impartiality
from bot.domain.calendar import WorkCalendar
from bot.domain.cases import CaseRefused, Complainant, letter_receipt_day
from bot.domain.deadlines import ComputedDeadline, case_deadlines
from bot.domain.impartiality import Acting
from bot.domain.policy import Profile
from bot.profiles import load_profile

CAL = WorkCalendar()
GGBZ, BQC, SGC = load_profile("ggbz"), load_profile("bqc"), load_profile("sgc")


@dataclass
class Decision:
    """What a case records of the decision under appeal and its assignee (`Handled`)."""

    decided_by: str | None = None
    audit_team: Sequence[str] | None = field(default_factory=list)
    assignee: str | None = None


# --- milestones -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("profile", "kind", "expected"),
    [
        (GGBZ, "appeal", ["work_group_formed", "decision_made"]),
        # GGBZ §8.5.3: investigated, handled *and notified* in 30 working days, so the written
        # notice meets it: no separate internal milestone.
        (GGBZ, "complaint", ["answer_sent"]),
        (SGC, "complaint", ["investigation_done", "answer_sent"]),
        (GGBZ, "dispute", ["answer_sent"]),  # no rules at all: still its final milestone
        (BQC, "appeal", ["decision_made"]),
        (BQC, "complaint", ["answer_sent"]),
        (SGC, "appeal", ["work_group_formed", "decision_made"]),
        (SGC, "dispute", ["answer_sent"]),
    ],
)
def test_milestones_in_the_order_they_happen(
    profile: Profile, kind: str, expected: list[str]
) -> None:
    found = rules.milestones_for(profile, kind)
    assert found == expected
    order = rules.MILESTONE_ORDER
    assert [order.index(m) for m in found] == sorted(order.index(m) for m in found)


def test_a_milestone_both_closing_a_rule_and_final_is_listed_once() -> None:
    # GGBZ complaint.written_result is closed by answer_sent, the complaint's final milestone.
    assert rules.milestones_for(GGBZ, "complaint").count("answer_sent") == 1
    assert rules.rules_met_by(GGBZ, "complaint", "answer_sent") == [
        "complaint.investigation",
        "complaint.written_result",
    ]
    assert rules.rules_met_by(GGBZ, "appeal", "work_group_formed") == ["appeal.work_group"]
    assert rules.rules_met_by(GGBZ, "appeal", "investigation_done") == []


@pytest.mark.parametrize(
    ("kind", "final"),
    [("appeal", "decision_made"), ("complaint", "answer_sent"), ("dispute", "answer_sent")],
)
def test_final_milestone_per_kind(kind: str, final: str) -> None:
    assert rules.is_final(kind, final)
    assert rules.is_final(kind, rules.WITHDRAWN)  # withdrawal ends any case
    others = set(rules.MILESTONE_ORDER) - {final}
    assert not any(rules.is_final(kind, m) for m in others)
    assert rules.milestones_for(GGBZ, kind)[-1] == final


def test_milestone_checks() -> None:
    rules.check_milestone(GGBZ, "appeal", "work_group_formed", "TS-2026-AAAAAA")
    rules.check_milestone(GGBZ, "appeal", rules.WITHDRAWN, "TS-2026-AAAAAA")
    with pytest.raises(CaseRefused) as refused:
        rules.check_milestone(GGBZ, "appeal", "investigation_done", "TS-2026-AAAAAA")
    assert refused.value.key == "staff.milestone_not_applicable"
    assert refused.value.args_ == {"ref": "TS-2026-AAAAAA"}
    with pytest.raises(ValueError, match="unknown milestone"):
        rules.check_milestone(GGBZ, "appeal", "bogus", "TS-2026-AAAAAA")


# --- identity ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("profile", "required"), [(GGBZ, False), (BQC, True), (SGC, True)], ids=["ggbz", "bqc", "sgc"]
)
def test_identity_required_for_complaints_per_profile(profile: Profile, required: bool) -> None:
    assert rules.identity_required(profile, "complaint") is required
    # Appeals and disputes come from a party to the decision: never anonymous in the rules.
    assert not rules.identity_required(profile, "appeal")
    assert not rules.identity_required(profile, "dispute")
    anonymous = Complainant(telegram_user_id=1, telegram_chat_id=1)
    assert rules.is_incomplete(profile, "complaint", anonymous) is required
    named = Complainant(name="赵敏", phone="13800000000")
    assert not rules.is_incomplete(profile, "complaint", named)
    # A name alone is no way to answer: still incomplete where identity is required.
    assert rules.is_incomplete(profile, "complaint", Complainant(name="赵敏")) is required


# --- filing windows ---------------------------------------------------------------------------


def _windows(profile: Profile, kind: str, received: date, decided: date) -> list[ComputedDeadline]:
    """Windows with the decision made and its notice received on the same day."""
    computed = case_deadlines(
        profile.rules.values(),
        kind,
        received,
        decided,
        CAL,
        roll_to_workday=profile.calendar.roll_to_workday,
        notified=decided,
    )
    return rules.filing_windows(profile, computed)


@pytest.mark.parametrize(
    ("profile", "kind", "decided", "last_day"),
    [
        # SGC: 10 working days. After Tue 22 Sep: 23, 24 (25 Mid-Autumn), 28, 29, 30,
        # (1-7 Oct National Day) 8, 9, Sat 10 (make-up workday), 12, 13.
        (SGC, "appeal", date(2026, 9, 22), date(2026, 10, 13)),
        # After Fri 18 Sep: Sun 20 (make-up workday), 21-24, 28-30, 8 and 9 Oct.
        (SGC, "appeal", date(2026, 9, 18), date(2026, 10, 9)),
        # After Wed 30 Sep: 8, 9, Sat 10 (make-up), 12-16, 19, 20 Oct.
        (SGC, "dispute", date(2026, 9, 30), date(2026, 10, 20)),
        # BQC: 15 days from 16 Sep end on 1 Oct, a holiday: the next working day (art. 203).
        (BQC, "appeal", date(2026, 9, 16), date(2026, 10, 8)),
        # GGBZ: 3 months from 1 Jun end on Tue 1 Sep (art. 202).
        (GGBZ, "appeal", date(2026, 6, 1), date(2026, 9, 1)),
    ],
    ids=["sgc-sat-makeup", "sgc-sun-makeup", "sgc-dispute", "bqc-holiday-roll", "ggbz-months"],
)
def test_filing_window_in_time_on_its_last_day_out_of_time_the_day_after(
    profile: Profile, kind: str, decided: date, last_day: date
) -> None:
    on_time = _windows(profile, kind, last_day, decided)
    assert [w.due for w in on_time] == [last_day]
    assert not on_time[0].provisional
    assert not rules.out_of_time(last_day, on_time)
    day_after = date.fromordinal(last_day.toordinal() + 1)
    assert rules.out_of_time(day_after, _windows(profile, kind, day_after, decided))


def test_only_periods_from_the_decision_that_nothing_closes_are_filing_windows() -> None:
    assert rules.is_filing_window(GGBZ, "appeal.filing_window")
    assert not rules.is_filing_window(GGBZ, "appeal.work_group")  # from receipt, closed by staff
    assert not rules.is_filing_window(GGBZ, "no.such_rule")
    assert rules.is_filing_window(SGC, "appeal.filing_window")  # from the notice
    # The window a complaint decision opens counts from our outcome: not a filing window.
    assert not rules.is_filing_window(SGC, "complaint.appeal_window")
    assert rules.is_followup_window(SGC, "complaint.appeal_window")
    # Without a decision date there is nothing to count a window from.
    computed = case_deadlines(GGBZ.rules.values(), "appeal", date(2026, 9, 28), None, CAL)
    assert rules.filing_windows(GGBZ, computed) == []
    assert not rules.out_of_time(date(2026, 9, 28), [])


def test_deadline_start() -> None:
    received, decided = date(2026, 9, 28), date(2026, 9, 1)
    assert rules.deadline_start(GGBZ, "appeal.filing_window", received, decided) == decided
    assert rules.deadline_start(GGBZ, "appeal.work_group", received, decided) == received
    assert rules.deadline_start(GGBZ, "appeal.filing_window", received, None) == received


# --- impartiality -----------------------------------------------------------------------------


def test_impartiality_decider_and_auditors_stand_aside() -> None:
    case = Decision(decided_by="Zhang Wei", audit_team=["Wang Fang", "@liuyang"])
    assert rules.impartiality_conflict(case, ["9001", " zhang wei "]) == (
        "staff.assign_refused_decider"
    )
    assert rules.impartiality_conflict(case, ["WANG FANG"]) == "staff.assign_refused_auditor"
    assert rules.impartiality_conflict(case, ["liuyang"]) == "staff.assign_refused_auditor"
    assert rules.impartiality_conflict(case, ["Li Na", "@lina"]) is None
    assert rules.impartiality_conflict(case, ["", "  "]) is None  # blank names match nobody
    assert rules.impartiality_conflict(Decision(), ["Zhang Wei"]) is None


def test_same_person() -> None:
    assert rules.same_person("@ZhangWei", "zhangwei ")
    assert rules.same_person("张伟", " 张伟")
    assert not rules.same_person("Zhang Wei", "Zhang Wen")


# Directory members as the staff service builds them (bot.services.case_acting).
ZHANG = Acting(("Zhang Wei", "zhang@desk.test", "zhang", "9001"), "zhang@desk.test", "Zhang Wei")
WANG = Acting(("Wang Fang", "wang@desk.test", "wang", "9002"), "wang@desk.test", "Wang Fang")
LI = Acting(("Li Na", "li@desk.test", "li", "9003"), "li@desk.test", "Li Na")
REF = "TS-2026-AAAAAA"


def _refusal(case: Decision, who: Acting, action: str) -> tuple[str, dict[str, object]] | None:
    try:
        impartiality.check_action(case, REF, who, action, "Li Na")
    except CaseRefused as refused:
        return refused.key, refused.args_
    return None


def test_every_action_is_refused_to_the_decider_and_the_audit_team() -> None:
    appeal = Decision(decided_by="zhang@desk.test", audit_team=["9002"])
    for action in ("reply", "milestone", "decision", "extension", "assign", "enquiry"):
        assert _refusal(appeal, ZHANG, action) == (
            "staff.refused_decider",
            {"ref": REF, "who": "Zhang Wei"},
        )
        # The audit team recorded by Telegram id still finds Wang Fang by her directory entry.
        assert _refusal(appeal, WANG, action) == (
            "staff.refused_auditor",
            {"ref": REF, "who": "Wang Fang"},
        )
        assert _refusal(appeal, LI, action) is None
    with pytest.raises(ValueError):
        impartiality.check_action(appeal, REF, LI, "anything")


def test_a_display_name_is_not_an_identity() -> None:
    appeal = Decision(decided_by="Zhang Wei")
    # Someone outside the directory calling themselves "Li Na" proves nothing either way.
    stranger = Acting.unlisted(9009, "Li Na")
    assert stranger.ids == ("9009",) and not stranger.known
    assert _refusal(appeal, stranger, "reply") == (
        "staff.refused_unverified",
        {"ref": REF, "who": "9009"},
    )
    # Where nobody must stand aside, a Telegram id alone will do.
    assert _refusal(Decision(), stranger, "reply") is None


def test_someone_elses_case_waits_for_a_hand_over() -> None:
    case = Decision(assignee="li@desk.test")
    assert _refusal(case, LI, "reply") is None
    # Taken on Telegram (the assignee is a Telegram id): the directory entry is the same person.
    assert _refusal(Decision(assignee="9003"), LI, "milestone") is None
    assert _refusal(case, WANG, "reply") == (
        "staff.refused_not_assignee",
        {"ref": REF, "who": "Wang Fang", "assignee": "Li Na"},
    )
    for action in ("milestone", "decision", "extension"):
        assert _refusal(case, WANG, action) is not None
    # Taking it over is an assignment, which names whom it is handed over from.
    assert _refusal(case, WANG, "assign") is None
    assert impartiality.check_assignment(case, REF, WANG, WANG) == "li@desk.test"
    assert impartiality.check_assignment(case, REF, WANG, LI) is None  # Li Na has it already
    assert impartiality.check_assignment(Decision(), REF, WANG, LI) is None  # a first one


def test_assignment_checks_the_one_assigned_too() -> None:
    appeal = Decision(decided_by="Zhang Wei", audit_team=["Wang Fang"])
    with pytest.raises(CaseRefused) as refused:
        impartiality.check_assignment(appeal, REF, LI, ZHANG)
    assert refused.value.key == "staff.assign_refused_decider"
    assert refused.value.args_ == {"ref": REF, "who": "Zhang Wei"}
    with pytest.raises(CaseRefused) as refused:
        impartiality.check_assignment(appeal, REF, LI, Acting.unlisted(9002))
    assert refused.value.key == "staff.assign_refused_unverified"
    assert refused.value.args_ == {"ref": REF, "who": "9002"}
    # The one assigning stands aside as well, whoever they would assign.
    with pytest.raises(CaseRefused) as refused:
        impartiality.check_assignment(appeal, REF, WANG, LI)
    assert refused.value.key == "staff.refused_auditor"
    assert impartiality.check_assignment(appeal, REF, LI, LI) is None
    # Nobody to stand aside: an id alone will do.
    unlisted = Acting.unlisted(9002)
    assert impartiality.check_assignment(Decision(), REF, unlisted, unlisted) is None


# --- what users type --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("2026-08-01", date(2026, 8, 1)),
        ("2026/8/1", date(2026, 8, 1)),
        ("2026.8.1", date(2026, 8, 1)),
        ("2026年8月1日", date(2026, 8, 1)),
        (" 2026 年 12 月 31 日 ", date(2026, 12, 31)),
        ("2026-02-29", None),  # not a day of 2026
        ("2026-13-01", None),
        ("last month", None),
        ("01/08/2026", None),
        ("", None),
    ],
)
def test_parse_date(typed: str, expected: date | None) -> None:
    assert rules.parse_date(typed) == expected


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("qa@factory.example", ("qa@factory.example", None)),
        ("  eve@example.test ", ("eve@example.test", None)),
        ("13800138000", (None, "13800138000")),
        ("+86 138 0000 0000", (None, "+86 138 0000 0000")),
        ("(010) 6512-3456", (None, "(010) 6512-3456")),
        ("123456", None),  # too few digits for a phone number
        ("qa@factory", None),
        ("Factory Ltd", None),
        ("", None),
    ],
)
def test_parse_contact(typed: str, expected: tuple[str | None, str | None] | None) -> None:
    assert rules.parse_contact(typed) == expected


# --- a letter's receipt day -------------------------------------------------------------------

_MONDAY_10 = datetime(2026, 9, 28, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai


@pytest.mark.parametrize(
    ("internal_date", "day"),
    [
        (datetime(2026, 9, 25, 18, 30, tzinfo=SHANGHAI), date(2026, 9, 25)),  # read on Monday
        # 23:30 UTC on Sunday is Monday morning in Shanghai
        (datetime(2026, 9, 27, 16, 30, tzinfo=UTC), date(2026, 9, 28)),
        (datetime(2026, 9, 27, 15, 59, tzinfo=UTC), date(2026, 9, 27)),
        (datetime(2026, 9, 29, 9, 0, tzinfo=SHANGHAI), date(2026, 9, 28)),  # ahead of our clock
        (datetime(2026, 6, 1, 9, 0, tzinfo=SHANGHAI), date(2026, 9, 28)),  # implausibly old
        (None, date(2026, 9, 28)),
    ],
)
def test_a_letter_is_received_the_day_it_reached_the_inbox_in_shanghai(
    internal_date: datetime | None, day: date
) -> None:
    assert letter_receipt_day(internal_date, _MONDAY_10) == day
