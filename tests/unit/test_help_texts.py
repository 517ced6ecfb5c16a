"""/help and the command menu list every public command and the body's contact details; no
bare scheme codes in texts (issue 15 §6)."""

from __future__ import annotations

from bot.domain.policy import Contact
from bot.profiles import load_profile
from bot.services.applications import scheme_name
from handlers.telegram.commands import PUBLIC_COMMANDS
from handlers.telegram.help_text import help_text

PUBLIC = (
    "case",
    "mycases",
    "change",
    "link",
    "eligibility",
    "quote",
    "documents",
    "status",
    "certificate",
)


def test_every_public_command_is_in_the_menu_and_in_help() -> None:
    names = {name for name, _key in PUBLIC_COMMANDS}
    assert set(PUBLIC) <= names
    for locale in ("zh_CN", "en"):
        text = help_text(Contact(), locale)
        for name in PUBLIC:
            assert f"/{name} " in text, (locale, name)


def test_help_shows_the_bodys_contact_from_its_profile() -> None:
    bqc = help_text(load_profile("bqc").body.contact, "zh_CN")
    assert "联系我们" in bqc and "电话：0755-26616299" in bqc
    full = Contact(phone="027-1", email="desk@example.cn", address="武汉", hours="9-17")
    text = help_text(full, "en")
    assert "Phone: 027-1" in text and "E-mail: desk@example.cn" in text
    assert "Address: 武汉" in text and "Hours: 9-17" in text
    assert "联系我们" not in help_text(Contact(), "zh_CN")  # nothing set: no empty heading


def test_schemes_are_named_not_coded() -> None:
    assert scheme_name("SA", "zh_CN") == "社会责任管理体系（GB/T 39604）"
    assert scheme_name("QMS", "en").startswith("Quality management system")
    for name in ("ggbz", "bqc", "sgc"):
        for scheme in load_profile(name).body.schemes:
            assert scheme_name(scheme, "zh_CN") != scheme
