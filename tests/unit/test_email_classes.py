"""Hostile letters by class, through `parse_message` and `certdesk email parse --json`: never an
exception, and what the person wrote is kept (words, address, subject, case reference, file
names). Hand-made classes in tests/fixtures/mail_classes.py; generated letters below."""

from __future__ import annotations

import base64
import html
import json
import quopri
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.domain.files import sanitise_filename
from bot.domain.letters import case_ref_in_subject, case_ref_in_text
from bot.domain.refs import ALPHABET
from bot.main.cli import main
from handlers.email.decode import decode_bytes
from handlers.email.header_words import decode_header_text
from handlers.email.parse import parse_message
from handlers.email.salvage import signed_content
from tests.fixtures.mail_classes import WORDS, classes, ref_forms, signed_data
from tests.fixtures.mail_corpus import REF, Sample, pdf_bytes, text_part

CLASSES = classes()


def _by_name(name: str) -> Sample:
    return next(s for s in CLASSES if s.name == name)


@pytest.mark.parametrize("sample", CLASSES, ids=lambda s: s.name)
def test_the_cli_prints_what_the_parser_keeps(
    sample: Sample, tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    path = tmp_path / "letter.eml"
    path.write_bytes(sample.raw)
    assert main(["email", "parse", str(path), "--json"]) == 0
    printed = json.loads(capsysbinary.readouterr().out.decode("utf-8"))  # strict UTF-8
    for key, expected in sample.expect.items():
        assert printed[key] == expected, (key, printed[key])
    for fragment in sample.text_has:
        assert fragment in printed["text"]
    names = [a["filename"] for a in printed["attachments"]]
    assert names == [a["filename"] for a in parse_message(sample.raw).to_json()["attachments"]]


@pytest.mark.parametrize("sample", CLASSES, ids=lambda s: s.name)
def test_each_class_keeps_what_it_must(sample: Sample) -> None:
    result = parse_message(sample.raw, **sample.options).to_json()
    for key, expected in sample.expect.items():
        assert result[key] == expected, (key, result[key])
    assert all(fragment in result["text"] for fragment in sample.text_has), result["text"]
    codes = {p.split(":", 1)[0] for p in result["problems"]}
    assert codes >= set(sample.problem_codes), result["problems"]
    if sample.attachments:
        got = result["attachments"]
        assert len(got) == len(sample.attachments), got
        for attachment, expected_part in zip(got, sample.attachments, strict=True):
            assert attachment.items() >= expected_part.items(), attachment


def test_the_classes_cover_the_brief() -> None:
    prefixes = {s.name.split("_")[1] for s in CLASSES}
    assert prefixes >= {
        "from",
        "name",
        "filename",
        "nested",
        "multipart",
        "forward",
        "html",
        "tnef",
        "calendar",
        "zero",
        "bare",
        "cte",
        "charset",
        "auto",
        "smime",
        "ref",
        "inline",
        "ten",
        "reply",
        "subject",
        "header",
    }


def test_a_reply_to_that_differs_is_where_answers_go() -> None:
    parsed = parse_message(_by_name("class_reply_to_differs").raw)
    assert (parsed.from_addr, parsed.reply_to, parsed.sender) == (
        "zhang@qq.com",
        "li@163.com",
        "li@163.com",
    )


def test_display_names_keep_their_words() -> None:
    assert parse_message(_by_name("class_from_bare_gbk_name_no_brackets").raw).from_name == "张伟"
    assert parse_message(_by_name("class_from_whole_in_one_encoded_word").raw).from_name == "张伟"
    assert parse_message(_by_name("class_name_big5_B").raw).from_name == "張偉投訴人"
    assert parse_message(_by_name("class_name_gb18030_Q").raw).from_name == "张伟𠀀投诉人"
    broken = parse_message(_by_name("class_from_broken_qp_gbk_name").raw)
    assert broken.from_name.startswith("张")  # the half character cut, not mojibake


def test_an_html_comment_never_closed_is_no_text() -> None:
    from handlers.email.htmltext import html_to_text

    assert html_to_text("<p>我要投诉<b>审核员 <!-- 注释 <script>x") == "我要投诉审核员"


def test_ten_thousand_recipients_are_all_kept() -> None:
    parsed = parse_message(_by_name("class_ten_thousand_recipients").raw)
    assert len(parsed.to) == 10_000 and parsed.to[-1] == "u9999@example.com"


@pytest.mark.parametrize("form", ref_forms(), ids=range(len(ref_forms())))
def test_a_reference_however_typed(form: str) -> None:
    assert case_ref_in_subject(f"Re: {form} 补充") == REF
    assert case_ref_in_text(f"我的案件编号是{form}，谢谢") == REF


@pytest.mark.parametrize(
    "text", ["TS-2026-7K3F9O", "TS-2026-7K3F9QX", "XTS-2026-7K3F9Q", "POSTS 2026 THANKS", ""]
)
def test_no_reference_where_none_is(text: str) -> None:
    assert case_ref_in_text(text) is None


def test_a_bounce_quoting_our_tag_is_no_reply_to_the_case_by_its_body() -> None:
    parsed = parse_message(_by_name("class_auto_dsn_report").raw)
    assert parsed.bounce is not None and parsed.case_ref is None


def test_a_cut_character_keeps_the_declared_charset() -> None:
    assert decode_bytes("张伟".encode("gbk")[:3], "gbk") == (
        "张\ufffd",
        "charset_damaged: declared gbk, the last character cut short",
    )
    assert decode_bytes("投诉".encode("gbk"), "utf-8")[0] == "投诉"  # a lie, not a cut
    assert decode_header_text("=?utf-8?B?5oqV6K-J?=") == ("投诉", [])


def test_signed_content_reads_the_letter_inside_a_p7m() -> None:
    entity = text_part(WORDS, "utf-8")
    assert signed_content(signed_data(entity)) == entity
    assert signed_content(b"\x30\x80" + bytes(100)) is None


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("证据.pdf/", "证据.pdf"),
        ("report\x07\x1b.pdf", "report.pdf"),
        ("a\x00b\r\nc.txt", "a b c.txt"),
    ],
)
def test_file_names(name: str, expected: str) -> None:
    assert sanitise_filename(name) == expected


# ---------------------------------------------------------------------------------------------
# Generated letters: each built from what a person wrote, in one of the forms clients use; the
# parser must give the same words, address, subject, reference and file name back.

_HANZI = "审核员投诉申请证书机构认证我们您好请问关于公司材料现场报告整改意见处理结果"
_TRAD = "審核員投訴申請證書機構認證我們您好請問關於公司材料現場報告整改意見處理結果"
_CHARSETS = {
    "utf-8": _HANZI + _TRAD,
    "gbk": _HANZI + _TRAD,
    "gb18030": _HANZI + "𠀀䶮",
    "big5": _TRAD,
}


def _encodable(text: str, charset: str) -> bool:
    try:
        text.encode(charset)
    except UnicodeEncodeError:
        return False
    return True


@st.composite
def _letters(draw: st.DrawFn) -> dict[str, object]:
    charset = draw(st.sampled_from(sorted(_CHARSETS)))
    chars = _CHARSETS[charset] + "abcXYZ019，。？！ "
    words = draw(st.text(st.sampled_from(chars), min_size=1, max_size=60)).strip() or "您好"
    name = draw(st.text(st.sampled_from(_CHARSETS[charset]), min_size=1, max_size=8))
    local = draw(st.from_regex(r"[a-z][a-z0-9._]{0,15}", fullmatch=True)).rstrip(".")
    address = f"{local or 'a'}@{draw(st.sampled_from(['qq.com', '163.com', 'Example.CN']))}"
    subject = draw(st.text(st.sampled_from(_CHARSETS[charset]), min_size=1, max_size=20))
    ref = None
    if draw(st.booleans()):
        ref = "TS-20{:02d}-{}".format(
            draw(st.integers(20, 99)),
            "".join(draw(st.lists(st.sampled_from(ALPHABET), min_size=6, max_size=6))),
        )
        form = draw(st.sampled_from([f for f in ref_forms(ref) if _encodable(f, charset)]))
        if draw(st.booleans()):
            subject = f"Re: {form} {subject}"
        else:
            words = f"{words}\nNo. {form}"
    return {
        "charset": charset,
        "words": words,
        "name": name,
        "address": address,
        "subject": subject,
        "ref": ref,
        "from_form": draw(st.sampled_from(["b", "q", "8bit", "bare", "quoted", "comment"])),
        "cte": draw(st.sampled_from(["base64", "quoted-printable", "8bit"])),
        "shape": draw(st.sampled_from(["plain", "html", "alternative", "mixed", "nested"])),
        "depth": draw(st.integers(1, 60)),
        "eol": draw(st.sampled_from(["\r\n", "\n", "\r"])),
        "file": draw(
            st.text(st.sampled_from(_CHARSETS[charset] + "ab1 -_"), min_size=1, max_size=30)
        ),
        "file_form": draw(st.sampled_from(["2231", "2047", "8bit", "path"])),
    }


def _word(text: str, charset: str, encoding: str) -> str:
    data = text.encode(charset)
    if encoding == "b":
        return f"=?{charset}?B?{base64.b64encode(data).decode()}?="
    quoted = quopri.encodestring(data, header=True).decode().replace("=\n", "")
    return f"=?{charset}?Q?{quoted}?="


def _encoded(data: bytes, cte: str) -> bytes:
    if cte == "base64":
        return base64.encodebytes(data)
    return quopri.encodestring(data) if cte == "quoted-printable" else data


def _build(letter: dict[str, object]) -> bytes:
    cs, name, address = str(letter["charset"]), str(letter["name"]), str(letter["address"])
    form = letter["from_form"]
    sender: bytes = {
        "b": f"{_word(name, cs, 'b')} <{address}>".encode(),
        "q": f"{_word(name, cs, 'q')} <{address}>".encode(),
        "8bit": name.encode(cs) + f" <{address}>".encode(),
        "bare": f"<{address}>".encode(),
        "quoted": f'"{name}" <{address}>'.encode(cs),
        "comment": f"{address} ({name})".encode(cs),
    }[str(form)]
    words, cte = str(letter["words"]), str(letter["cte"])

    def part(mime: str, text: str) -> bytes:
        return (
            f"Content-Type: {mime}; charset={cs}\nContent-Transfer-Encoding: {cte}\n\n".encode()
            + _encoded(text.encode(cs), cte)
        )

    plain = part("text/plain", words)
    markup = part("text/html", "<p>" + html.escape(words).replace("\n", "<br>") + "</p>")
    file_name = f"{letter['file']}.pdf"
    disposition = {
        "2231": "filename*=utf-8''" + "".join(f"%{b:02X}" for b in file_name.encode()),
        "2047": f'filename="{_word(file_name, cs, "b")}"',
        "8bit": f'filename="{file_name}"',
        "path": f'filename="C:\\\\files\\\\{file_name}"',
    }[str(letter["file_form"])]
    pdf = (
        b"Content-Type: application/pdf\nContent-Transfer-Encoding: base64\n"
        b"Content-Disposition: attachment; "
        + disposition.encode(cs)
        + b"\n\n"
        + base64.encodebytes(pdf_bytes())
    )

    def multi(kind: str, parts: list[bytes], boundary: str) -> bytes:
        body = b"".join(b"--" + boundary.encode() + b"\n" + p + b"\n" for p in parts)
        head = f'Content-Type: multipart/{kind}; boundary="{boundary}"\n\n'.encode()
        return head + body + b"--" + boundary.encode() + b"--\n"

    shape = letter["shape"]
    if shape == "plain":
        entity = plain
    elif shape == "html":
        entity = markup
    elif shape == "alternative":
        entity = multi("alternative", [plain, markup], "alt")
    elif shape == "mixed":
        entity = multi("mixed", [plain, pdf], "mix")
    else:
        entity = multi("mixed", [plain, pdf], "n0")
        for level in range(1, int(str(letter["depth"]))):
            entity = multi("mixed", [entity], f"n{level}")
    subject = _word(str(letter["subject"]), cs, "b").encode()
    head = b"From: " + sender + b"\nTo: certdesk@example.com\nSubject: " + subject + b"\n"
    raw = head + b"Message-ID: <gen@qq.com>\nMIME-Version: 1.0\n" + entity
    return raw.replace(b"\n", str(letter["eol"]).encode())


def _squeezed(text: str) -> str:
    return "".join(text.split())


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_letters())
def test_generated_letters_keep_what_the_person_wrote(letter: dict[str, object]) -> None:
    parsed = parse_message(_build(letter))
    json.dumps(parsed.to_json(), ensure_ascii=False).encode("utf-8")
    assert parsed.from_addr == str(letter["address"]).lower()
    if letter["from_form"] != "bare":
        assert _squeezed(parsed.from_name) == _squeezed(str(letter["name"]))
    assert _squeezed(parsed.subject) == _squeezed(str(letter["subject"]))
    assert _squeezed(str(letter["words"])) in _squeezed(parsed.text)
    assert parsed.case_ref == letter["ref"]
    if letter["shape"] in ("mixed", "nested"):
        (attachment,) = parsed.attachments
        assert attachment.filename == sanitise_filename(f"{letter['file']}.pdf")
        assert attachment.acceptable
