"""The typed outbound messages: one encoding to the stored payload, and back."""

from __future__ import annotations

import pytest

from bot.delivery.messages import (
    Action,
    BadPayload,
    Letter,
    RobotAlert,
    StaffNotice,
    TelegramDocument,
    TelegramText,
    decode,
    encode,
)
from bot.domain.vocabulary import Channel

MESSAGES = [
    TelegramText("42", "<b>hi</b>", ((Action("Show", "staff:show:TS-1"),),)),
    TelegramText("-100", "plain <text>", html=False),
    Letter(
        to="a@example.cn",
        subject="[TS-1] 已收到",
        text="正文",
        html="<p>正文</p>",
        locale="zh_CN",
        in_reply_to="<x@y>",
        references=("<w@y>", "<x@y>"),
        auto_reply=True,
        case_ref="TS-1",
        message_id="<ts-1.ab@desk.example>",
    ),
    RobotAlert(Channel.DINGTALK, "新投诉", "正文", "https://console.example/", "打开控制台"),
    StaffNotice("<b>staff</b>", ((Action("A", "sd:a:1"), Action("R", "sd:r:1")),)),
    TelegramDocument(
        "-100",
        "files/ab/cd/abcd" + "0" * 60,
        "营业执照.pdf",
        "<b>营业执照</b>",
        ((Action("Accept", "sd:a:1"), Action("Reject", "sd:r:1")),),
        sha256="abcd" + "0" * 60,
        content_type="application/pdf",
    ),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_a_message_survives_its_stored_form(message: object) -> None:
    channel, recipient, payload = encode(message)  # type: ignore[arg-type]
    assert decode(channel, recipient, payload) == message


def test_rows_queued_before_the_types_still_decode() -> None:
    old = {"text": "x", "reply_markup": [[{"text": "Go", "callback_data": "g"}]]}
    assert decode("telegram", "7", old) == TelegramText("7", "x", ((Action("Go", "g"),),))
    assert decode("telegram", "7", {"text": "x", "parse_mode": None}).html is False  # type: ignore[union-attr]
    letter = decode("email", "a@b", {"subject": "s", "text": "t", "references": "<a@b> <c@d>"})
    assert isinstance(letter, Letter) and letter.references == ("<a@b>", "<c@d>")


@pytest.mark.parametrize(
    ("channel", "payload"),
    [
        ("telegram", {}),
        ("telegram", {"text": 3}),
        ("wecom", {"title": " ", "text": "t"}),
        ("feishu", {"title": "t", "text": "t", "link": "javascript:alert(1)"}),
        ("pigeon", {"text": "t"}),
        ("telegram", {"document": "/etc/passwd", "file_name": "p"}),
        ("telegram", {"document": "files/../../etc/passwd", "file_name": "p"}),
        ("telegram", {"document": "uploads/x", "file_name": "p"}),
        ("telegram", {"document": "files/ab/cd/x", "file_name": " "}),
        ("telegram", {"document": 7, "file_name": "p"}),
    ],
)
def test_a_payload_that_is_no_message_is_refused(channel: str, payload: dict) -> None:
    with pytest.raises(BadPayload):
        decode(channel, "r", payload)


def test_a_document_keeps_a_file_reference_never_its_bytes() -> None:
    doc = TelegramDocument("-100", "files/ab/cd/abcd", "a.pdf", "<i>c</i>", root="/srv/data")
    channel, recipient, payload = encode(doc)
    assert (channel, recipient) == (Channel.TELEGRAM, "-100")
    assert payload["document"] == "files/ab/cd/abcd" and "root" not in payload
    assert set(payload) == {"document", "file_name", "caption", "sha256", "content_type"}
    back = decode(channel, recipient, payload)
    assert isinstance(back, TelegramDocument) and back.root is None and back.text == "<i>c</i>"
