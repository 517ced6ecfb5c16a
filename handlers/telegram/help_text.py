"""The /help text: every public command, and how to reach the body (a profile setting)."""

from __future__ import annotations

from bot.domain.policy import Contact
from messages.render import th


def help_text(contact: Contact, locale: str) -> str:
    """The help catalog text, then the body's phone, e-mail, address and hours where set."""
    lines = [
        th(f"menu.contact_{field}", locale, value=value)
        for field in ("phone", "email", "address", "hours")
        if (value := getattr(contact, field))
    ]
    text = th("menu.help", locale)
    if lines:
        text += "\n\n" + "\n".join([th("menu.contact_title", locale), *lines])
    return text


__all__ = ["help_text"]
