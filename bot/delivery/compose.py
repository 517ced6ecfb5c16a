"""The MIME message for one outbox e-mail: what the complainant's client shows and threads.

Plain text plus an HTML alternative, UTF-8, the case reference in the subject, a Message-ID on our
own domain (the payload's pre-assigned one, so a bounce or a reply finds the case before the send
is recorded), In-Reply-To/References so QQ Mail, Foxmail and Outlook put it in the complainant's
thread, and the headers that stop mail loops: our loop header on everything, `Auto-Submitted:
auto-replied` on automatic acknowledgements (RFC 3834), `X-Auto-Response-Suppress` for Exchange.
"""

from __future__ import annotations

import email.policy
import html
from collections.abc import Mapping, Sequence
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from typing import Any

from bot.domain.letters import LOOP_HEADER, case_ref_in_subject
from bot.domain.refs import subject_tag
from messages.render import t

# CRLF line ends and RFC 2047 encoded words for non-ASCII headers: what every server accepts.
POLICY = email.policy.SMTP


def _ids(value: str | Sequence[str] | None) -> list[str]:
    if not value:
        return []
    items = value.split() if isinstance(value, str) else list(value)
    return [i if i.startswith("<") else f"<{i.strip('<>')}>" for i in items if i.strip("<> ")]


def subject_with_tag(subject: str, case_ref: str | None) -> str:
    """The subject, carrying `[REF]` once so a reply comes back to the case."""
    if not case_ref or case_ref.upper() in subject.upper():
        return subject
    return f"{subject_tag(case_ref)} {subject}"


def text_to_html(text: str) -> str:
    body = html.escape(text).replace("\n", "<br>\n")
    return f"<!DOCTYPE html><html><body>{body}</body></html>"


def compose(
    payload: Mapping[str, Any],
    recipient: str,
    *,
    mail_from: str,
    mail_domain: str,
    now: datetime,
) -> EmailMessage:
    """Build the message an outbox row of channel "email" describes (see design notes)."""
    locale = payload.get("locale") or "zh_CN"
    msg = EmailMessage(policy=POLICY)
    name, address = parseaddr(mail_from)
    display = name or t("email.from_name", locale)
    username, _, domain = address.partition("@")
    msg["From"] = Address(display_name=display, username=username, domain=domain)
    msg["To"] = recipient
    msg["Subject"] = subject_with_tag(str(payload.get("subject") or ""), payload.get("case_ref"))
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = payload.get("message_id") or make_msgid(domain=mail_domain)
    in_reply_to = _ids(payload.get("in_reply_to"))
    references = _ids(payload.get("references"))
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to[-1]
        if in_reply_to[-1] not in references:
            references.append(in_reply_to[-1])
    if references:
        msg["References"] = " ".join(references)
    if payload.get("auto_reply"):
        msg["Auto-Submitted"] = "auto-replied"
    # Our own mail coming back (a forward rule, a misconfigured alias) is never answered.
    msg[LOOP_HEADER] = mail_domain
    # Exchange and Outlook send no out-of-office answer to a message carrying this.
    msg["X-Auto-Response-Suppress"] = "All"
    text = str(payload.get("text") or "")
    html_text = str(payload.get("html") or text_to_html(text))
    # base64 rather than 8bit: some relays still mangle 8-bit bodies; cheap for short letters.
    msg.set_content(text, charset="utf-8", cte=_cte(text))
    msg.add_alternative(html_text, subtype="html", charset="utf-8", cte=_cte(html_text))
    # After add_alternative, which moves Content-* headers into the first part.
    msg["Content-Language"] = "zh-CN" if locale.startswith("zh") else "en"
    return msg


def _cte(text: str) -> str:
    if not text.isascii():
        return "base64"
    # SMTP limits lines to 998 octets; one-line HTML is common.
    return "7bit" if all(len(line) <= 78 for line in text.splitlines()) else "quoted-printable"


def ref_of_our_message_id(message_id: str, prefix: str, mail_domain: str) -> str | None:
    """The case reference inside a Message-ID we made (`<ts-2026-7k3f9q.1a2b…@MAIL_DOMAIN>`,
    see bot.services.cases.new_message_id): threading works without the database (`email parse`)."""
    local, _, domain = message_id.strip().strip("<>").partition("@")
    if domain.lower() != mail_domain.lower():
        return None
    return case_ref_in_subject(f"[{local.split('.', 1)[0]}]", prefix)
