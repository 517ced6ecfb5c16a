"""Profiles: the shipped ones load and cite their clauses; a bad one is refused in one line."""

from pathlib import Path

import pytest

from bot.domain.policy import CASE_KINDS, MILESTONES, Profile, ProfileError, TimeRule
from bot.profiles import list_profiles, load_profile
from messages.render import catalog

SHIPPED = ["bqc", "ggbz", "ics", "ietp", "sgc"]
# Management-system bodies: a 3-year certificate with surveillance (IETP has a status model,
# ICS issues no certificate).
MANAGEMENT = ["bqc", "ggbz", "sgc"]

MINIMAL = """
[body]
id = "demo"
name_zh = "示例"
name_en = "Demo"
standard = "GB/T 0"
schemes = ["SA"]

[certificate]
validity_months = 36
clause = "demo §1"

[cases]
appeal_formalities = "demo §2"

[rules.appeal.decision]
applies_to = "appeal"
count = 60
unit = "days"
from = "received"
closed_by = "decision_made"
clause = "demo §3"

[[eligibility]]
id = "legal_person"
kind = "yes_no"
pass_answer = true
clause = "demo §4"

[[documents]]
id = "application_form"
clause = "demo §5"
"""


def write(tmp_path: Path, text: str, name: str = "demo.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def refused(path: Path) -> ProfileError:
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    assert "\n" not in str(info.value)
    return info.value


def test_list_profiles_names_the_shipped_ones() -> None:
    assert list_profiles() == SHIPPED


@pytest.mark.parametrize("name", MANAGEMENT)
def test_every_shipped_profile_loads_and_cites_clauses(name: str) -> None:
    profile = load_profile(name)
    assert isinstance(profile, Profile)
    assert profile.body.id == name
    assert load_profile(name) is profile  # cached
    for rule_id, rule in profile.rules.items():
        assert rule.id == rule_id and rule.clause.strip()
        if rule.applies_to in CASE_KINDS:
            assert rule.from_ in {"received", "decided", "notified", "outcome_sent"}
        assert rule.closed_by is None or rule.closed_by in MILESTONES
    assert all(c.clause.strip() for c in profile.eligibility)
    assert all(d.clause.strip() for d in profile.documents)
    assert profile.certificate.validity_months == 36
    for common in ("surveillance.first", "surveillance.max_gap", "recertification.apply"):
        assert common in profile.rules, common
    assert profile.rule("recertification.apply").direction == "before"


@pytest.mark.parametrize("name", SHIPPED)
def test_every_id_has_its_catalog_texts(name: str) -> None:
    texts = catalog()
    profile = load_profile(name)
    for cond in profile.eligibility:
        assert f"eligibility.q_{cond.id}" in texts, cond.id
        assert f"eligibility.fail_{cond.id}" in texts, cond.id
    for doc in profile.documents:
        assert f"documents.{doc.id}" in texts, doc.id
    for rule_id in profile.rules:
        assert f"rules.{rule_id}" in texts, rule_id


def test_ggbz_case_rules_match_domain() -> None:
    rules = load_profile("ggbz").rules
    expected = {
        "appeal.filing_window": (3, "months", "decided", None),
        "appeal.work_group": (10, "working_days", "received", "work_group_formed"),
        "appeal.decision": (60, "days", "received", "decision_made"),
        # §8.5.3 "investigate, handle and notify": met by the written notice.
        "complaint.investigation": (30, "working_days", "received", "answer_sent"),
        "complaint.written_result": (60, "days", "received", "answer_sent"),
    }
    case_rules = {k: r for k, r in rules.items() if r.applies_to in CASE_KINDS}
    assert set(case_rules) == set(expected)
    for rule_id, (count, unit, start, closed_by) in expected.items():
        rule = rules[rule_id]
        assert (rule.count, rule.unit, rule.from_, rule.closed_by) == (
            count,
            unit,
            start,
            closed_by,
        )
    assert "§8.6.2" in rules["appeal.work_group"].clause


def test_case_rules_per_body_follow_the_domain_table() -> None:
    bqc, sgc = load_profile("bqc").rules, load_profile("sgc").rules
    assert (bqc["appeal.filing_window"].count, bqc["appeal.filing_window"].unit) == (15, "days")
    assert "3 months" in (bqc["appeal.decision"].note or "")  # the conflict is named, for staff
    assert (bqc["complaint.written_result"].count, bqc["complaint.written_result"].unit) == (
        60,
        "working_days",
    )
    assert "appeal.work_group" not in bqc and "dispute.answer" not in bqc
    assert (sgc["appeal.filing_window"].count, sgc["appeal.filing_window"].unit) == (
        10,
        "working_days",
    )
    assert (sgc["dispute.answer"].count, sgc["dispute.answer"].unit) == (30, "working_days")
    assert not any(r.applies_to == "dispute" for r in load_profile("ggbz").rules.values())


def test_case_settings() -> None:
    ggbz, bqc, sgc = (load_profile(n).cases for n in ("ggbz", "bqc", "sgc"))
    assert ggbz.anonymous_complaints_accepted and ggbz.appeal_deposit_cny is None
    for cases in (bqc, sgc):
        assert not cases.anonymous_complaints_accepted and cases.anonymous_clause
        assert cases.appeal_deposit_cny == 2000


def test_bqc_running_period_is_six_months_for_enms() -> None:
    running = next(c for c in load_profile("bqc").eligibility if c.id == "running")
    assert running.months_for("QMS") == 3 and running.months_for("EnMS") == 6


def test_time_rule_keeps_its_shape() -> None:
    rule = TimeRule.model_validate(
        {"applies_to": "appeal", "count": 1, "unit": "days", "from": "received", "clause": "x"}
    )
    assert rule.id == "" and rule.direction == "after" and rule.closed_by is None


def test_minimal_profile_loads_and_quoted_key_form_is_the_same(tmp_path: Path) -> None:
    plain = load_profile(write(tmp_path, MINIMAL))
    quoted = load_profile(
        write(
            tmp_path,
            MINIMAL.replace("[rules.appeal.decision]", '[rules."appeal.decision"]'),
            "q.toml",
        )
    )
    assert plain.rules == quoted.rules
    assert plain.calendar.roll_to_workday is True
    assert plain.certificate.reminder_days_before == (90, 60, 30, 7)
    assert plain.audit_time is None and plain.fees is None


def test_unknown_key_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace('unit = "days"', 'unit = "days"\ngrace = 3'))
    err = refused(path)
    assert str(err) == f"{path}: rules.appeal.decision.grace: unknown key"


def test_bad_unit_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace('unit = "days"', 'unit = "weeks"'))
    err = refused(path)
    assert err.file == str(path) and err.key == "rules.appeal.decision.unit"
    assert "weeks" in err.reason


def test_missing_clause_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace('clause = "demo §3"', ""))
    assert str(refused(path)) == f"{path}: rules.appeal.decision.clause: missing"
    path = write(tmp_path, MINIMAL.replace('clause = "demo §4"', ""), "e.toml")
    assert refused(path).key == "eligibility[legal_person].clause"


def test_unknown_profile_name_is_refused() -> None:
    with pytest.raises(ProfileError) as info:
        load_profile("nosuch")
    assert str(info.value).startswith("bot/profiles/nosuch.toml: profile: unknown profile name")
    assert "ggbz" in str(info.value)


def test_missing_file_and_toml_syntax_are_refused(tmp_path: Path) -> None:
    assert refused(tmp_path / "absent.toml").key == "file"
    err = refused(write(tmp_path, "[body\nid = 1"))
    assert err.key == "toml" and "syntax" in err.reason


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ('applies_to = "appeal"', 'applies_to = "appel"', "rules.appeal.decision.applies_to"),
        ('from = "received"', 'from = "expiry"', "rules.appeal.decision.from"),
        ('closed_by = "decision_made"', 'closed_by = "done"', "rules.appeal.decision.closed_by"),
        ("pass_answer = true", "min_months = 3", "eligibility[legal_person].pass_answer"),
        (
            'id = "application_form"',
            'id = "application_form"\nschemes = ["EMS"]',
            "documents[application_form].schemes",
        ),
        ("count = 60", "count = 0", "rules.appeal.decision.count"),
    ],
)
def test_inconsistent_values_are_refused(tmp_path: Path, old: str, new: str, key: str) -> None:
    assert old in MINIMAL
    assert refused(write(tmp_path, MINIMAL.replace(old, new))).key == key


def test_duplicate_condition_ids_are_refused(tmp_path: Path) -> None:
    extra = '\n[[eligibility]]\nid = "legal_person"\nkind = "yes_no"\npass_answer = true\n'
    extra += 'clause = "x"\n'
    assert refused(write(tmp_path, MINIMAL + extra)).key == "eligibility[legal_person].id"


def test_anonymous_refusal_needs_a_clause(tmp_path: Path) -> None:
    text = MINIMAL.replace("[cases]\n", "[cases]\nanonymous_complaints_accepted = false\n")
    assert refused(write(tmp_path, text)).key == "cases.anonymous_clause"


def test_audit_points_must_increase(tmp_path: Path) -> None:
    table = """
[audit_time]
clause = "demo §6"
points = [[1, 1.5], [10, 2], [10, 3]]

[audit_time.multisite]
clause = "demo §7"
"""
    err = refused(write(tmp_path, MINIMAL + table))
    assert err.key == "audit_time.points" and "strictly increasing" in err.reason
    fraction = table.replace("[10, 3]]", '[25, 3]]\nsurveillance_fraction = "one third"')
    assert refused(write(tmp_path, MINIMAL + fraction, "f.toml")).key == (
        "audit_time.surveillance_fraction"
    )


def test_rule_id_is_the_table_key(tmp_path: Path) -> None:
    text = MINIMAL.replace("[rules.appeal.decision]", '[rules.appeal.decision]\nid = "other"')
    assert refused(write(tmp_path, text)).key == "rules.appeal.decision.id"


def test_a_profile_naming_a_condition_without_text_is_refused_at_load(tmp_path: Path) -> None:
    from bot.profiles import PROFILE_DIR

    source = (PROFILE_DIR / "ggbz.toml").read_text(encoding="utf-8")
    mine = tmp_path / "mybody.toml"
    # A deployer adds a condition of their own and forgets its question text.
    first = source.index("[[eligibility]]")
    block_end = source.index("[[eligibility]]", first + 1)
    block = source[first:block_end]
    own_id = block.split('id = "', 1)[1].split('"', 1)[0]
    mine.write_text(source + "\n" + block.replace(f'id = "{own_id}"', 'id = "own_rule_x"'))
    with pytest.raises(ProfileError) as refused:
        load_profile(mine)
    assert "eligibility[own_rule_x].id" in str(refused.value)
    assert "eligibility.q_own_rule_x" in str(refused.value)
