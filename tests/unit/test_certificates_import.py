"""The import's refusals by line: a validity over 3 years, a bad credit code or e-mail; the file's
encoding (UTF-8 with or without BOM, GBK as Excel saves it, or a hint to save as UTF-8)."""

from __future__ import annotations

import pytest

from bot.profiles import load_profile
from bot.services.certificates_import import SAVE_AS_UTF8, cite, decode, parse_csv

GGBZ, BQC = load_profile("ggbz"), load_profile("bqc")
HEADER = "number,holder,standard,decided_on,expires_on,uscc,contact_emails\n"


def test_a_validity_over_three_years_is_refused_by_line_with_its_clause() -> None:
    text = (
        HEADER
        + "V-1,甲公司,S,2026-07-10,2029-07-09,,\n"
        + "V-2,乙公司,S,2026-07-10,2029-07-10,,\n"
        + "V-3,丙公司,S,2026-07-10,2029-07-11,,\n"
    )
    parsed = parse_csv(text, GGBZ)
    assert [line for line, _ in parsed.rows] == [2, 3]
    assert [str(e) for e in parsed.errors] == [
        "line 4: validity longer than 36 months: expires_on 2029-07-11 is after 2029-07-10 "
        "(GGBZ §6.2.2)"
    ]
    (bqc_error,) = parse_csv(text, BQC).errors
    assert bqc_error.reason.endswith("(BQC 认证规则 §3)")


def test_credit_code_and_emails_are_checked() -> None:
    text = (
        HEADER
        + "U-1,甲公司,S,2026-07-10,2029-07-09,91110000600037341l,a@x.test; b@y.test\n"
        + "U-2,乙公司,S,2026-07-10,2029-07-09,91110000600037341M,\n"
        + "U-3,丙公司,S,2026-07-10,2029-07-09,9111000060003734,\n"
        + "U-4,丁公司,S,2026-07-10,2029-07-09,,not-an-address\n"
    )
    parsed = parse_csv(text, GGBZ)
    ((_, row),) = parsed.rows
    assert row["uscc"] == "91110000600037341L"
    assert row["contact_emails"] == ["a@x.test", "b@y.test"]
    reasons = [str(e) for e in parsed.errors]
    assert "line 3:" in reasons[0] and "check digit" in reasons[0]
    assert (
        reasons[1].startswith("line 4: unified social credit code")
        and "16 characters" in reasons[1]
    )
    assert reasons[2] == "line 5: contact_emails: 'not-an-address' is not an e-mail address"


def test_utf8_with_and_without_bom_and_gbk_are_read() -> None:
    text = HEADER + "G-1,武汉光谷示例有限公司,GB/T 39604-2020,2026-07-10,2029-07-09,,\n"
    assert decode(text.encode("utf-8")) == text
    assert decode(b"\xef\xbb\xbf" + text.encode("utf-8")) == text
    assert decode(text.encode("gbk")) == text
    assert decode(text.encode("gb18030")) == text
    (row,) = parse_csv(decode(text.encode("gbk")), GGBZ).rows
    assert row[1]["holder"] == "武汉光谷示例有限公司"


def test_an_undecodable_file_is_refused_with_a_hint() -> None:
    with pytest.raises(ValueError) as exc:
        decode(b"number,holder\n\x80\xff\x80")  # neither UTF-8 nor GB18030 nor UTF-16
    assert str(exc.value) == SAVE_AS_UTF8 and "UTF-8" in SAVE_AS_UTF8
    assert decode("number,holder\n".encode("utf-16")) == "number,holder\n"  # Unicode text


def test_the_citation_is_the_head_of_the_clause() -> None:
    assert cite("GGBZ §6.2.2 认证证书的有效期最长为3年") == "GGBZ §6.2.2"
    assert cite("BQC 认证规则 §3 证书有效期为三年") == "BQC 认证规则 §3"
