"""HTML letters as text: what a person wrote, without scripts, styles or markup.

Outlook wraps every line in <p>, QQ and 163 send HTML only, with entities and CJK; blocks
become lines, tables cells, scripts and styles nothing.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser


class _HtmlText(HTMLParser):
    _BLOCK = frozenset(
        (
            "address", "article", "aside", "blockquote", "dd", "div", "dl", "dt", "footer",
            "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "ol", "p", "pre",
            "section", "table", "tr", "ul",
        )
    )  # fmt: skip
    _SKIP = frozenset(("script", "style", "head", "title", "template", "noscript"))

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self.skipping = 0
        self.pre = 0

    def _line_break(self) -> None:
        # Blocks start on a new line without adding blank lines (Outlook wraps every line in <p>).
        for chunk in reversed(self.chunks):
            if chunk.strip(" "):
                if not chunk.rstrip(" ").endswith("\n"):
                    self.chunks.append("\n")
                return

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self.skipping += 1
        elif tag == "br":
            self.chunks.append("\n")
        elif tag in self._BLOCK:
            self._line_break()
            if tag == "li":
                self.chunks.append("- ")
        elif tag in ("td", "th"):
            self.chunks.append(" ")
        if tag == "pre":
            self.pre += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag in self._BLOCK:
            self._line_break()
        if tag == "pre":
            self.pre = max(0, self.pre - 1)

    def handle_data(self, data: str) -> None:
        if self.skipping:
            return
        self.chunks.append(data if self.pre else re.sub(r"[ \t\r\n\f\xa0]+", " ", data))


def html_to_text(html: str) -> str:
    # A comment never closed (a cut letter) would come out as text, markup and all.
    opened = html.rfind("<!--")
    if opened >= 0 and html.find("-->", opened) < 0:
        html = html[:opened]
    parser = _HtmlText()
    parser.feed(html)
    parser.close()
    lines = [line.strip() for line in "".join(parser.chunks).split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([A-Za-z0-9_.:-]+)""", re.I)


def meta_charset(data: bytes) -> str | None:
    match = _META_CHARSET.search(data[:4096])
    return match.group(1).decode("ascii") if match else None


__all__ = ["calendar_to_text", "html_to_text", "meta_charset"]


# An invitation (text/calendar, RFC 5545) as the lines a person reads in it.
_ICS_SHOWN = {"SUMMARY": "", "DTSTART": "", "DTEND": "", "LOCATION": "", "DESCRIPTION": ""}


def calendar_to_text(ics: str) -> str:
    """SUMMARY, times, LOCATION and DESCRIPTION of each event, unfolded and unescaped."""
    unfolded = re.sub(r"\r?\n[ \t]", "", ics)
    lines: list[str] = []
    for line in unfolded.splitlines():
        name, _, value = line.partition(":")
        key = name.split(";", 1)[0].strip().upper()
        if key in _ICS_SHOWN and value.strip():
            text = re.sub(r"\\([,;\\])", r"\1", value.strip()).replace("\\n", "\n")
            lines.append(text.replace("\\N", "\n"))
    return "\n".join(lines) if lines else ics.strip()
