"""Issue 10, items 9, 14, 15, 18: charsets decoded as declared despite a stray byte, exotic
charsets, damaged base64, our own mail come back, floods of files, always-valid JSON."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from bot.domain.letters import own_mail_reasons
from bot.domain.mail import valid_text
from bot.main.cli import main
from handlers.email.decode import decode_bytes
from handlers.email.header_words import decode_header_text
from handlers.email.mime import MAX_ATTACHMENTS, lenient_base64
from handlers.email.parse import clean_message_id, message_key, parse_message
from tests.fixtures.mail_corpus import INBOX, message
from tests.fixtures.mail_hostile import COMPLAINT, hostile

TEXT = "我们对审核结论提出申诉，理由如下：审核员没有查看我们提交的全部记录。"


def test_one_stray_byte_keeps_the_declared_utf8() -> None:
    data = TEXT.encode()
    for damaged in (data[:9] + b"\x80" + data[9:], data[:-1], data[:12] + b"\xff\xfe" + data[12:]):
        text, problem = decode_bytes(damaged, "utf-8")
        assert "审核员没有查看我们提交的全部记录" in text
        assert problem is not None and problem.startswith("charset_damaged")


def test_gbk_labelled_utf8_is_still_recognised() -> None:
    for sample in ("投诉", "我要投诉审核员", TEXT):
        text, problem = decode_bytes(sample.encode("gbk"), "utf-8")
        assert text == sample and problem is not None and "gb18030" in problem


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("Réclamation déposée contre l'auditeur, Hélène", "iso-8859-1"),
        ("Größe, Füße, Maß — Beschwerde", "cp1252"),
        ("Größe", "latin-1"),
        ("審査員について苦情を申し立てます", "iso-2022-jp"),
        ("我要投诉审核员 complaint", "utf-7"),
        ("审核员迟到", "hz"),
    ],
)
def test_declared_charsets_decode(text: str, label: str) -> None:
    assert decode_bytes(text.encode(label), label) == (text, None)


def test_iso2022jp_without_a_label_and_in_header_words() -> None:
    data = "苦情の申し立て".encode("iso-2022-jp")
    assert decode_bytes(data, None)[0] == "苦情の申し立て"
    word = f"=?ISO-2022-JP?B?{base64.b64encode(data).decode()}?="
    assert decode_header_text(f"Re: {word}") == ("Re: 苦情の申し立て", [])


def test_lenient_base64_keeps_every_data_line() -> None:
    data = (COMPLAINT * 3).encode()
    lines = base64.encodebytes(data).split(b"\n")
    assert lenient_base64(b"\n".join([lines[0], b"-- junk @@@ !", *lines[1:]])) == data
    assert lenient_base64(b"\r\n".join(lines) + b"\r\n-- \r\nSent from my phone\r\n") == data
    assert lenient_base64(b"\n".join([*lines[:1], b"garbage", *lines[1:]])) == data
    assert data.startswith(lenient_base64(b"".join(lines)[:-3]))


def test_message_ids_are_cleaned_and_keys_bounded() -> None:
    assert clean_message_id(b"<a\x00b\x80@x>") == "<ab\ufffd@x>"
    assert clean_message_id("<a\udc80@x>") == "<a\ufffd@x>"
    huge = b"Message-ID: <" + b"x" * 10_000 + b"@qq.com>\r\nFrom: a@b.c\r\n\r\nbody"
    mid, key = message_key(huge)
    assert mid is not None and len(mid) > 10_000 and len(key) <= 100
    assert message_key(huge)[1] != message_key(huge + b"!")[1]  # other bytes, another letter
    assert message_key(huge[:60], 99_999)[1].startswith("head:99999:")


def test_own_mail_reasons() -> None:
    domain, ours = "desk.example.test", ("certdesk@desk.example.test",)
    assert own_mail_reasons("<ts-2026-x.1@DESK.example.test>", "a@qq.com", domain, ours)
    assert own_mail_reasons("<1@qq.com>", "CertDesk@desk.example.test", domain, ours)
    assert not own_mail_reasons("<1@sub.desk.example.test>", "a@qq.com", domain, ours)
    assert not own_mail_reasons("<1@qq.com>", "a@qq.com", domain, ours)
    assert not own_mail_reasons("<1@qq.com>", "a@qq.com", "", ())


def test_attachments_are_capped_per_letter() -> None:
    (flood,) = [s for s in hostile() if s.name == "hostile_300_attachments"]
    parsed = parse_message(flood.raw)
    assert len(parsed.attachments) == MAX_ATTACHMENTS
    (problem,) = [p for p in parsed.problems if p.startswith("too_many_attachments")]
    assert str(300 - MAX_ATTACHMENTS) in problem


def test_valid_text_replaces_lone_surrogates() -> None:
    assert valid_text({"a": ["x\udc80y", 1, None], "b": "z\ud800"}) == {
        "a": ["x\ufffdy", 1, None],
        "b": "z?",
    }


def test_email_parse_json_is_valid_utf8_whatever_the_headers_hold(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    dsn_status = b"Final-Recipient: rfc822; gone\x80@qq.com\r\nAction: failed\r\n"
    raw = message(
        [
            ("From", b"\x80 <mailer-daemon@mx.qq.com>"),
            ("To", INBOX),
            ("Subject", b"Undelivered \x80\xff"),
            ("Message-ID", b"<b\x80\x00@mx.qq.com>"),
            ("X-Failed-Recipients", b"x\x80@qq.com"),
            ("Content-Type", 'multipart/report; report-type=delivery-status; boundary="B"'),
        ],
        b"--B\r\nContent-Type: text/plain\r\n\r\nfailed \x80\r\n"
        b"--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\n"
        + dsn_status
        + b"--B\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <o\x80@desk>\r\n--B--\r\n",
    )
    path = tmp_path / "bad.eml"
    path.write_bytes(raw)
    assert main(["email", "parse", str(path), "--json"]) == 0
    out = capsysbinary.readouterr().out
    data = json.loads(out.decode("utf-8"))  # strict: invalid UTF-8 raises
    assert data["bounce"] is not None and data["message_id"].startswith("<b")


def test_too_large_has_a_catalog_text_in_both_languages() -> None:
    from bot.domain.mail import too_large_problem
    from bot.services.inbound_mail.staff import reason_text
    from messages.render import catalog

    assert set(catalog()["email.problem_too_large"]) >= {"zh_CN", "en"}
    problem = too_large_problem(512_000, 400_000)
    zh, en = reason_text(problem, "zh_CN"), reason_text(problem, "en")
    assert "邮件过大" in zh and "512,000" in zh and "400,000" in zh and "[too_large]" in zh
    assert "too large" in en and "512,000" in en
    assert reason_text("intake_error: RuntimeError", "zh_CN").startswith("处理该邮件时出错")


@pytest.mark.parametrize(
    "damage",
    [
        lambda lines: [lines[0][:20] + b"!!!" + lines[0][20:], *lines[1:]],
        lambda lines: [lines[0][:20] + b"\xff\xfe" + lines[0][20:], *lines[1:]],
        lambda lines: [lines[0][:20] + b" " + lines[0][20:], *lines[1:]],
        lambda lines: [lines[0], b"------=_NextPart_000_0012", *lines[1:]],
        lambda lines: [lines[0], b"Best regards", *lines[1:]],
        lambda lines: [lines[0], b"Sent from my iPhone", *lines[1:]],
    ],
)
def test_lenient_base64_inside_and_between_lines(damage: object) -> None:
    data = (COMPLAINT * 6).encode()
    lines = base64.encodebytes(data).split(b"\n")
    assert callable(damage)
    assert lenient_base64(b"\r\n".join(damage(lines))) == data


@pytest.mark.parametrize(
    ("text", "encoding", "label"),
    [
        ("Café à Paris, réclamation déposée, Hélène", "latin-1", "us-ascii"),
        ("Café à Paris, réclamation déposée", "latin-1", "utf-8"),
        ("Réclamations, vérifiée", "latin-1", None),
        ("Größe", "latin-1", None),
        ("Grüße aus München, Straße", "latin-1", "iso-8859-1"),
        ("张伟", "gbk", None),
        ("審核結論申訴", "big5", None),
        ("審核結論申訴", "big5", "iso-8859-1"),
        ("我要投诉审核员", "gbk", "iso-8859-1"),
        ("审核员迟到两个小时，态度恶劣。", "utf-8", "gb2312"),
    ],
)
def test_the_right_charset_whatever_the_label_says(
    text: str, encoding: str, label: str | None
) -> None:
    assert decode_bytes(text.encode(encoding), label)[0] == text
