"""The texts of cases: acknowledgement bodies, staff alerts, deadline lines, refusals.

Every text comes from messages/catalogs (cases.toml, staff.toml) in the reader's language.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from html import escape
from typing import Any, Protocol

from bot.desk import Desk
from bot.domain.cases import CaseRefused
from bot.domain.deadlines import ComputedDeadline
from bot.domain.policy import Profile
from bot.domain.refs import subject_tag
from bot.services.cases.lookups import Followed
from messages.render import catalog, normalise_locale, rule_label, t, th
from storage.models import Case, CaseEvent, Channel, Deadline

Buttons = list[list[dict[str, str]]]


class CaseText(Protocol):
    """What the texts read of a case (a row, or a batch's case not read back)."""

    @property
    def ref(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def channel(self) -> str: ...
    @property
    def locale(self) -> str: ...
    @property
    def out_of_time(self) -> bool: ...
    @property
    def incomplete(self) -> bool: ...


def refused_text(refused: CaseRefused, locale: str | None) -> str:
    """Why the rules refused, as plain text."""
    return t(refused.key, locale, **refused.args_)


def refused_html(refused: CaseRefused, locale: str | None) -> str:
    """Why the rules refused, as HTML (arguments escaped)."""
    return th(refused.key, locale, **refused.args_)


def format_date(d: date, locale: str | None) -> str:
    if normalise_locale(locale) == "zh_CN":
        return f"{d.year}年{d.month}月{d.day}日"
    return d.isoformat()


def kind_name(kind: str, locale: str | None) -> str:
    return t(f"cases.kind_{kind}", locale)


def cut(text: str, limit: int = 300) -> str:
    """User text shortened for a message; cut before escaping, so an entity is never split."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def deadline_lines(
    deadlines: Iterable[ComputedDeadline | Deadline], locale: str | None, *, as_html: bool
) -> list[str]:
    """One line per deadline: rule name, due date, clause; provisional dates marked."""
    render = th if as_html else t
    lines = []
    for d in deadlines:
        rule = d.rule if isinstance(d, ComputedDeadline) else d.rule_id
        due = d.due if isinstance(d, ComputedDeadline) else d.due_on
        line = render(
            "cases.deadline_line",
            locale,
            rule=rule_label(rule, locale),
            due=format_date(due, locale),
            clause=d.clause,
        )
        if d.provisional:
            line += render("cases.provisional_mark", locale)
        lines.append(line)
    return lines


def th_with_lines(
    key: str, locale: str | None, /, lines: Mapping[str, Sequence[str]], **args: object
) -> str:
    """`th` where some placeholders take lines that are HTML already (escaped when rendered),
    one per line; the other arguments are escaped as usual. Filled in one pass, so user text
    can never be taken for a placeholder."""
    safe = {name: escape(str(value), quote=False) for name, value in args.items()}
    blocks = {name: "\n".join(block) for name, block in lines.items()}
    return catalog()[key][normalise_locale(locale)].format(**safe, **blocks)


def both(key: str, locale: str, **args: object) -> tuple[str, str]:
    """A catalog text as plain text (e-mail) and as HTML (arguments escaped)."""
    return t(key, locale, **args), th(key, locale, **args)


def email_html(text_html: str) -> str:
    body = text_html.replace("\n", "<br>\n")
    return f"<!DOCTYPE html><html><body>{body}</body></html>"


def complainant_identity(case: Case, events: Iterable[CaseEvent]) -> list[str]:
    """Name, e-mail and phone as last given (on receipt or later): for staff eyes only."""
    known: dict[str, Any] = {}
    for event in events:
        data = event.data or {}
        given = data.get("complainant") if event.type == "received" else data
        if event.type in ("received", "identity_provided") and given:
            known |= {k: given[k] for k in ("name", "email", "phone") if given.get(k)}
    known |= {
        k: v for k, v in (("name", case.complainant_name), ("email", case.complainant_email)) if v
    }
    return [str(known[k]) for k in ("name", "email", "phone") if known.get(k)]


# --- the written acknowledgement ---------------------------------------------------------------


@dataclass(frozen=True)
class Dates:
    """The dates a case's clocks count from, as given when it was filed."""

    received: date
    decided: date | None = None
    notified: date | None = None


@dataclass(frozen=True)
class Ack:
    """What the acknowledgement says about the case's dates."""

    computed: Sequence[ComputedDeadline]
    windows: Sequence[ComputedDeadline]  # the filing windows computed
    unchecked: Sequence[str]  # filing windows whose start date is not known yet
    dates: Dates
    follows: Followed | None = None

    @property
    def tracked(self) -> list[ComputedDeadline]:
        return [d for d in self.computed if d not in self.windows]


def window_start(profile: Profile, kind: str, rule_id: str, dates: Dates) -> tuple[str, date]:
    """The catalog key naming the day a filing window counts from, and that day."""
    rule = profile.rules[rule_id]
    if rule.from_ == "notified" and dates.notified is not None:
        return "cases.start_notified", dates.notified
    assert dates.decided is not None
    return ("cases.start_event" if kind == "dispute" else "cases.start_decided"), dates.decided


def missed_lines(profile: Profile, case: CaseText, ack: Ack, *, as_html: bool) -> list[str]:
    """One sentence per filing window the case missed: its own start day and its own name."""
    render = th if as_html else t
    loc = case.locale
    lines = []
    for window in ack.windows:
        if ack.follows is not None or ack.dates.received <= window.due:
            continue
        start_key, start = window_start(profile, case.kind, window.rule, ack.dates)
        lines.append(
            render(
                "cases.ack_out_of_time",
                loc,
                start_label=t(start_key, loc),
                start=format_date(start, loc),
                window=rule_label(window.rule, loc),
                window_end=format_date(window.due, loc),
                clause=window.clause,
                kind=kind_name(case.kind, loc),
            )
        )
    return lines


def ack_body(desk: Desk, case: CaseText, ack: Ack, *, as_html: bool, via: Channel) -> str:
    render = th if as_html else t
    loc = case.locale
    profile = desk.profile
    parts = [
        render(
            "cases.ack_intro",
            loc,
            kind=kind_name(case.kind, loc),
            received=format_date(ack.dates.received, loc),
            ref=case.ref,
        ),
        render(f"cases.ack_next_{case.kind}", loc),
    ]
    tracked = ack.tracked
    if tracked:
        parts.append(
            "\n".join(
                [render("cases.ack_deadlines", loc), *deadline_lines(tracked, loc, as_html=as_html)]
            )
        )
    else:
        parts.append(render("cases.ack_no_deadlines", loc))
    if ack.follows is not None:
        parts.append(
            render(
                "cases.ack_follows",
                loc,
                kind=kind_name(case.kind, loc),
                earlier=ack.follows.ref,
                window=rule_label(ack.follows.rule, loc),
                due=format_date(ack.follows.due, loc),
                clause=ack.follows.clause,
            )
        )
    parts.extend(missed_lines(profile, case, ack, as_html=as_html))
    for rule_id in ack.unchecked:
        parts.append(
            render(
                f"cases.ack_unchecked_{profile.rules[rule_id].from_}",
                loc,
                window=rule_label(rule_id, loc),
                clause=profile.rules[rule_id].clause,
            )
        )
    if case.kind == "appeal":
        parts.append(
            render("cases.ack_formalities", loc, formalities=profile.cases.appeal_formalities)
        )
    if case.incomplete:
        parts.append(
            render("cases.ack_identity_needed", loc, clause=profile.cases.anonymous_clause or "")
        )
    footer = "cases.ack_footer_email" if via is Channel.EMAIL else "cases.ack_footer_telegram"
    parts.append(render(footer, loc, tag=subject_tag(case.ref)))
    return "\n\n".join(parts)


# --- staff alerts -----------------------------------------------------------------------------


def case_flags(case: CaseText, locale: str, *, as_html: bool = True) -> list[str]:
    render = th if as_html else t
    flags = []
    if case.out_of_time:
        flags.append(render("staff.flag_out_of_time", locale))
    if case.incomplete:
        flags.append(render("staff.flag_incomplete", locale))
    return flags


def show_buttons(case: CaseText, loc: str) -> Buttons:
    return [[{"text": t("staff.btn_show", loc), "callback_data": f"staff:show:{case.ref}"}]]


def new_case_alert(
    case: CaseText,
    deadlines: Sequence[Deadline],
    loc: str,
    unchecked: Sequence[str] = (),
    follows: Followed | None = None,
) -> tuple[str, Buttons]:
    """The staff alert for a new case: kind, flags, the deadlines still open; two buttons."""
    open_ = [d for d in deadlines if d.closed_at is None]
    return case_alert(case, open_, loc, unchecked, follows)


def case_alert(
    case: CaseText,
    open_: Sequence[ComputedDeadline | Deadline],
    loc: str,
    unchecked: Sequence[str] = (),
    follows: Followed | None = None,
) -> tuple[str, Buttons]:
    """`new_case_alert` given the deadlines still open."""
    notes = [th("cases.staff_unchecked", loc, window=rule_label(r, loc)) for r in unchecked]
    if follows is not None:
        notes.append(
            th(
                "cases.staff_follows",
                loc,
                earlier=follows.ref,
                window=rule_label(follows.rule, loc),
                due=format_date(follows.due, loc),
            )
        )
    lines = [
        th(
            "staff.new_case",
            loc,
            kind=kind_name(case.kind, loc),
            ref=case.ref,
            channel=t(f"staff.channel_{case.channel}", loc),
        ),
        *case_flags(case, loc),
        *notes,
        *(deadline_lines(open_, loc, as_html=True) or [th("staff.no_deadlines", loc)]),
    ]
    buttons = [
        [{"text": t("staff.btn_assign_me", loc), "callback_data": f"staff:assign:{case.ref}"}],
        *show_buttons(case, loc),
    ]
    return "\n".join(lines), buttons


__all__ = [
    "Ack",
    "CaseText",
    "Dates",
    "ack_body",
    "both",
    "case_alert",
    "case_flags",
    "complainant_identity",
    "cut",
    "deadline_lines",
    "email_html",
    "format_date",
    "kind_name",
    "new_case_alert",
    "refused_html",
    "refused_text",
    "rule_label",
    "show_buttons",
    "th_with_lines",
]
