"""The case service: appeals, complaints and disputes from Telegram and e-mail alike.

`from bot.services import cases` reaches everything below (the modules are split by concern):

- opening.py: `open_case(desk, uow, *, kind, channel, complainant, subject, description,
  attachments=(), decided_on=None, decided_by=None, audit_team=(), concerns=None,
  concerns_certificate_no=None, source_message_id=None, received_on=None,
  acknowledge_by_email=True) -> OpenedCase` stores the case, its first event and every deadline
  the profile defines for the kind, and queues the acknowledgement and the staff alert.
- actions.py: `add_information(desk, uow, case, actor, text, attachments=(),
  source_message_id=None)` (the e-mail intake calls it for replies); `provide_identity`,
  `withdraw`, `record_milestone`, `assign`, `reply`: the rest of the life.
- attachments.py: `keep_attachment(desk, uow, data, name)` type-checks, size-checks and stores
  a file; `check_upload_size(desk, size)` alone, before downloading.
- verify.py: `verify(uow, ref=None) -> list[Problem]` recomputes the hash chains.
- dates.py: `give_dates(desk, uow, case, actor, decided_on=, notified_on=)`: the decision's
  dates given by staff after the fact; the filing windows they start.
- steps.py: the outcome letter (sent by the final milestone) with where to go next and the
  window it opens; `decide_acceptance` (SGC §八1.4), `extend_deadline` (named approver),
  `inform_organisation`, `decide_publicity`, `mark_serious` (SGC §八2.4).
- lookups.py: what the chat handlers read (own cases, staff lists, locked cases).
- texts.py: `deadline_lines`, `format_date`, `kind_name`, `rule_label`, `cut`, `th_with_lines`,
  `complainant_identity` (staff eyes only), `refused_html` / `refused_text`.
- outgoing.py: `new_message_id(desk, ref)`: a Message-ID for a letter about the case.
- The rules (milestones, filing windows, identity, impartiality, typed dates and contacts) are
  bot.domain.cases', re-exported here.

Every function only adds to the caller's unit of work (`uow.session`); the caller commits, so
the case, its events, its deadlines and its outbox messages are written together or not at all.
`open_case`, `add_information` and `keep_attachment` also take a bare session (`Work`): the
e-mail intake passes the one it manages its savepoints in. Refusals raise `CaseRefused`, whose
text comes from the catalog in the reader's language (`refused_html`).
"""

from __future__ import annotations

from bot.domain.cases import (
    ALL_MILESTONES,
    FINAL_MILESTONE,
    MILESTONE_ORDER,
    WITHDRAWN,
    CaseRefused,
    Complainant,
    Status,
    identity_required,
    impartiality_conflict,
    milestones_for,
    parse_contact,
    parse_date,
)
from bot.services.cases.actions import (
    add_information,
    assign,
    provide_identity,
    record_milestone,
    reply,
    withdraw,
)
from bot.services.cases.attachments import Attachment, check_upload_size, keep_attachment
from bot.services.cases.dates import give_dates
from bot.services.cases.events import Work
from bot.services.cases.lookups import (
    CaseRecord,
    case_record,
    cases_of_user,
    lock_case,
    lock_own_case,
    open_cases,
    own_case,
    own_case_record,
)
from bot.services.cases.opening import OpenedCase, open_case
from bot.services.cases.outgoing import new_message_id
from bot.services.cases.steps import (
    decide_acceptance,
    decide_publicity,
    extend_deadline,
    inform_organisation,
    mark_serious,
)
from bot.services.cases.texts import (
    case_flags,
    complainant_identity,
    cut,
    deadline_lines,
    format_date,
    kind_name,
    refused_html,
    refused_text,
    rule_label,
    th_with_lines,
)
from bot.services.cases.verify import Problem, count_cases, verify
from storage.repo import cases as _repo

# Lookups by a session, for the e-mail intake and tests.
find_case_by_ref = _repo.find_case_by_ref
find_case_by_message_id = _repo.find_case_by_message_id

__all__ = [
    "ALL_MILESTONES",
    "FINAL_MILESTONE",
    "MILESTONE_ORDER",
    "WITHDRAWN",
    "Attachment",
    "CaseRecord",
    "CaseRefused",
    "Complainant",
    "OpenedCase",
    "Problem",
    "Status",
    "Work",
    "add_information",
    "assign",
    "case_flags",
    "case_record",
    "cases_of_user",
    "check_upload_size",
    "complainant_identity",
    "count_cases",
    "cut",
    "deadline_lines",
    "decide_acceptance",
    "decide_publicity",
    "extend_deadline",
    "find_case_by_message_id",
    "find_case_by_ref",
    "format_date",
    "give_dates",
    "identity_required",
    "impartiality_conflict",
    "inform_organisation",
    "keep_attachment",
    "kind_name",
    "lock_case",
    "lock_own_case",
    "mark_serious",
    "milestones_for",
    "new_message_id",
    "open_case",
    "open_cases",
    "own_case",
    "own_case_record",
    "parse_contact",
    "parse_date",
    "provide_identity",
    "record_milestone",
    "refused_html",
    "refused_text",
    "reply",
    "rule_label",
    "th_with_lines",
    "verify",
    "withdraw",
]
