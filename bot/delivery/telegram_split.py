"""A Telegram text longer than one message allows, split into several, never cut.

Telegram refuses a text over 4,096 characters (counted after the HTML is parsed, in UTF-16 code
units). Our HTML keeps its tags within a line, so the text is split between lines; a single line
too long for one message (a 5,000-character display name) is sent as escaped plain text in
pieces, cut at a space where there is one. Every part says which it is ("(2/3)").
"""

from __future__ import annotations

import html
from html.parser import HTMLParser

TELEGRAM_MAX = 4096
BUDGET = TELEGRAM_MAX - 96  # room for the part marker and a margin


class _Visible(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.open = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.open += 1

    def handle_endtag(self, tag: str) -> None:
        self.open -= 1

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def _parse(text: str, is_html: bool) -> tuple[str, bool]:
    """The visible text, and whether the markup is balanced within `text`."""
    if not is_html:
        return text, True
    parser = _Visible()
    parser.feed(text)
    parser.close()
    return "".join(parser.parts), parser.open == 0


def units(text: str) -> int:
    """Telegram's length: UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def visible_length(text: str, is_html: bool = True) -> int:
    return units(_parse(text, is_html)[0])


def _pieces(plain: str, budget: int) -> list[str]:
    """Plain text in pieces of at most `budget` units, cut at a space when one is near."""
    out: list[str] = []
    while units(plain) > budget:
        cut = budget
        while units(plain[:cut]) > budget:
            cut -= 1
        space = plain.rfind(" ", cut // 2, cut)
        cut = space + 1 if space > 0 else cut
        out.append(plain[:cut])
        plain = plain[cut:]
    return [*out, plain]


def split(text: str, is_html: bool = True, budget: int = BUDGET) -> list[str]:
    """`text` as one or more message texts (HTML stays HTML), each within Telegram's limit."""
    # Tags and entities only add to the raw length: most texts need no parsing at all.
    if units(text) <= TELEGRAM_MAX or visible_length(text, is_html) <= TELEGRAM_MAX:
        return [text]
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for line in text.split("\n"):
        visible, balanced = _parse(line, is_html)
        n = units(visible) + 1
        if n > budget or not balanced:
            pieces = _pieces(visible, budget) if n > budget else [visible]
            lines = [html.escape(p, quote=False) if is_html else p for p in pieces]
        else:
            lines = [line]
        for piece in lines:
            m = visible_length(piece, is_html) + 1
            if current and size + m > budget:
                chunks.append("\n".join(current))
                current, size = [], 0
            current.append(piece)
            size += m
    if current:
        chunks.append("\n".join(current))
    total = len(chunks)
    return [f"{chunk}\n({i}/{total})" for i, chunk in enumerate(chunks, 1)]
