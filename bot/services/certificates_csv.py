"""Reading a certificate register file as a Chinese office sends it: pure functions, no I/O.

- Text: UTF-8 with or without BOM, GBK/GB18030 (Excel on a Chinese Windows), UTF-16 with or
  without BOM (Excel's "Unicode text", tab-separated); an .xlsx workbook given as CSV is read
  as the workbook it is (its first sheet). A legacy .xls or binary junk is refused with a hint.
- Separators: comma, semicolon, tab, full-width comma or bar, whichever the header row uses.
- Headers in English or Chinese, any case, spaces, full-width forms, "*" or "(必填)" marks.
- Dates as offices write them: 2026-01-05, 2026/1/5, 2026.1.5, 2026年1月5日, 20260105,
  Excel serial numbers, with or without a time.
- E-mail lists separated by ; , 、 ； ， or spaces, "Name <a@b>" forms too.
Problems are (code, arguments) pairs, rendered by the import in the user's language.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

# --- columns ------------------------------------------------------------------------------------

REQUIRED = ("number", "holder", "standard", "decided_on", "expires_on")
OPTIONAL = ("scope", "status", "stage2_end_on", "last_surveillance_on", "suspended_on",
            "suspension_months", "suspended_until", "uscc", "contact_emails")  # fmt: skip

# What offices call each column; compared folded (_fold: NFKC, lower case, no blanks or marks).
_ALIASES: dict[str, tuple[str, ...]] = {
    "number": ("number", "certificateno", "certificatenumber", "certno", "certificate", "no",
               "证书编号", "证书号", "证书号码", "编号", "注册号", "证书注册号"),
    "holder": ("holder", "organisation", "organization", "company", "holdername",
               "持证组织", "获证组织", "组织名称", "企业名称", "单位名称", "持有人", "证书持有人",
               "公司名称", "获证组织名称", "持证单位"),
    "standard": ("standard", "认证标准", "标准", "依据标准", "认证依据", "标准名称"),
    "decided_on": ("decidedon", "decided", "decisiondate", "issuedon", "issuedate", "issued",
                   "发证日期", "颁证日期", "认证决定日期", "决定日期", "发证时间", "颁发日期",
                   "签发日期", "注册日期"),
    "expires_on": ("expireson", "expires", "expiry", "expirydate", "validuntil", "expirationdate",
                   "有效期至", "到期日期", "证书到期日", "有效期截止", "到期日", "有效截止日期",
                   "证书有效期至", "截止日期"),
    "scope": ("scope", "认证范围", "范围", "覆盖范围"),
    "status": ("status", "状态", "证书状态"),
    "stage2_end_on": ("stage2endon", "stage2end", "二阶段结束日期", "第二阶段结束日期",
                      "二阶段审核结束日期"),
    "last_surveillance_on": ("lastsurveillanceon", "lastsurveillance", "上次监督日期",
                             "最近监督审核日期", "上次监督审核日期", "最近监督日期"),
    "suspended_on": ("suspendedon", "suspensionstart", "暂停日期", "暂停开始日期"),
    "suspension_months": ("suspensionmonths", "暂停月数", "暂停期限", "暂停期限月", "暂停时长"),
    "suspended_until": ("suspendeduntil", "暂停截止", "暂停截止日期", "暂停至"),
    "uscc": ("uscc", "creditcode", "unifiedsocialcreditcode", "统一社会信用代码", "信用代码",
             "社会信用代码", "组织机构代码"),
    "contact_emails": ("contactemails", "contactemail", "emails", "email", "e-mail",
                       "联系邮箱", "邮箱", "电子邮件", "电子邮箱", "联系人邮箱", "邮件地址"),
}  # fmt: skip
_MARKS = re.compile(r"[\s_\-*＊:：()（）\[\]【】<>《》\"'·.]|必填|选填|可选|required|optional")


def _fold(text: str) -> str:
    return _MARKS.sub("", unicodedata.normalize("NFKC", text).lower())


_BY_ALIAS = {_fold(alias): column for column, names in _ALIASES.items() for alias in names}


def column_of(header: str) -> str | None:
    """The column a header cell names, or None when it names none we know."""
    return _BY_ALIAS.get(_fold(header))


# --- the file -------------------------------------------------------------------------------------

Problem = tuple[str, dict[str, object]]  # (code, arguments): rendered by the import


@dataclass
class Table:
    header: list[str]  # the header cells as written
    rows: list[tuple[int, list[str]]]  # (line where the record starts, cells)
    problems: list[Problem] = field(default_factory=list)  # of the file: nothing imported


_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP = (b"PK\x03\x04", b"PK\x05\x06")


def read_table(data: bytes) -> Table:
    """The header and the records of a register file, each record with its first line."""
    if not data.strip():
        return Table([], [], [("file_empty", {})])
    if data.startswith(_OLE):
        return Table([], [], [("file_xls", {})])
    if data.startswith(_ZIP):
        return _workbook(data)
    text = decode(data)
    if text is None:
        controls = sum(1 for b in data[:4000] if b < 0x20 and b not in b"\t\r\n")
        binary = controls > max(2, min(len(data), 4000) // 100)
        return Table([], [], [("file_binary" if binary else "file_encoding", {})])
    if _binary(text):
        return Table([], [], [("file_binary", {})])
    return _records(text)


def decode(data: bytes) -> str | None:
    """The file's text: a BOM says its encoding; else UTF-16 by its NUL bytes, UTF-8, GB18030."""
    for bom, codec in ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF32_LE, "utf-32-le"),
                       (codecs.BOM_UTF32_BE, "utf-32-be"), (codecs.BOM_UTF16_LE, "utf-16-le"),
                       (codecs.BOM_UTF16_BE, "utf-16-be")):  # fmt: skip
        if data.startswith(bom):
            try:
                return data[len(bom) :].decode(codec)
            except UnicodeDecodeError:
                return None
    sample = data[:4000]
    if sample.count(b"\x00") > len(sample) // 4:  # UTF-16 without its BOM: ASCII's NULs
        even = sample[0::2].count(b"\x00")
        codec = "utf-16-be" if even > sample[1::2].count(b"\x00") else "utf-16-le"
        try:
            return data.decode(codec)
        except UnicodeDecodeError:
            return None
    for codec in ("utf-8", "gb18030"):
        try:
            return data.decode(codec)
        except UnicodeDecodeError:
            continue
    return None


def _binary(text: str) -> bool:
    sample = text[:4000]
    controls = sum(1 for c in sample if (c < " " and c not in "\t\r\n") or c == "\ufffd")
    return controls > max(2, len(sample) // 100)


_SEPARATORS = (",", ";", "\t", "，", "|", "；")


def separator(first_line: str) -> str:
    """The separator the header row uses most (outside quotes)."""
    bare = re.sub(r'"[^"]*"', "", first_line)
    counts = {s: bare.count(s) for s in _SEPARATORS}
    best = max(counts, key=lambda s: counts[s])
    return best if counts[best] else ","


def _records(text: str) -> Table:
    text = text.removeprefix("\ufeff")
    first = next((line for line in io.StringIO(text) if line.strip(" \t\r\n,;，；|")), "")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=separator(first))
    header: list[str] | None = None
    rows: list[tuple[int, list[str]]] = []
    line = 1
    try:
        for record in reader:
            start, line = line, reader.line_num + 1
            cells = [cell.strip() for cell in record]
            if not any(cells):
                continue  # a blank line, or one of empty cells (Excel's trailing rows)
            if header is None:
                header = cells
            else:
                rows.append((start, cells))
    except csv.Error:
        return Table(header or [], rows, [("file_csv", {"line": line})])
    return Table(header or [], rows)


def _workbook(data: bytes) -> Table:
    """The first sheet of an .xlsx, as the text cells a CSV export of it would hold."""
    try:
        from openpyxl import load_workbook

        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        sheet = book.worksheets[0]
        values = [list(row) for row in sheet.iter_rows(values_only=True)]
        book.close()
    except Exception:  # not a workbook after all (a .docx, a zip of photos, a damaged file)
        return Table([], [], [("file_zip", {})])
    header: list[str] | None = None
    rows: list[tuple[int, list[str]]] = []
    for number, row in enumerate(values, 1):
        cells = [_cell_text(value) for value in row]
        if not any(cells):
            continue
        if header is None:
            header = cells
        else:
            rows.append((number, cells))
    return Table(header or [], rows)


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat() if not value.time() else value.isoformat(" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


# --- cells -----------------------------------------------------------------------------------

_EXCEL_EPOCH = date(1899, 12, 30)  # serial 1 is 1900-01-01 (Lotus's leap-year bug kept)
_YMD = re.compile(r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?")
# What may follow a date: a time ("09:30", "9:30:00.000", "T00:00:00Z", "下午 3:00", "3:00 PM").
_TIME = re.compile(
    r"(?:[T\s]*(?:上午|下午)?\s*\d{1,2}[:：]\d{2}(?:[:：]\d{2}(?:\.\d+)?)?(?:\s*[AaPp][Mm])?"
    r"|\s*[Zz]|[+-]\d{2}:?\d{2})*\s*"
)


def parse_date(text: str) -> date:
    """A date however an office wrote it; ValueError when it is none (or ambiguous)."""
    value = unicodedata.normalize("NFKC", text).strip()
    serial = re.fullmatch(r"(\d{5})(?:\.\d+)?", value)
    if serial:
        number = int(serial.group(1))
        if 20_000 <= number <= 80_000:  # 1954–2119: a register's dates, as Excel stores them
            return _EXCEL_EPOCH + timedelta(days=number)
        raise ValueError(value)
    compact = re.fullmatch(r"(\d{4})(\d{2})(\d{2})", value)
    match = compact or _YMD.match(value)
    if match is None or (not compact and _TIME.fullmatch(value[match.end() :]) is None):
        raise ValueError(value)
    year, month, day = (int(g) for g in match.groups())
    return date(year, month, day)


_EMAIL = re.compile(r"[^@\s;,<>()\"'、；，]+@[^@\s;,<>()\"'、；，]+\.[^@\s;,<>()\"'、；，.]+")
_LIST_SEPARATORS = re.compile(r"[;,\s、；，/|]+")


def split_emails(text: str) -> tuple[list[str], str | None]:
    """(addresses, lower-cased, each once; the first piece that is no address, or None).
    `张三 <a@b.cn>` gives its address; the name before it is no piece of its own."""
    pieces = [p.strip(".'\"") for p in _LIST_SEPARATORS.split(unicodedata.normalize("NFKC", text))]
    pieces = [p for p in pieces if p]
    found: list[str] = []
    bad: str | None = None
    for n, piece in enumerate(pieces):
        bracketed = re.search(r"<([^<>]+)>", piece)
        if bracketed:
            piece = bracketed.group(1).strip()
        elif "@" not in piece and _name_before_address(pieces[n + 1 :]):
            continue
        if not _EMAIL.fullmatch(piece):
            bad = bad or piece
        elif piece.lower() not in found:
            found.append(piece.lower())
    return found, bad


def _name_before_address(rest: list[str]) -> bool:
    """Whether the pieces after a word are more of a display name, then `<address>`."""
    for piece in rest:
        if "<" in piece:
            return True
        if "@" in piece:
            return False
    return False


_STATUS_WORDS = {
    "valid": "valid", "有效": "valid", "正常": "valid", "保持": "valid",
    "suspended": "suspended", "暂停": "suspended", "已暂停": "suspended",
    "withdrawn": "withdrawn", "撤销": "withdrawn", "已撤销": "withdrawn", "revoked": "withdrawn",
    "expired": "expired", "过期": "expired", "已过期": "expired", "失效": "expired",
    "已失效": "expired",
}  # fmt: skip


def status_of(text: str) -> str | None:
    """The status a cell names (English or Chinese), or None."""
    return _STATUS_WORDS.get(_fold(text) or "valid")


def cell(text: str) -> str:
    """A text cell: NFKC-folded spaces and controls trimmed (full-width letters in numbers)."""
    return " ".join(unicodedata.normalize("NFKC", text).split())


__all__ = ["OPTIONAL", "REQUIRED", "Problem", "Table", "cell", "column_of", "decode",
           "parse_date", "read_table", "separator", "split_emails", "status_of"]  # fmt: skip
