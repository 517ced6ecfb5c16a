"""The shipped policy profiles (`*.toml` beside this file) and loading a profile by name or path."""

from __future__ import annotations

import tomllib
from functools import lru_cache
from pathlib import Path

from bot.domain.policy import Profile, ProfileError, parse_profile
from messages.render import catalog

PROFILE_DIR = Path(__file__).parent


def list_profiles() -> list[str]:
    """The names of the shipped profiles."""
    return sorted(p.stem for p in PROFILE_DIR.glob("*.toml"))


def load_profile(name_or_path: str | Path) -> Profile:
    """A shipped profile by bare name (`ggbz`), or a profile file by path (has `/` or `.toml`)."""
    text = str(name_or_path)
    if isinstance(name_or_path, Path) or "/" in text or text.endswith(".toml"):
        path, shown = Path(text), text
    else:
        shown = f"bot/profiles/{text}.toml"
        if text not in list_profiles():
            known = ", ".join(list_profiles())
            raise ProfileError(shown, "profile", f"unknown profile name {text!r} (known: {known})")
        path = PROFILE_DIR / f"{text}.toml"
    return _load(path.resolve(), shown)


@lru_cache(maxsize=32)
def _load(path: Path, shown: str) -> Profile:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ProfileError(shown, "file", "not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(shown, "toml", f"syntax error: {exc}") from None
    profile = parse_profile(data, shown)
    _check_texts(profile, shown)
    return profile


def _check_texts(profile: Profile, shown: str) -> None:
    """Every question, failure and checklist item needs its text in both languages: a deployer's
    own profile naming a new id must bring it (messages/catalogs), or it is refused here rather
    than crash at the question."""
    known = catalog()
    needed = [(f"eligibility[{c.id}]", f"eligibility.q_{c.id}") for c in profile.eligibility]
    needed += [(f"eligibility[{c.id}]", f"eligibility.fail_{c.id}") for c in profile.eligibility]
    needed += [(f"documents[{d.id}]", f"documents.{d.id}") for d in profile.documents]
    for key, text_key in needed:
        if text_key not in known:
            raise ProfileError(shown, f"{key}.id", f"no text {text_key!r} in messages/catalogs")


__all__ = ["PROFILE_DIR", "list_profiles", "load_profile"]
