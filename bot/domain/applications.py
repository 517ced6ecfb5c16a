"""Applications: stages, allowed moves, the applicant's next step, checklist progress."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from bot.domain.policy import Profile

DRAFT = "draft"
DOCUMENTS_COMPLETE = "documents_complete"
UNDER_REVIEW = "under_review"
ACCEPTED = "accepted"
MORE_INFO = "more_info"
NOT_ACCEPTED = "not_accepted"
STAGE1 = "stage1"
STAGE2 = "stage2"
DECISION = "decision"
CERTIFIED = "certified"

STAGES: tuple[str, ...] = (
    DRAFT,
    DOCUMENTS_COMPLETE,
    UNDER_REVIEW,
    ACCEPTED,
    MORE_INFO,
    NOT_ACCEPTED,
    STAGE1,
    STAGE2,
    DECISION,
    CERTIFIED,
)

# Where an application may go from each stage. A rejected document sends a complete file back.
TRANSITIONS: dict[str, frozenset[str]] = {
    DRAFT: frozenset({DOCUMENTS_COMPLETE}),
    DOCUMENTS_COMPLETE: frozenset({DRAFT, UNDER_REVIEW}),
    UNDER_REVIEW: frozenset({ACCEPTED, MORE_INFO, NOT_ACCEPTED, DRAFT, DOCUMENTS_COMPLETE}),
    MORE_INFO: frozenset({DOCUMENTS_COMPLETE, UNDER_REVIEW}),
    ACCEPTED: frozenset({STAGE1}),
    NOT_ACCEPTED: frozenset(),
    STAGE1: frozenset({STAGE2}),
    STAGE2: frozenset({DECISION}),
    DECISION: frozenset({CERTIFIED, NOT_ACCEPTED}),
    CERTIFIED: frozenset(),
}


class StageError(ValueError):
    """A move the stage machine does not allow."""


def check_move(current: str, target: str) -> None:
    if target not in TRANSITIONS.get(current, frozenset()):
        raise StageError(f"an application cannot go from {current!r} to {target!r}")


def next_step_key(stage: str) -> str:
    """Catalog key of what the applicant must do next at this stage."""
    return f"application.next_{stage}"


class Upload(Protocol):
    """What the checklist needs of an uploaded document (storage.models.Document)."""

    @property
    def id(self) -> int | None: ...
    @property
    def item_id(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def original_name(self) -> str: ...
    @property
    def reason(self) -> str | None: ...


@dataclass(frozen=True)
class ItemState:
    item_id: str
    clause: str
    status: str | None  # None: nothing uploaded; else received | accepted | rejected
    original_name: str | None = None
    reason: str | None = None
    document_id: int | None = None


@dataclass(frozen=True)
class Progress:
    items: tuple[ItemState, ...]

    @property
    def total(self) -> int:
        return len(self.items)

    @property
    def received(self) -> int:
        """Items with an upload that is not rejected ("已收到 4/9")."""
        return sum(1 for i in self.items if i.status in ("received", "accepted"))

    @property
    def accepted(self) -> int:
        return sum(1 for i in self.items if i.status == "accepted")

    @property
    def complete(self) -> bool:
        return self.received == self.total

    @property
    def all_accepted(self) -> bool:
        return self.accepted == self.total


def progress(profile: Profile, scheme: str | None, documents: Iterable[Upload]) -> Progress:
    """The checklist of the scheme with the latest upload of each item."""
    latest = {d.item_id: d for d in documents}
    items = []
    for item in profile.checklist(scheme):
        doc = latest.get(item.id)
        items.append(
            ItemState(
                item.id,
                item.clause,
                doc.status if doc else None,
                doc.original_name if doc else None,
                doc.reason if doc else None,
                doc.id if doc else None,
            )
        )
    return Progress(tuple(items))


def stage_for(stage: str, p: Progress) -> str:
    """The stage the checklist puts an application in, for stages the checklist drives."""
    if stage not in (DRAFT, DOCUMENTS_COMPLETE, UNDER_REVIEW, MORE_INFO):
        return stage  # past review, uploads no longer move the application
    if p.all_accepted:
        return UNDER_REVIEW
    if p.complete:
        return DOCUMENTS_COMPLETE
    return stage if stage == MORE_INFO else DRAFT


REJECT_REASONS: tuple[str, ...] = (
    "illegible",
    "wrong_document",
    "expired",
    "incomplete",
    "unsigned",
)
