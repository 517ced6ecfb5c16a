"""One staff notice, rendered for each configured staff channel.

Telegram gets the HTML with its buttons; the group robots (WeCom, DingTalk, Feishu) a title, a
plain text and a link to act; e-mail a subject and a plain-text body.
Buttons exist only on Telegram: the other channels say where to act instead.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from html.parser import HTMLParser

from bot.config import Settings
from bot.delivery.messages import (
    ROBOT_CHANNELS,
    UNROUTED,
    Actions,
    Letter,
    Outbound,
    RobotAlert,
    TelegramText,
)
from bot.domain.vocabulary import Channel
from messages.render import t

ROBOTS = ROBOT_CHANNELS

__all__ = ["ROBOTS", "UNROUTED", "Target", "plain_text", "render", "targets", "title_and_body"]


@dataclass(frozen=True)
class Target:
    channel: Channel
    recipient: str  # chat id, robot name (its lane in the outbox) or e-mail address

    def key(self, key: str) -> str:
        """The row's idempotency key: Telegram keeps the bare key (older rows dedup with it)."""
        if self.channel is Channel.TELEGRAM:
            return key
        if self.channel is Channel.EMAIL:
            return f"{key}:email:{self.recipient}"
        return f"{key}:{self.channel.value}"


def targets(settings: Settings) -> list[Target]:
    """Every configured staff channel, Telegram first; empty when none is."""
    found = []
    if settings.staff_chat_id is not None:
        found.append(Target(Channel.TELEGRAM, str(settings.staff_chat_id)))
    urls = {
        Channel.WECOM: settings.wecom_webhook_url,
        Channel.DINGTALK: settings.dingtalk_webhook_url,
        Channel.FEISHU: settings.feishu_webhook_url,
    }
    found += [Target(channel, channel.value) for channel in ROBOTS if urls[channel]]
    found += [
        Target(Channel.EMAIL, address) for address in dict.fromkeys(settings.staff_alert_emails)
    ]
    return found


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)  # entities unescaped as text is collected
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def plain_text(text_html: str) -> str:
    """Telegram HTML → the text a reader sees: tags dropped, entities unescaped."""
    parser = _Text()
    parser.feed(text_html)
    parser.close()
    return "".join(parser.parts).strip()


def title_and_body(text_html: str) -> tuple[str, str]:
    """The first non-empty line as the title, the rest as the body."""
    lines = plain_text(text_html).split("\n")
    first = next((i for i, line in enumerate(lines) if line.strip()), 0)
    title = lines[first].strip() if lines else ""
    return title or "certdesk", "\n".join(lines[first + 1 :]).strip()


def render(
    target: Target,
    settings: Settings,
    text_html: str,
    buttons: Actions = (),
    link: str | None = None,
) -> Outbound:
    """This notice as a message on `target`'s channel; `link`: its console page."""
    if target.channel is Channel.TELEGRAM:
        if link:
            opener = html.escape(t("console.open_in_console", settings.default_locale))
            text_html += f'\n\n<a href="{html.escape(link)}">{opener}</a>'
        return TelegramText(target.recipient, text_html, buttons)
    loc = settings.default_locale
    title, body = title_and_body(text_html)
    hint, link = t("outbox.staff_act_hint", loc), link or settings.console_base_url or None
    if target.channel is Channel.EMAIL:
        foot = f"{hint}: {link}" if link else hint
        return Letter(
            to=target.recipient,
            subject=t("outbox.staff_alert_subject", loc, title=title),
            text="\n\n".join(part for part in (title, body, foot) if part),
            locale=loc,
        )
    return RobotAlert(target.channel, title, body, link, hint)
