"""Every text exists in both languages with the same placeholders."""

import pytest

from messages.render import LOCALES, catalog, placeholders, t, th


@pytest.mark.parametrize("key", sorted(catalog()))
def test_every_key_has_both_locales_with_same_placeholders(key: str) -> None:
    texts = catalog()[key]
    assert set(texts) >= set(LOCALES), f"{key} lacks {set(LOCALES) - set(texts)}"
    assert all(texts[loc].strip() for loc in LOCALES), f"{key} has an empty text"
    assert placeholders(texts["zh_CN"]) == placeholders(texts["en"]), key


def test_html_render_escapes_arguments_not_template() -> None:
    key = next(k for k, v in catalog().items() if placeholders(v["en"]))
    name = next(iter(placeholders(catalog()[key]["en"])))
    args = {p: "x" for p in placeholders(catalog()[key]["en"])} | {name: "<b>&"}
    assert "&lt;b&gt;&amp;" in th(key, "en", **args)
    assert "<b>&" in t(key, "en", **args)
