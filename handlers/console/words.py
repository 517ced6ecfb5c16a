"""A case's history in words: each event as a sentence, each actor by name (texts: console.toml)."""

from __future__ import annotations

from datetime import date
from typing import Any

from bot.domain.cases import ALL_MILESTONES, WITHDRAWN
from bot.services.cases import cut, format_date, kind_name, rule_label
from messages.render import t
from storage.models import CaseEvent

MILESTONES = ALL_MILESTONES - {WITHDRAWN}


def channel_name(channel: str, loc: str) -> str:
    key = f"console.channel_{channel}"
    return t(key, loc) if channel else ""


def milestone_name(milestone: str, loc: str) -> str:
    return t(f"staff.btn_milestone_{milestone}", loc)


def actor_name(actor: str, names: dict[str, str], loc: str) -> str:
    if actor in names:
        return names[actor]
    if actor.startswith("complainant:"):
        return t("console.actor_complainant", loc)
    if actor == "system":
        return t("console.actor_system", loc)
    return actor


def _note(data: dict[str, Any], loc: str) -> str:
    note = data.get("note")
    return t("console.note_suffix", loc, note=cut(str(note), 300)) if note else ""


def _reason(data: dict[str, Any], loc: str) -> str:
    reason = data.get("reason")
    return t("console.note_suffix", loc, note=cut(str(reason), 500)) if reason else ""


def event_text(event: CaseEvent, kind: str, names: dict[str, str], loc: str) -> str:
    data = event.data or {}
    files = len(data.get("attachments") or [])
    with_files = t("console.event_files", loc, count=files) if files else ""
    match event.type:
        case "received":
            channel = channel_name(str(data.get("channel") or ""), loc)
            text = t("console.event_received", loc, kind=kind_name(kind, loc), channel=channel)
            return text + with_files
        case "acknowledged":
            return t("console.event_acknowledged", loc)
        case "information_added":
            said = cut(str(data.get("text") or ""), 500)
            return t("console.event_information_added", loc, text=said) + with_files
        case "identity_provided":
            return t("console.event_identity_provided", loc)
        case "assigned":
            assignee = str(data.get("assignee") or "")
            given = data.get("names") or []
            who = names.get(assignee) or (given[0] if given else assignee)
            return t("console.event_assigned", loc, who=who)
        case "reply_sent":
            channel = channel_name(str(data.get("channel") or ""), loc)
            said = cut(str(data.get("text") or ""), 500)
            return t("console.event_reply_sent", loc, channel=channel, text=said)
        case "withdrawn":
            return t("console.event_withdrawn", loc, note=_note(data, loc))
        case "accepted":
            late = t("console.event_accepted_late", loc) if data.get("out_of_time") else ""
            return t("console.event_accepted", loc, late=late, note=_reason(data, loc))
        case "refused":
            grounds = t(f"console.grounds_{data.get('grounds') or 'not_applicable'}", loc)
            return t("console.event_refused", loc, grounds=grounds, note=_reason(data, loc))
        case "opened_from_enquiry" | "enquiry_attached":
            letter = data.get("inbound_email", "?")
            return t(f"console.event_{event.type}", loc, id=letter, note=_reason(data, loc))
        case "outbox_retried" | "outbox_cancelled":
            what = t(f"console.{event.type.replace('outbox_', 'outbox_event_')}", loc)
            return t("console.event_outbox", loc, id=data.get("message", "?"), what=what)
        case "acceptance_decided":
            key = "event_acceptance_yes" if data.get("accepted") else "event_acceptance_no"
            return t(f"console.{key}", loc, note=_reason(data, loc))
        case "dates_given":
            return _dates_given(data, loc)
        case "deadline_extended":
            return t(
                "console.event_extended", loc, rule=rule_label(str(data.get("rule")), loc),
                before=_day(data.get("from"), loc), after=_day(data.get("to"), loc),
                who=data.get("approved_by") or "", role=data.get("approver_role") or "",
                note=_reason(data, loc),
            )  # fmt: skip
        case "organisation_informed":
            return t("console.event_informed", loc, how=cut(str(data.get("how") or ""), 300),
                     on=_day(data.get("on"), loc))  # fmt: skip
        case "publicity_decided":
            key = "event_public" if data.get("public") else "event_not_public"
            extent = cut(str(data.get("extent") or ""), 300)
            return t(f"console.{key}", loc, extent=extent)
        case "marked_serious":
            return t("console.event_serious", loc, note=_reason(data, loc))
        case "outcome_sent":
            if not data.get("channel"):
                return t("console.event_outcome_no_channel", loc)
            channel = channel_name(str(data["channel"]), loc)
            return t("console.event_outcome_sent", loc, channel=channel)
        case milestone if milestone in MILESTONES:
            label = milestone_name(milestone, loc)
            return t("console.event_milestone", loc, milestone=label, note=_note(data, loc))
    return t("console.event_other", loc, type=event.type)


def _day(value: Any, loc: str) -> str:
    try:
        return format_date(date.fromisoformat(str(value)), loc) if value else "—"
    except ValueError:
        return str(value)


def _dates_given(data: dict[str, Any], loc: str) -> str:
    late = t("console.event_accepted_late", loc) if data.get("out_of_time") else ""
    return t("console.event_dates_given", loc, decided=_day(data.get("decided_on"), loc),
             notified=_day(data.get("notified_on"), loc), late=late)  # fmt: skip


def met_text(closed_by: str | None, loc: str) -> str:
    """How a deadline was met: by a milestone (named), the letter itself, or the case closing."""
    if not closed_by:
        return ""
    if closed_by in MILESTONES:
        return milestone_name(closed_by, loc)
    if closed_by == WITHDRAWN:
        return t("cases.status_withdrawn", loc)
    if closed_by == "refused":
        return t("console.met_by_refused", loc)
    if closed_by == "not_accepted":
        return t("console.met_by_not_accepted", loc)
    if closed_by == "received":
        return t("console.met_by_received", loc)
    return closed_by
