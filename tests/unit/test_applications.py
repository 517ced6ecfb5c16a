"""Application stages, moves, next steps and checklist progress (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.domain import applications as apps
from bot.profiles import load_profile
from messages.render import catalog
from storage.models import Document

NOW = datetime(2026, 11, 20, tzinfo=UTC)


def doc(item: str, status: str, n: int = 1) -> Document:
    return Document(
        id=n, application_id=1, item_id=item, stored_file_id=1, original_name="x.pdf",
        status=status, uploaded_at=NOW,
    )  # fmt: skip


def test_progress_counts_received_and_accepted_like_the_applicant_reads_it() -> None:
    profile = load_profile("ggbz")
    docs = [
        doc("application_form", "accepted"),
        doc("legal_status", "received"),
        doc("licences", "rejected"),
        doc("org_chart", "received"),
    ]
    p = apps.progress(profile, "SA", docs)
    assert (p.received, p.accepted, p.total) == (3, 1, 8)
    assert not p.complete and not p.all_accepted
    assert [i.status for i in p.items][:5] == ["accepted", "received", "rejected", "received", None]


def test_scheme_specific_items_only_for_their_scheme() -> None:
    bqc = load_profile("bqc")
    assert "eia_report" in {i.item_id for i in apps.progress(bqc, "EMS", []).items}
    assert "eia_report" not in {i.item_id for i in apps.progress(bqc, "QMS", []).items}


@pytest.mark.parametrize(
    ("stage", "statuses", "expected"),
    [
        ("draft", ["received"] * 8, "documents_complete"),
        ("documents_complete", ["accepted"] * 8, "under_review"),
        ("documents_complete", ["accepted"] * 7 + ["rejected"], "draft"),
        ("under_review", ["accepted"] * 7 + ["received"], "documents_complete"),
        ("draft", ["received"] * 7, "draft"),
        ("more_info", ["received"] * 7, "more_info"),
        ("stage1", ["rejected"] * 8, "stage1"),  # past review, uploads move nothing
    ],
)
def test_stage_follows_the_checklist(stage: str, statuses: list[str], expected: str) -> None:
    profile = load_profile("ggbz")
    items = [d.id for d in profile.checklist("SA")]
    docs = [
        doc(item, status, n) for n, (item, status) in enumerate(zip(items, statuses, strict=False))
    ]
    assert apps.stage_for(stage, apps.progress(profile, "SA", docs)) == expected


def test_moves_outside_the_machine_are_refused() -> None:
    apps.check_move("draft", "documents_complete")
    with pytest.raises(apps.StageError):
        apps.check_move("draft", "certified")
    with pytest.raises(apps.StageError):
        apps.check_move("certified", "draft")
    assert set(apps.TRANSITIONS) == set(apps.STAGES)
    assert all(targets <= set(apps.STAGES) for targets in apps.TRANSITIONS.values())


def test_every_stage_has_a_name_and_a_next_step_in_the_catalog() -> None:
    texts = catalog()
    for stage in apps.STAGES:
        assert f"application.stage_{stage}" in texts
        assert apps.next_step_key(stage) in texts
    for reason in apps.REJECT_REASONS:
        assert f"application.reason_{reason}" in texts
