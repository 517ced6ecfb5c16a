"""Certificate register files as Chinese offices send them (the hostile-input review):
encodings, separators, Chinese headers, dates in every form, quoted newlines, duplicates,
credit codes, e-mail lists, an .xlsx or junk given as CSV, 100,000 rows. Every bad row gets
its line and a reason in the reader's language; every good row is kept."""

from __future__ import annotations

import io
from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.profiles import load_profile
from bot.services.certificates_csv import column_of, parse_date, read_table, split_emails
from bot.services.certificates_import import parse_bytes

GGBZ = load_profile("ggbz")
EN = "number,holder,standard,decided_on,expires_on,uscc,contact_emails"
ZH = "证书编号,持证组织,认证标准,发证日期,有效期至,统一社会信用代码,联系邮箱"
ROW = "G-1,武汉光谷示例有限公司,GB/T 39604-2020,2026-01-05,2029-01-04,91110000600037341L,a@x.cn"


def _numbers(data: bytes) -> list[tuple[int, str]]:
    parsed = parse_bytes(data, GGBZ)
    assert parsed.errors == [], parsed.errors
    return [(line, row["number"]) for line, row in parsed.rows]


@pytest.mark.parametrize(
    "encode",
    [
        lambda s: s.encode("utf-8"),
        lambda s: b"\xef\xbb\xbf" + s.encode("utf-8"),
        lambda s: s.encode("gbk"),
        lambda s: s.encode("gb18030"),
        lambda s: s.replace(",", "\t").encode("utf-16"),  # Excel's "Unicode text"
        lambda s: s.replace(",", "\t").encode("utf-16-le"),  # without its BOM
        lambda s: s.replace(",", "\t").encode("utf-16-be"),
        lambda s: s.replace(",", ";").encode("utf-8"),  # a European Excel's CSV
        lambda s: s.replace(",", "，").encode("utf-8"),  # typed with a Chinese input method
    ],
    ids=["utf8", "bom", "gbk", "gb18030", "utf16", "utf16le", "utf16be", "semicolon", "fullwidth"],
)
def test_every_encoding_and_separator(encode: object) -> None:
    assert callable(encode)
    for header in (EN, ZH):
        data = encode(f"{header}\r\n{ROW}\r\n{ROW.replace('G-1', 'G-2')}\r\n")
        assert _numbers(data) == [(2, "G-1"), (3, "G-2")]


@pytest.mark.parametrize(
    ("header", "column"),
    [
        ("证书编号", "number"), (" 证书编号（必填）", "number"), ("*持证组织", "holder"),
        ("Certificate No.", "number"), ("ＮＵＭＢＥＲ", "number"), ("Decided On", "decided_on"),
        ("decided_on", "decided_on"), ("有效期至", "expires_on"), ("Expiry date", "expires_on"),
        ("统一社会信用代码", "uscc"), ("E-mail", "contact_emails"),
        ("暂停月数", "suspension_months"), ("备注", None),
    ],
)  # fmt: skip
def test_headers_in_chinese_or_english(header: str, column: str | None) -> None:
    assert column_of(header) == column


@pytest.mark.parametrize(
    "text",
    ["2026-01-05", "2026/1/5", "2026.1.5", "2026年1月5日", "2026 年 1 月 5 日", "20260105",
     "46027", "46027.375", "2026-01-05 00:00:00", "2026/1/5 9:30", "2026-01-05T00:00:00Z",
     "２０２６－０１－０５", "2026-1-5", "2026/01/05 下午 3:00", "2026年1月5日 09:30"],
)  # fmt: skip
def test_dates_as_offices_write_them(text: str) -> None:
    assert parse_date(text) == date(2026, 1, 5)


@pytest.mark.parametrize(
    "text", ["1/5/2026", "05.01.2026", "2026-13-01", "2026-02-30", "明年", "12", "2026-01-05x"]
)
def test_what_is_no_date(text: str) -> None:
    with pytest.raises(ValueError):
        parse_date(text)


@given(st.dates(date(1990, 1, 1), date(2099, 12, 31)), st.sampled_from(
    ["{y}-{m:02d}-{d:02d}", "{y}/{m}/{d}", "{y}.{m}.{d}", "{y}年{m}月{d}日", "{y}{m:02d}{d:02d}",
     "{y}-{m}-{d} 08:00:00", "serial"]))  # fmt: skip
@settings(max_examples=200)
def test_any_date_in_any_form(day: date, form: str) -> None:
    if form == "serial":
        text = str((day - date(1899, 12, 30)).days)
    else:
        text = form.format(y=day.year, m=day.month, d=day.day)
    assert parse_date(text) == day


def test_emails_separated_every_way() -> None:
    text = "A@x.cn；b@y.cn，c@z.cn、d@w.cn e@v.cn;f@u.cn,张三 <g@t.cn> a@x.cn"
    found, bad = split_emails(text)
    assert found == ["a@x.cn", "b@y.cn", "c@z.cn", "d@w.cn", "e@v.cn", "f@u.cn", "g@t.cn"]
    assert bad is None
    assert split_emails("a@x.cn；没有邮箱")[1] == "没有邮箱"


def test_blank_lines_trailing_rows_quoted_newlines_and_extra_columns() -> None:
    text = (
        f"{EN},备注\r\n\r\n"
        f'{ROW},"第一行\r\n第二行"\r\n'
        ",,,,,,,\r\n"
        f"{ROW.replace('G-1', 'G-2')},\r\n"
        ",,,,,,,\r\n,,,,,,,\r\n"
    )
    parsed = parse_bytes(text.encode("gbk"), GGBZ)
    assert [(line, row["number"]) for line, row in parsed.rows] == [(3, "G-1"), (6, "G-2")]
    assert parsed.errors == []
    (note,) = parsed.notes  # the unknown column is said, not silently dropped
    assert note.line == 1 and "备注" in note.reason and "备注" in note.text("zh_CN")


def test_duplicates_credit_codes_and_emails_refused_by_line_in_chinese() -> None:
    rows = [
        ROW,
        ROW,  # the same number again
        ROW.replace("G-1", "g-3").replace("91110000600037341L", " 9111 0000 6000 3734 1l "),
        ROW.replace("G-1", "G-4").replace("91110000600037341L", "91110000600037341M"),
        ROW.replace("G-1", "G-5").replace("a@x.cn", "a@x.cn；b@y.cn、not-an-address"),
        ROW.replace("G-1", "G-6").replace("2026-01-05", "2026/13/05"),
        ROW.replace("G-1", "G-7").replace("2029-01-04", "2029-01-06"),
        ROW.replace("G-1", ""),
    ]
    parsed = parse_bytes(("\n".join([ZH, *rows]) + "\n").encode("gbk"), GGBZ)
    assert [(line, row["number"]) for line, row in parsed.rows] == [(2, "G-1"), (4, "g-3")]
    assert parsed.rows[1][1]["uscc"] == "91110000600037341L"
    zh = {e.line: e.text("zh_CN") for e in parsed.errors}
    assert sorted(zh) == [3, 5, 6, 7, 8, 9]
    assert zh[3] == "第 3 行：证书编号 G-1 与第 2 行重复：只导入第 2 行"
    assert "校验码不正确" in zh[5]
    assert zh[6] == "第 6 行：联系邮箱中“not-an-address”不是电子邮件地址"
    assert "“发证日期”的“2026/13/05”不是日期" in zh[7]
    assert "有效期超过 36 个月" in zh[8] and "GGBZ §6.2.2" in zh[8]
    assert zh[9] == "第 9 行：“证书编号”为空"
    en = {e.line: e.text("en") for e in parsed.errors}
    assert en[9] == "line 9: number is empty" and "check digit" in en[5]


def test_chinese_status_words() -> None:
    header = f"{EN},状态,暂停日期,暂停月数"
    rows = [f"{ROW},有效,,", f"{ROW.replace('G-1', 'G-2')},暂停,2026/3/1,3",
            f"{ROW.replace('G-1', 'G-3')},作废,,"]  # fmt: skip
    parsed = parse_bytes("\n".join([header, *rows]).encode(), GGBZ)
    assert [row["status"] for _, row in parsed.rows] == ["valid", "suspended"]
    (error,) = parsed.errors
    assert error.line == 4 and "作废" in error.text("zh_CN")


def _xlsx(rows: list[list[object]]) -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    for row in rows:
        book.active.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def test_an_xlsx_given_as_csv_is_read_as_the_workbook_it_is() -> None:
    from datetime import datetime

    data = _xlsx([
        ZH.split(","),
        ["G-1", "武汉光谷示例有限公司", "GB/T 39604-2020", datetime(2026, 1, 5), date(2029, 1, 4),
         "91110000600037341L", "a@x.cn"],
        [None] * 7,
        ["G-2", "宜昌示例有限公司", "GB/T 39604-2020", 46027, "2029/1/4", None, None],
    ])  # fmt: skip
    assert _numbers(data) == [(2, "G-1"), (4, "G-2")]


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600), "Excel 97–2003"),
        (b"PK\x03\x04garbage" + bytes(100), "压缩文件"),
        (bytes(range(256)) * 20, "二进制"),
        (b"number,holder\n\x80\xff\x80", "CSV UTF-8"),
        (b"", "空"),
        (b"\r\n\r\n", "空"),
    ],
)
def test_what_is_no_register_gets_one_clear_answer(data: bytes, words: str) -> None:
    parsed = parse_bytes(data, GGBZ)
    (error,) = parsed.errors
    assert parsed.rows == [] and error.line == 1 and words in error.text("zh_CN")
    assert error.reason  # and in English for the JSON report


def test_missing_columns_are_named_in_chinese() -> None:
    (error,) = parse_bytes("证书编号,持证组织\nG-1,甲\n".encode(), GGBZ).errors
    assert error.text("zh_CN") == "第 1 行：缺少必需的列：认证标准、发证日期、有效期至"
    assert error.reason == "missing column(s): standard, decided_on, expires_on"


def test_more_cells_than_columns_and_unbalanced_quotes() -> None:
    text = f'{EN}\n{ROW},extra\n{ROW.replace("G-1", "G-2")}\n"G-3,甲,S,2026-01-05\n'
    parsed = parse_bytes(text.encode(), GGBZ)
    assert [row["number"] for _, row in parsed.rows] == ["G-2"]
    assert [e.line for e in parsed.errors] == [2, 4]


def test_a_hundred_thousand_rows_are_read_whole() -> None:
    # How fast is bench/certificates_import.py's to show (a timed test fails on a busy machine).
    rows = [f"P-{i:06d},示例有限公司{i},GB/T 39604-2020,2026/1/5,2029年1月4日,,c{i}@x.cn"
            for i in range(100_000)]  # fmt: skip
    parsed = parse_bytes(("\n".join([EN, *rows]) + "\n").encode("gbk"), GGBZ)
    assert len(parsed.rows) == 100_000 and parsed.errors == []
    assert parsed.rows[-1][1]["number"] == "P-099999"


def test_read_table_keeps_the_line_where_a_record_starts() -> None:
    table = read_table(b'a,b\n"x\ny",1\n\nz,2\n')
    assert table.rows == [(2, ["x\ny", "1"]), (5, ["z", "2"])]


# ---------------------------------------------------------------------------------------------
# Generated registers: random rows written as some office would; bad rows refused by their own
# line, every good row kept with its values.

_EN = ["number", "holder", "standard", "decided_on", "expires_on", "contact_emails"]
_ZH = ["证书编号", "持证组织", "认证标准", "发证日期", "有效期至", "联系邮箱"]
_FORMS = ["{y}-{m:02d}-{d:02d}", "{y}/{m}/{d}", "{y}.{m}.{d}", "{y}年{m}月{d}日", "serial"]
_BAD = {"decided_on": "2026-13-40", "number": "", "contact_emails": "无邮箱", "expires_on": "明年"}


def _written(day: date, form: str) -> str:
    if form == "serial":
        return str((day - date(1899, 12, 30)).days)
    return form.format(y=day.year, m=day.month, d=day.day)


@st.composite
def _registers(draw: st.DrawFn) -> tuple[bytes, dict[int, dict[str, object]], set[int]]:
    count = draw(st.integers(1, 30))
    header = draw(st.sampled_from([_EN, _ZH]))
    sep = draw(st.sampled_from([",", ";", "\t"]))
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "gbk", "utf-16"]))
    form = draw(st.sampled_from(_FORMS))
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    lines = [sep.join(header)]
    good: dict[int, dict[str, object]] = {}
    bad: set[int] = set()
    for n in range(count):
        decided = draw(st.dates(date(2000, 1, 1), date(2090, 12, 31)))
        expires = decided + timedelta(days=draw(st.integers(1, 1000)))
        holder = draw(st.text(st.sampled_from("武汉光谷示例有限公司宜昌荆州襄阳"), min_size=1,
                              max_size=12))  # fmt: skip
        emails = [f"c{n}x{k}@example.cn" for k in range(draw(st.integers(0, 3)))]
        joiner = draw(st.sampled_from(["；", "、", " ", ","]))
        cells = {"number": f"N-{n}", "holder": holder, "standard": "GB/T 39604-2020",
                 "decided_on": _written(decided, form), "expires_on": _written(expires, form),
                 "contact_emails": joiner.join(emails)}  # fmt: skip
        line = len(lines) + 1
        broken = draw(st.sampled_from([None, None, None, *_BAD]))
        if broken is not None:
            cells[broken] = _BAD[broken]
            bad.add(line)
        else:
            good[line] = {"number": f"N-{n}", "holder": holder, "decided_on": decided,
                          "expires_on": expires, "contact_emails": emails}  # fmt: skip
        row = [cells[c] for c in _EN]
        quoted = [f'"{v}"' if sep in v or "," in v else v for v in row]
        lines.append(sep.join(quoted))
        if draw(st.booleans()) and n % 7 == 0:
            lines.append(sep * (len(_EN) - 1))  # Excel's empty rows between
    return (eol.join(lines) + eol).encode(encoding), good, bad


@given(_registers())
@settings(max_examples=120, deadline=None)
def test_generated_registers(
    register: tuple[bytes, dict[int, dict[str, object]], set[int]],
) -> None:
    data, good, bad = register
    parsed = parse_bytes(data, load_profile("bqc"))  # validity checks aside: 3 years
    kept = {line: row for line, row in parsed.rows}
    long = {e.line for e in parsed.errors if "validity longer" in e.reason}
    assert set(kept) | long == set(good)
    for line, row in kept.items():
        expected = good[line]
        assert {k: row[k] for k in expected} == expected
    assert {e.line for e in parsed.errors} - long == bad
    assert all(e.text("zh_CN").startswith(f"第 {e.line} 行：") for e in parsed.errors)
