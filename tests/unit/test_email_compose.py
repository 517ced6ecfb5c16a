"""The answers we send: threaded, tagged, readable in Chinese, and never answered by robots."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

from bot.delivery.compose import compose, ref_of_our_message_id, subject_with_tag
from handlers.email.parse import parse_message

NOW = datetime(2026, 9, 28, 2, 0, tzinfo=UTC)
REF = "TS-2026-7K3F9Q"
THEIR_ID = "<20260928.1A2B@qq.com>"
OUR_ID = "<ts-2026-7k3f9q.00112233aabbccdd@desk.example.test>"


def _payload(**over: Any) -> dict[str, Any]:
    return {
        "subject": f"[{REF}] 我们已收到您的投诉",
        "text": "您好：\n您的投诉已受理，案件编号 TS-2026-7K3F9Q。",
        "html": "<!DOCTYPE html><html><body>您好：<br>您的投诉已受理。</body></html>",
        "locale": "zh_CN",
        "in_reply_to": THEIR_ID,
        "references": [THEIR_ID],
        "auto_reply": True,
        "case_ref": REF,
        "message_id": OUR_ID,
    } | over


def _sent(payload: dict[str, Any]) -> EmailMessage:
    """The message as the complainant's server receives it (bytes, parsed back)."""
    msg = compose(
        payload,
        "zhang.wei@qq.com",
        mail_from="certdesk@desk.example.test",
        mail_domain="desk.example.test",
        now=NOW,
    )
    raw = msg.as_bytes()
    assert all(ord(" ") <= b < 128 or b in b"\r\n\t" for b in raw), "8-bit data on the wire"
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def test_acknowledgement_threads_under_the_letter_and_shows_chinese() -> None:
    msg = _sent(_payload())
    assert msg["Subject"] == f"[{REF}] 我们已收到您的投诉"
    assert msg["Message-ID"] == OUR_ID
    assert msg["In-Reply-To"] == THEIR_ID
    assert msg["References"] == THEIR_ID
    assert msg["To"] == "zhang.wei@qq.com"
    assert msg["From"].addresses[0].addr_spec == "certdesk@desk.example.test"
    assert msg["From"].addresses[0].display_name == "投诉申诉受理"
    plain = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert plain is not None and html is not None
    assert "案件编号 TS-2026-7K3F9Q" in plain.get_content()
    assert "您的投诉已受理" in html.get_content()
    assert plain.get_content_charset() == "utf-8"


def test_automatic_acknowledgement_is_marked_so_robots_do_not_answer_it() -> None:
    msg = _sent(_payload())
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["X-Certdesk-Loop"] == "desk.example.test"
    # Should our own answer ever come back to the inbox, the intake records it and stays quiet.
    back = parse_message(msg.as_bytes())
    assert back.automatic and "X-Certdesk-Loop" in back.automatic_reasons
    assert back.case_ref == REF


def test_staff_reply_is_not_marked_automatic_but_carries_the_loop_header() -> None:
    msg = _sent(_payload(auto_reply=False, references=["<a@qq.com>", THEIR_ID]))
    assert msg["Auto-Submitted"] is None
    assert msg["X-Certdesk-Loop"] == "desk.example.test"
    assert msg["References"] == f"<a@qq.com> {THEIR_ID}"


def test_without_a_preassigned_id_the_message_id_is_on_our_domain() -> None:
    msg = _sent(_payload(message_id=None, in_reply_to=None, references=[]))
    assert msg["Message-ID"].endswith("@desk.example.test>")
    assert msg["In-Reply-To"] is None and msg["References"] is None


def test_english_answer_without_html_gets_an_escaped_html_part() -> None:
    msg = _sent(
        _payload(
            locale="en",
            subject="We have received your complaint",
            text="Case <TS-2026-7K3F9Q> & co",
            html=None,
        )
    )
    assert msg["Subject"] == f"[{REF}] We have received your complaint"
    assert msg["Content-Language"] == "en"
    html = msg.get_body(("html",))
    assert html is not None and "Case &lt;TS-2026-7K3F9Q&gt; &amp; co" in html.get_content()
    assert msg["From"].addresses[0].display_name == "Complaints and appeals desk"


def test_subject_tag_is_added_once() -> None:
    assert subject_with_tag(f"Re: [{REF}] x", REF) == f"Re: [{REF}] x"
    assert subject_with_tag("答复", REF) == f"[{REF}] 答复"
    assert subject_with_tag("答复", None) == "答复"


def test_case_reference_is_read_back_from_our_own_message_ids() -> None:
    assert ref_of_our_message_id(OUR_ID, "TS", "desk.example.test") == REF
    assert ref_of_our_message_id(OUR_ID, "TS", "other.example") is None
    assert ref_of_our_message_id(THEIR_ID, "TS", "qq.com") is None


def test_long_lines_are_wrapped_for_smtp() -> None:
    msg = compose(
        _payload(locale="en", text="word " * 400, html="<p>" + "x" * 3000 + "</p>"),
        "a@example.net",
        mail_from="certdesk@desk.example.test",
        mail_domain="desk.example.test",
        now=NOW,
    )
    raw = msg.as_bytes()
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    back = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(back, EmailMessage)
    html = back.get_body(("html",))
    assert html is not None and "x" * 3000 in html.get_content()
