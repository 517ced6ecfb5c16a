"""Parsing and classifying received e-mail (handlers/email decode, mime, parse; domain letters)."""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.domain.letters import (
    automatic_reasons,
    case_ref_in_subject,
    classify_text,
    kind_in_body,
)
from handlers.email.decode import codec_for, decode_bytes
from handlers.email.header_words import decode_header_text, header_params
from handlers.email.htmltext import html_to_text
from handlers.email.parse import parse_message
from tests.fixtures.mail_corpus import REF, Sample, corpus, message

SAMPLES = corpus()
JSON_KEYS = {
    "message_id",
    "from",
    "subject",
    "kind",
    "case_ref",
    "automatic",
    "bounce",
    "text",
    "attachments",
    "problems",
}


def codes(problems: list[str]) -> set[str]:
    return {p.split(":", 1)[0] for p in problems}


def test_corpus_is_large_and_uniquely_named() -> None:
    names = [s.name for s in SAMPLES]
    assert len(names) >= 25
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: s.name)
def test_corpus_message(sample: Sample) -> None:
    parsed = parse_message(sample.raw, **sample.options)
    result = parsed.to_json()
    assert set(result) == JSON_KEYS
    json.dumps(result, ensure_ascii=False).encode("utf-8")  # what the CLI prints: valid UTF-8
    for key, expected in sample.expect.items():
        assert result[key] == expected, (key, result)
    for fragment in sample.text_has:
        assert fragment in result["text"], result["text"]
    assert codes(result["problems"]) >= set(sample.problem_codes), result["problems"]
    if sample.no_problems:
        assert result["problems"] == []
    if sample.attachments:
        assert len(result["attachments"]) == len(sample.attachments), result["attachments"]
        for got, expected in zip(result["attachments"], sample.attachments, strict=True):
            assert got.items() >= expected.items(), got
    for attachment in parsed.attachments:
        assert set(attachment.to_json()) == {"filename", "content_type", "size", "sha256"}
        if attachment.data is not None:
            assert hashlib.sha256(attachment.data).hexdigest() == attachment.sha256
            assert len(attachment.data) == attachment.size


def sample(name: str) -> Sample:
    return next(s for s in SAMPLES if s.name == name)


def test_gbk_mail_has_sender_name_and_date() -> None:
    parsed = parse_message(sample("gbk_subject_and_body").raw)
    assert parsed.from_name == "张伟"
    assert parsed.date is not None and parsed.date.utcoffset() is not None
    assert parsed.to == ["certdesk@example.com"]


def test_too_large_attachment_keeps_hash_but_not_bytes() -> None:
    s = sample("attachment_too_large")
    (attachment,) = parse_message(s.raw, **s.options).attachments
    assert attachment.data is None and not attachment.acceptable
    assert len(attachment.sha256) == 64


def test_path_traversal_names_and_fake_pdf_refused() -> None:
    parsed = parse_message(sample("attachment_path_traversal_and_fake_type").raw)
    assert [a.acceptable for a in parsed.attachments] == [True, True, False]
    assert all("/" not in a.filename and "\\" not in a.filename for a in parsed.attachments)
    assert parsed.attachments[2].declared_type == "application/pdf"


def test_bounce_is_automatic_with_reason() -> None:
    parsed = parse_message(sample("dsn_failed_postfix").raw)
    assert "bounce" in parsed.automatic_reasons
    assert "Return-Path: <>" in parsed.automatic_reasons


def test_inline_image_of_html_branch_is_kept() -> None:
    (image,) = parse_message(sample("qq_alternative_with_inline_image").raw).attachments
    assert image.inline and image.acceptable


def test_thread_and_subject_disagree_subject_wins() -> None:
    raw = message(
        [
            ("From", "a@qq.com"),
            ("Subject", f"Re: [{REF}]"),
            ("Message-ID", "<m@qq.com>"),
            ("In-Reply-To", "<ours@x>"),
        ],
        b"hi",
    )
    parsed = parse_message(raw, known_refs_by_message_id={"<ours@x>": "TS-2026-AAAAAA"})
    assert parsed.case_ref == REF
    assert "case_ref_conflict" in codes(parsed.problems)


def test_custom_prefix() -> None:
    raw = message([("Subject", "Re: [CB-2026-7K3F9Q] ok"), ("Message-ID", "<x@y>")], b"")
    assert parse_message(raw).case_ref is None
    assert parse_message(raw, case_ref_prefix="CB").case_ref == "CB-2026-7K3F9Q"


@pytest.mark.parametrize(
    ("subject", "ref"),
    [
        ("[TS-2026-7K3F9Q]", "TS-2026-7K3F9Q"),
        ("回复：［ＴＳ－２０２６－７Ｋ３Ｆ９Ｑ］", "TS-2026-7K3F9Q"),
        ("【TS-2026-7k3f9q】", "TS-2026-7K3F9Q"),
        ("[TS-2026-7K3F9O]", None),  # O is not in the alphabet
        ("[TS-2026-7K3F91]", None),
        ("TS-2026-7K3F9Q", "TS-2026-7K3F9Q"),  # typed without our brackets: still the case
        ("Re: ts 2026 7k3f9q 补充", "TS-2026-7K3F9Q"),
        ("（ＴＳ－２０２６－７Ｋ３Ｆ９Ｑ）", "TS-2026-7K3F9Q"),
        ("TS-2026-7K3F9Q2", None),
        ("[TS-2026-7K3F9QX]", None),
    ],
)
def test_case_ref_in_subject(subject: str, ref: str | None) -> None:
    assert case_ref_in_subject(subject) == ref


@pytest.mark.parametrize(
    ("subject", "body", "kind"),
    [
        ("关于投诉处理结果的申诉", "", "appeal"),
        ("Appeal against the complaint decision", "", "appeal"),
        ("咨询", "我们对审核结论有异议", "dispute"),
        ("hello", "I would like to complain about the auditor", "complaint"),
        ("咨询", "请问费用\n-----原始邮件-----\n关于投诉", "enquiry"),
        ("咨询", "> 申诉\n请问费用", "enquiry"),
        ("證書查詢", "我要舉報", "complaint"),
        ("Appealing", "", "enquiry"),
    ],
)
def test_classify_text(subject: str, body: str, kind: str) -> None:
    assert classify_text(subject, body) == kind


def test_kind_in_body_first_keyword() -> None:
    assert kind_in_body("本公司投诉贵机构，并保留申诉权利") == "complaint"


@pytest.mark.parametrize(
    ("headers", "sender", "subject", "automatic"),
    [
        ([("Auto-Submitted", "no")], "a@qq.com", "hi", False),
        ([("Auto-Submitted", "auto-replied; owner-email=x")], "a@qq.com", "hi", True),
        ([("Precedence", "junk")], "a@qq.com", "hi", True),
        ([("Precedence", "first-class")], "a@qq.com", "hi", False),
        ([("X-Autorespond", "yes")], "a@qq.com", "hi", True),
        ([("List-Unsubscribe", "<mailto:x>")], "a@qq.com", "hi", True),
        ([("x-certdesk-loop", "1")], "a@qq.com", "hi", True),
        ([], "Postmaster@163.com", "hi", True),
        ([], "noreply@example.cn", "hi", True),
        ([], "donotreply@example.cn", "hi", True),
        ([], "noreen@example.cn", "hi", False),
        ([], "a@qq.com", "Out of Office: 张伟", True),
        ([], "a@qq.com", "关于自动回复功能的咨询", False),
    ],
)
def test_automatic_reasons(
    headers: list[tuple[str, str]], sender: str, subject: str, automatic: bool
) -> None:
    assert bool(automatic_reasons(headers, sender, subject, False)) is automatic


@pytest.mark.parametrize(
    ("label", "codec"),
    [
        ("gb2312", "gb18030"),
        ("GBK", "gb18030"),
        ('"x-gbk"', "gb18030"),
        ("cp936", "gb18030"),
        ("Big5", "big5hkscs"),
        ("UTF8", "utf-8"),
        ("us-ascii", "ascii"),
        ("x-unknown", None),
        ("no-such-charset", None),
        (None, None),
    ],
)
def test_codec_for(label: str | None, codec: str | None) -> None:
    assert codec_for(label) == codec


def test_decode_bytes_detects_short_chinese_without_label() -> None:
    assert decode_bytes("投诉审核员".encode("gbk"), None)[0] == "投诉审核员"
    assert decode_bytes("申訴".encode("big5"), None)[0] == "申訴"
    assert decode_bytes("申诉".encode(), "gbk") == (
        "申诉",
        "charset_mismatch: declared gbk, decoded as utf-8",
    )


def test_decode_header_text_keeps_spaces_between_text_and_words() -> None:
    text, problems = decode_header_text("Re: =?utf-8?Q?=E6=8A=95=E8=AF=89?= now")
    assert (text, problems) == ("Re: 投诉 now", [])
    assert decode_header_text("=?utf-8?Q?a?= =?utf-8?Q?b?=")[0] == "ab"
    assert decode_header_text("=?utf-8?B?@@@?=")[0] == ""


def test_header_params() -> None:
    params = header_params(
        "attachment; filename*0*=utf-8''%E7%94%B3; filename*1*=%E8%AF%89.pdf; size=3"
    )
    assert params == {"filename": "申诉.pdf", "size": "3"}
    assert header_params('inline; filename="a \\"b\\".txt"') == {"filename": 'a "b".txt'}
    assert header_params("text/plain") == {}


def test_html_to_text_pre_and_tables() -> None:
    html = "<table><tr><td>a</td><td>b</td></tr></table><pre>x\n  y</pre>"
    assert html_to_text(html) == "a b\nx\ny"
    assert html_to_text("<p>one</p><p>two<br><br>three</p>") == "one\ntwo\n\nthree"


def test_absurd_nesting_is_recorded_not_raised() -> None:
    raw = b"Message-ID: <deep@x>\r\n"
    for depth in range(3000):
        raw += b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (depth, depth)
    parsed = parse_message(raw)
    assert parsed.message_id == "<deep@x>"
    assert codes(parsed.problems) & {"unparseable", "too_deeply_nested"}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    index=st.integers(0, len(SAMPLES) - 1),
    cut=st.floats(0, 1),
    noise=st.binary(max_size=40),
)
def test_never_raises_on_damaged_mail(index: int, cut: float, noise: bytes) -> None:
    raw = SAMPLES[index].raw
    position = int(len(raw) * cut)
    parsed = parse_message(raw[:position] + noise + raw[position + len(noise) :])
    json.dumps(parsed.to_json())


@given(st.binary(max_size=300))
@settings(max_examples=150, deadline=None)
def test_never_raises_on_arbitrary_bytes(raw: bytes) -> None:
    json.dumps(parse_message(raw).to_json())
