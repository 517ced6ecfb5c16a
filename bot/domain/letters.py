"""What a received e-mail is: a reply to a case, an appeal/complaint/dispute, or automatic mail.

Pure functions of decoded header and body text; handlers/email decodes, this decides.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Literal

from bot.domain.refs import ALPHABET

Kind = Literal["appeal", "complaint", "dispute", "enquiry"]

# Case references: PREFIX-YEAR-6 characters, without look-alikes (0/O, 1/I).
REF_ALPHABET = ALPHABET  # one alphabet for references, bot/refs.py


def case_ref_pattern(prefix: str = "TS") -> re.Pattern[str]:
    """The subject tag `[TS-2026-7K3F9Q]`; full-width brackets too (Chinese input methods)."""
    return re.compile(
        rf"[\[【]\s*({re.escape(prefix)}-20\d\d-[{REF_ALPHABET}]{{6}})\s*[\]】]", re.IGNORECASE
    )


# A reference as people type it: any case, full-width forms (folded by NFKC), brackets or none,
# spaces, dashes of any width or none between its parts, and the six characters in two threes.
_DASHES = re.compile(r"[\u2010-\u2015\u2212\u30fc\ufe58\ufe63_~·]")
_SEP = r"[\s\-.:#]{0,3}"


def _loose_ref_pattern(prefix: str) -> re.Pattern[str]:
    six = rf"([{REF_ALPHABET}]{{3}})[\s\-]?([{REF_ALPHABET}]{{3}})"
    head = re.escape(prefix.upper())
    return re.compile(rf"(?<![A-Z0-9]){head}{_SEP}(20\d\d){_SEP}{six}(?![A-Z0-9])")


def _fold(text: str) -> str:
    return _DASHES.sub("-", unicodedata.normalize("NFKC", text)).upper()


def case_ref_in_text(text: str, prefix: str = "TS") -> str | None:
    """The first case reference in `text` however it was typed (`ts 2026 7k3f9q`,
    `ＴＳ－２０２６－７Ｋ３Ｆ９Ｑ`, `(TS-2026-7K3 F9Q)`), as `TS-2026-7K3F9Q`; None when none."""
    if not text:
        return None
    match = _loose_ref_pattern(prefix).search(_fold(text[:TEXT_SCANNED]))
    if match is None:
        return None
    year, first, second = match.groups()
    return f"{prefix.upper()}-{year}-{first}{second}"


TEXT_SCANNED = 100_000  # a reference is near the top; a letter of megabytes is not scanned whole


def case_ref_in_subject(subject: str, prefix: str = "TS") -> str | None:
    """Our tag `[TS-2026-7K3F9Q]` first (a subject may quote several), else a reference typed
    any other way (case_ref_in_text)."""
    # NFKC folds full-width Latin letters and ［］, which some clients produce from our tag.
    match = case_ref_pattern(prefix).search(unicodedata.normalize("NFKC", subject))
    return match.group(1).upper() if match else case_ref_in_text(subject, prefix)


def normalise_message_id(message_id: str) -> str:
    """Message-IDs compare without their angle brackets and surrounding blanks."""
    return message_id.strip().strip("<>").strip()


# ---------------------------------------------------------------------------------------------
# Appeal / complaint / dispute (domain.md §5), simplified and traditional Chinese, then English.

_CHINESE: dict[Kind, tuple[str, ...]] = {
    "appeal": ("申诉", "申訴"),
    "complaint": ("投诉", "投訴", "举报", "舉報"),
    "dispute": ("争议", "爭議", "异议", "異議"),
}
_ENGLISH: dict[Kind, str] = {
    "appeal": r"appeal",
    "complaint": r"complain(?:t|ts|ed|ing)?",
    "dispute": r"dispute",
}
# Where a reply quotes earlier mail: what follows is not the sender's own words.
_QUOTE_START = re.compile(
    r"^(?:-{2,}\s*(?:原始邮件|原始郵件|Original Message|Forwarded message)\s*-{2,}"
    r"|发件人[:：]|寄件者[:：]|From:\s.*|On .+ wrote:|在 .+ 写道[:：]).*$",
    re.IGNORECASE | re.MULTILINE,
)
BODY_WINDOW = 2000


def _chinese_hits(text: str) -> list[tuple[int, Kind]]:
    return sorted(
        (m.start(), kind)
        for kind, words in _CHINESE.items()
        for word in words
        for m in re.finditer(word, text)
    )


def _english_hits(text: str) -> list[tuple[int, Kind]]:
    return sorted(
        (m.start(), kind)
        for kind, pattern in _ENGLISH.items()
        for m in re.finditer(rf"\b{pattern}\b", text, re.IGNORECASE)
    )


def kind_in_subject(subject: str) -> Kind | None:
    # Chinese noun phrases end with their head ("关于投诉处理结果的申诉" is an appeal): last hit.
    chinese = _chinese_hits(subject)
    if chinese:
        return chinese[-1][1]
    english = _english_hits(subject)
    return english[0][1] if english else None


def kind_in_body(text: str) -> Kind | None:
    """The first keyword in the sender's own words (quoted earlier mail cut off)."""
    quote = _QUOTE_START.search(text)
    own = text[: quote.start()] if quote else text
    own = "\n".join(line for line in own.splitlines() if not line.lstrip().startswith(">"))
    hits = sorted(_chinese_hits(own[:BODY_WINDOW]) + _english_hits(own[:BODY_WINDOW]))
    return hits[0][1] if hits else None


def classify_text(subject: str, text: str) -> Kind:
    """appeal | complaint | dispute by subject, then by body; else enquiry (staff triage)."""
    return kind_in_subject(subject) or kind_in_body(text) or "enquiry"


# ---------------------------------------------------------------------------------------------
# Automatic mail (RFC 3834 and the headers real clients use): recorded, never answered.

LOOP_HEADER = "X-Certdesk-Loop"
_AUTOREPLY_HEADERS = (
    "x-autoreply",
    "x-autorespond",
    "x-autoresponder",
    "x-auto-reply",
    "x-autoreply-from",
    "x-mail-autoreply",
    "x-autogenerated",
    "x-fc-machinegenerated",
    "x-auto-response-suppress",
)
_PRESENCE_HEADERS = ("list-id", "list-unsubscribe", LOOP_HEADER.lower())
_BULK_PRECEDENCE = {"bulk", "junk", "list", "auto_reply"}
_ROBOT_SENDERS = re.compile(
    r"^(?:mailer-daemon|postmaster|no[-_.]?reply|do[-_.]?not[-_.]?reply|bounces?)(?:[+\-].*)?$",
    re.IGNORECASE,
)
# Reply and forward prefixes ("Re:", "答复:", "回复：", "Fw:") and brackets ("【自动回复】")
# before the words an auto-responder puts first.
_AUTO_SUBJECT = re.compile(
    r"^\s*(?:(?:re|aw|fw|fwd|答复|回复|回覆|转发|轉寄)\s*[:：]\s*)*[\[【(（<《]?\s*"
    r"(?:自动回复|自動回覆|自动答复|自動回復|自动应答|自動答覆|系统退信|退信|休假自动回复"
    r"|外出自动回复|不在办公室|休假中|Automatische Antwort|Réponse automatique"
    r"|automatic reply|auto[- ]?reply|autoreply|out of (?:the )?office"
    r"|undeliver(?:able|ed)|delivery status notification|returned mail)",
    re.IGNORECASE,
)


def automatic_reasons(
    headers: Iterable[tuple[str, str]], from_addr: str | None, subject: str, is_bounce: bool
) -> list[str]:
    """Why a message counts as automatic (empty list: a person wrote it)."""
    reasons: list[str] = []
    for name, value in headers:
        key, text = name.lower(), " ".join(value.split()).lower()
        if key == "auto-submitted" and text.split(";")[0].strip() != "no":
            reasons.append(f"Auto-Submitted: {text}")
        elif key == "precedence" and text in _BULK_PRECEDENCE:
            reasons.append(f"Precedence: {text}")
        elif key in _AUTOREPLY_HEADERS or key in _PRESENCE_HEADERS:
            reasons.append(name)
        elif key == "return-path" and text.strip("<> ") == "":
            reasons.append("Return-Path: <>")
        elif key == "content-type" and text.startswith("multipart/report"):
            reasons.append("multipart/report")
    local = (from_addr or "").rpartition("@")[0] or (from_addr or "")
    if local and _ROBOT_SENDERS.match(local):
        reasons.append(f"sender: {from_addr}")
    if _AUTO_SUBJECT.match(subject):
        reasons.append("subject")
    if is_bounce:
        reasons.append("bounce")
    return list(dict.fromkeys(reasons))


def own_mail_reasons(
    message_id: str | None,
    from_addr: str | None,
    own_domain: str | None,
    own_addresses: Iterable[str],
) -> list[str]:
    """Why a letter is our own mail come back (a relay may strip X-Certdesk-Loop): a Message-ID
    on MAIL_DOMAIN (we make every one of ours there) or From our own MAIL_FROM."""
    reasons = []
    domain = (own_domain or "").strip().lower()
    if domain and message_id:
        right = normalise_message_id(message_id).rpartition("@")[2].lower()
        if right == domain:
            reasons.append(f"our own Message-ID (@{domain})")
    ours = {a.strip().lower() for a in own_addresses if a and a.strip()}
    if from_addr and from_addr.strip().lower() in ours:
        reasons.append(f"sender: our own address {from_addr}")
    return reasons


# ---------------------------------------------------------------------------------------------
# The language to answer in

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_LATIN = re.compile(r"[A-Za-z]{3,}")


def letter_locale(subject: str, text: str, default: str) -> str:
    """Answer in the letter's language: Chinese when it has any, English when it is in Latin."""
    sample = f"{subject}\n{text[:2000]}"
    if _CJK.search(sample):
        return "zh_CN"
    if _LATIN.search(sample):
        return "en"
    return default
