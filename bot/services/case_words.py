"""A case's history in words, for any adapter: each event as a sentence, each actor by name,
how each deadline was met. Plain text (`html=False`) or HTML with every argument escaped
(`html=True`, for Telegram). The texts are the console's (console.toml) and, for events it does
not name yet, staff.toml's.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from bot.domain.cases import ALL_MILESTONES, WITHDRAWN
from bot.services.cases import cut, format_date, kind_name
from messages.render import rule_label, t, th
from storage.models import CaseEvent

MILESTONES = ALL_MILESTONES - {WITHDRAWN}
Render = Callable[..., str]


def _r(html: bool) -> Render:
    return th if html else t


def channel_name(channel: str, loc: str) -> str:
    return t(f"console.channel_{channel}", loc) if channel else ""


def milestone_name(milestone: str, loc: str) -> str:
    return t(f"staff.btn_milestone_{milestone}", loc)


def actor_name(actor: str, names: dict[str, str], loc: str) -> str:
    """A directory name for staff, "the complainant", "the desk"; never a raw actor id."""
    if actor in names:
        return names[actor]
    if actor.startswith("complainant:"):
        return t("console.actor_complainant", loc)
    if actor == "system":
        return t("console.actor_system", loc)
    return actor.removeprefix("staff:")


def _suffix(value: object, loc: str, limit: int = 300) -> str:
    return t("console.note_suffix", loc, note=cut(str(value), limit)) if value else ""


def event_text(
    event: CaseEvent, kind: str, names: dict[str, str], loc: str, *, html: bool = False
) -> str:
    r = _r(html)
    data: dict[str, Any] = event.data or {}
    files = len(data.get("attachments") or [])
    with_files = r("console.event_files", loc, count=files) if files else ""
    note, reason = _suffix(data.get("note"), loc), _suffix(data.get("reason"), loc, 500)
    match event.type:
        case "received":
            channel = channel_name(str(data.get("channel") or ""), loc)
            return r("console.event_received", loc, kind=kind_name(kind, loc), channel=channel) + (
                with_files
            )
        case "acknowledged":
            return r("console.event_acknowledged", loc)
        case "information_added":
            said = cut(str(data.get("text") or ""), 1000)
            return r("console.event_information_added", loc, text=said) + with_files
        case "identity_provided":
            return r("console.event_identity_provided", loc)
        case "assigned":
            to = _staff(str(data.get("assignee") or ""), data.get("names") or [], names)
            before = data.get("handed_over_from")
            if before:
                return r("staff.event_handed_over", loc, who=_staff(str(before), [], names), to=to)
            return r("console.event_assigned", loc, who=to)
        case "reply_sent":
            channel = channel_name(str(data.get("channel") or ""), loc)
            said = cut(str(data.get("text") or ""), 1000)
            return r("console.event_reply_sent", loc, channel=channel, text=said)
        case "withdrawn":
            return r("console.event_withdrawn", loc, note=note)
        case "accepted":
            late = t("console.event_accepted_late", loc) if data.get("out_of_time") else ""
            return r("console.event_accepted", loc, late=late, note=reason)
        case "refused":
            grounds = t(f"console.grounds_{data.get('grounds') or 'not_applicable'}", loc)
            return r("console.event_refused", loc, grounds=grounds, note=reason)
        case "outcome_sent":
            if not data.get("channel"):
                return r("console.event_outcome_no_channel", loc)
            channel = channel_name(str(data["channel"]), loc)
            said = _suffix(data.get("text"), loc, 1000)
            return r("staff.event_outcome_sent", loc, channel=channel, text=said)
        case "acceptance_decided":
            key = "event_acceptance_yes" if data.get("accepted") else "event_acceptance_no"
            return r(f"console.{key}", loc, note=reason)
        case "deadline_extended":
            return r(
                "console.event_extended",
                loc,
                rule=rule_label(str(data["rule"]), loc) if data.get("rule") else "",
                before=_day(data.get("from"), loc),
                after=_day(data.get("to"), loc),
                who=str(data.get("approved_by") or ""),
                role=str(data.get("approver_role") or ""),
                note=reason,
            )
        case "organisation_informed":
            how = cut(str(data.get("how") or ""), 300)
            return r("console.event_informed", loc, how=how, on=_day(data.get("on"), loc))
        case "publicity_decided":
            key = "staff.event_public_yes" if data.get("public") else "staff.event_public_no"
            return r(key, loc, extent=cut(str(data.get("extent") or ""), 300))
        case "marked_serious":
            return r("staff.event_marked_serious", loc, note=reason)
        case "dates_given":
            late = t("console.event_accepted_late", loc) if data.get("out_of_time") else ""
            return r(
                "console.event_dates_given",
                loc,
                decided=_day(data.get("decided_on"), loc),
                notified=_day(data.get("notified_on"), loc),
                late=late,
            )
        case "opened_from_enquiry" | "enquiry_attached":
            letter = data.get("inbound_email", "?")
            return r(f"console.event_{event.type}", loc, id=letter, note=reason)
        case "outbox_retried" | "outbox_cancelled":
            what = t(f"console.{event.type.replace('outbox_', 'outbox_event_')}", loc)
            return r("console.event_outbox", loc, id=data.get("message", "?"), what=what)
        case milestone if milestone in MILESTONES:
            label = milestone_name(milestone, loc)
            return r("console.event_milestone", loc, milestone=label, note=note)
    return r("console.event_other", loc, type=event.type)


def _day(value: Any, loc: str) -> str:
    """A day an event names, as the locale writes dates; what is not a date, as given."""
    try:
        return format_date(date.fromisoformat(str(value)), loc) if value else "—"
    except ValueError:
        return str(value)


def _staff(key: str, given: list[str], names: dict[str, str]) -> str:
    """A staff member named in an event (an e-mail or a Telegram id): their directory name."""
    return names.get(key) or names.get(f"staff:{key}") or (given[0] if given else key)


def staff_keys(events: list[CaseEvent], assignee: str | None) -> list[str]:
    """Every staff actor and assignee the history names, as `names_of_actors` takes them."""
    found = [e.actor for e in events]
    for e in events:
        data = e.data or {}
        found += [f"staff:{data[k]}" for k in ("assignee", "handed_over_from") if data.get(k)]
    if assignee:
        found.append(f"staff:{assignee}")
    return found


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
    if closed_by == "outcome_sent":
        return t("staff.met_by_outcome_sent", loc)
    return closed_by


__all__ = ["actor_name", "channel_name", "event_text", "met_text", "milestone_name", "staff_keys"]
