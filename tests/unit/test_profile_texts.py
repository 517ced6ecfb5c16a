"""What the profiles show users (issue 15 §6): citations without drafting notes; the notes kept
for staff and deployers; GGBZ's calendar-year accident question and 6-month evidence."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from bot.domain.policy import Profile
from bot.profiles import list_profiles, load_profile

# Two English words in a row: a drafting note, not a citation (codes like "GGBZ §8.5.3",
# "EnMS", "GB/T 27922-2011" or "CNCA" are single tokens).
_NOTE = re.compile(r"[A-Za-z]{2,}[ ,;:]+[A-Za-z]{2,}")
_CODES = re.compile(r"\b(?:GB/T|IAF MD)\b")


def _shown(profile: Profile) -> Iterator[tuple[str, str]]:
    """Every clause text a complainant or applicant may read."""
    for rule in profile.rules.values():
        yield f"rules.{rule.id}", rule.clause
    for cond in profile.eligibility:
        yield f"eligibility[{cond.id}]", cond.clause
    for doc in profile.documents:
        yield f"documents[{doc.id}]", doc.clause
    yield "certificate", profile.certificate.clause
    cases = profile.cases
    for name in ("anonymous_clause", "appeal_formalities", "acceptance_clause"):
        value = getattr(cases, name)
        if value:
            yield f"cases.{name}", value
    for kind, step in cases.next_steps.items():
        yield f"cases.next_steps.{kind}", step.clause


@pytest.mark.parametrize("name", list_profiles())
def test_clause_texts_carry_no_drafting_notes(name: str) -> None:
    leaks = [
        (where, text)
        for where, text in _shown(load_profile(name))
        if _NOTE.search(_CODES.sub("", text))
    ]
    assert leaks == []


def test_the_notes_are_kept_for_staff() -> None:
    ggbz, sgc, bqc = load_profile("ggbz"), load_profile("sgc"), load_profile("bqc")
    assert "later bound" in (ggbz.rule("suspension.decide").note or "")
    assert "§5.1.3(6)" in (next(c for c in ggbz.eligibility if c.id == "running").note or "")
    assert "3 years assumed" in (sgc.certificate.note or "")
    assert "3 months" in (bqc.rule("appeal.decision").note or "")


def test_ggbz_asks_about_responsibility_accidents_this_calendar_year() -> None:
    ggbz = load_profile("ggbz")
    cond = next(c for c in ggbz.eligibility if c.id == "responsibility_accident")
    assert cond.kind == "yes_no" and cond.pass_answer is False
    assert "本年度" in cond.clause and "§5.1.2" in cond.clause
    evidence = next(d for d in ggbz.documents if d.id == "running_evidence")
    assert "6个月" in evidence.clause and "§5.1.3(6)" in evidence.clause
