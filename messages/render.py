"""One way to render a user-facing text for a locale.

Catalogs are `messages/catalogs/<area>.toml`; each table is a key holding `zh_CN` and `en`.
A text is addressed as `"<area>.<key>"`. Placeholders use `str.format` names.
"""

from __future__ import annotations

import html
import string
import tomllib
from functools import cache
from pathlib import Path

LOCALES = ("zh_CN", "en")
DEFAULT_LOCALE = "zh_CN"
CATALOG_DIR = Path(__file__).parent / "catalogs"


@cache
def catalog() -> dict[str, dict[str, str]]:
    """Every text by full key, then by locale."""
    texts: dict[str, dict[str, str]] = {}
    for path in sorted(CATALOG_DIR.glob("*.toml")):
        with path.open("rb") as fh:
            for key, by_locale in tomllib.load(fh).items():
                texts[f"{path.stem}.{key}"] = by_locale
    return texts


def normalise_locale(code: str | None) -> str:
    """Telegram `language_code` or a stored choice → a catalog locale (zh* → zh_CN, else en)."""
    if not code:
        return DEFAULT_LOCALE
    if code in LOCALES:
        return code
    return "zh_CN" if code.lower().startswith("zh") else "en"


def placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def t(key: str, locale: str | None = None, /, **args: object) -> str:
    """Plain text (e-mail bodies, CLI): arguments inserted as they are."""
    return catalog()[key][normalise_locale(locale)].format(**args)


def th(key: str, locale: str | None = None, /, **args: object) -> str:
    """Telegram HTML: the template is trusted, every argument is escaped."""
    safe = {k: html.escape(str(v), quote=False) for k, v in args.items()}
    return catalog()[key][normalise_locale(locale)].format(**safe)


def rule_label(rule_id: str, locale: str | None) -> str:
    """A deadline rule's name from the rules catalog, or its id when it has none."""
    key = f"rules.{rule_id}"
    return t(key, locale) if key in catalog() else rule_id
