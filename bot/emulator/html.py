"""Telegram's HTML parse mode, strictly: turns a text into (plain text, entities) or refuses it.

Stricter than Telegram on one point: a bare ``&`` is refused (Telegram keeps it literally), so
a test catches user text that reached a template without ``html.escape``.
"""

from __future__ import annotations

import html
import re
from typing import Any


class EntityError(ValueError):
    """The text is not valid Telegram HTML; the message is Telegram's wording."""


_TAG = re.compile(
    r"<(?P<close>/?)(?P<name>[a-zA-Z][a-zA-Z0-9-]*)"
    r"(?P<attrs>(?:\s+[a-zA-Z-]+(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s>\"']+))?)*)\s*>"
)
_ATTR = re.compile(r"([a-zA-Z-]+)(?:\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|([^\s>\"']+)))?")
_ENTITY = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|lt|gt|amp|quot);")

# Telegram's tag → MessageEntity type (span and code are special-cased below).
_TYPES = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}


def utf16_len(text: str) -> int:
    """Telegram measures offsets and lengths in UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode())


def _attrs(raw: str) -> dict[str, str]:
    return {
        m.group(1).lower(): html.unescape(m.group(2) or m.group(3) or m.group(4) or "")
        for m in _ATTR.finditer(raw)
    }


def _entity(name: str, attrs: dict[str, str], offset: int, length: int) -> dict[str, Any] | None:
    kind = _TYPES[name]
    entity: dict[str, Any] = {"type": kind, "offset": offset, "length": length}
    if name == "a":
        entity["url"] = attrs.get("href", "")
    elif name == "blockquote" and "expandable" in attrs:
        entity["type"] = "expandable_blockquote"
    elif name == "tg-emoji":
        entity["custom_emoji_id"] = attrs.get("emoji-id", "")
    elif name == "code" and attrs.get("class", "").startswith("language-"):
        entity["language"] = attrs["class"].removeprefix("language-")
    return entity


def parse_html(text: str) -> tuple[str, list[dict[str, Any]]]:
    """Parse like the Bot API does for parse_mode=HTML; raise EntityError when it would refuse."""
    out: list[str] = []
    units = 0  # UTF-16 length of `out` so far
    stack: list[tuple[str, dict[str, str], int, int]] = []  # name, attrs, offset, byte offset
    entities: list[dict[str, Any]] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "&":
            m = _ENTITY.match(text, i)
            if not m:
                raise EntityError(f"Unsupported HTML entity at byte offset {_byte_offset(text, i)}")
            piece = html.unescape(m.group())
            out.append(piece)
            units += utf16_len(piece)
            i = m.end()
            continue
        if ch != "<":
            j = i
            while j < len(text) and text[j] not in "<&":
                j += 1
            out.append(text[i:j])
            units += utf16_len(text[i:j])
            i = j
            continue
        m = _TAG.match(text, i)
        at = _byte_offset(text, i)
        if not m:
            raise EntityError(f"Unexpected end of name token at byte offset {at}")
        name = m.group("name").lower()
        if m.group("close"):
            if not stack:
                raise EntityError(f'Unexpected end tag "{name}" at byte offset {at}')
            open_name, attrs, offset, _ = stack.pop()
            if open_name != name:
                raise EntityError(
                    f'Unmatched end tag at byte offset {at}, expected "</{open_name}>", '
                    f'found "</{name}>"'
                )
            if units > offset:
                entity = _entity(name, attrs, offset, units - offset)
                if entity:
                    entities.append(entity)
        else:
            if name not in _TYPES:
                raise EntityError(f'Unsupported start tag "{name}" at byte offset {at}')
            attrs = _attrs(m.group("attrs"))
            if name == "span" and attrs.get("class") != "tg-spoiler":
                raise EntityError(f'Tag "span" must have class "tg-spoiler" at byte offset {at}')
            stack.append((name, attrs, units, at))
        i = m.end()
    if stack:
        raise EntityError(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    return "".join(out), _merge_pre_code(entities)


def _merge_pre_code(entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """<pre><code class="language-x"> is one pre entity with a language, as Telegram returns it."""
    pres = {(e["offset"], e["length"]): e for e in entities if e["type"] == "pre"}
    kept = []
    for e in entities:
        pre = pres.get((e["offset"], e["length"])) if e["type"] == "code" else None
        if pre is not None:
            if "language" in e:
                pre["language"] = e["language"]
            continue
        if e["type"] == "code":
            e.pop("language", None)
        kept.append(e)
    return sorted(kept, key=lambda e: (e["offset"], -e["length"]))


def strip_html(text: str) -> str:
    """Plain text of an HTML message for people and assertions; lenient (never raises)."""
    try:
        return parse_html(text)[0]
    except EntityError:
        return html.unescape(re.sub(r"<[^>]*>", "", text))
