"""A staff alert that is about a stored file: the file itself to the staff chat (sendDocument,
captioned, with the buttons under it), the text alert to every other staff channel (robots,
e-mail), which cannot carry a file. Without a staff chat it is the plain staff alert
(bot.outbox.to_staff), kept until a staff channel is configured.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.desk import Desk
from bot.domain.vocabulary import Channel
from bot.outbox.console_links import console_link
from bot.outbox.messages import TelegramDocument, TelegramText, actions, enqueue
from bot.outbox.staff_notice import plain_text, targets
from bot.outbox.to_staff import Buttons, fan_out, queue_for_staff
from messages.render import t
from storage.models import StoredFile
from storage.repo.outbox import STAFF_LANE

MAX_CAPTION = 1024  # Telegram's limit, in UTF-16 code units of the text as shown


def _length(caption_html: str) -> int:
    return len(plain_text(caption_html).encode("utf-16-le")) // 2


@dataclass(frozen=True)
class StaffFile:
    """One file of an alert: the stored file, the name it is shown under, its caption (HTML)."""

    file: StoredFile
    name: str
    caption: str


async def queue_files_for_staff(
    desk: Desk,
    session: AsyncSession,
    *,
    key: str,
    files: Sequence[StaffFile],
    text: str,
    buttons: Buttons,
    text_buttons: Buttons | None = None,
    case_id: int | None = None,
) -> None:
    """Queue each of `files` for the staff chat, captioned, with `buttons` under each; `text`
    (HTML) with `text_buttons` (default `buttons`) once for the other staff channels, or for the
    staff channel kept when none is configured. Once per `key`, every row on the staff lane."""
    settings, now = desk.settings, desk.clock.now()
    found = targets(settings)
    chat = next((target for target in found if target.channel is Channel.TELEGRAM), None)
    shown = actions(text_buttons if text_buttons is not None else buttons)
    if chat is None or not files:
        await queue_for_staff(desk, session, key=key, text=text, buttons=shown, case_id=case_id)
        return
    link, footer = await console_link(settings, session, key, case_id), ""
    if link:
        opener = html.escape(t("console.open_in_console", settings.default_locale))
        footer = f'\n\n<a href="{html.escape(link)}">{opener}</a>'
    for i, item in enumerate(files):
        # The first file keeps the alert's own key (as its text did); the others are numbered.
        row_key = chat.key(key) if i == 0 else f"{key}:file:{i + 1}"
        await _queue_file(session, chat.recipient, item, buttons, footer, row_key, case_id, now)
    others = [target for target in found if target is not chat]
    if others:
        await fan_out(
            session, settings, now, key=key, text=text, buttons=shown, case_id=case_id, to=others
        )


async def _queue_file(
    session: AsyncSession,
    chat_id: str,
    item: StaffFile,
    buttons: Buttons,
    footer: str,
    key: str,
    case_id: int | None,
    now: datetime,
) -> None:
    caption = item.caption + footer
    if _length(caption) > MAX_CAPTION:
        # Too long to caption a file (a long name, a long note): the text first, then the file
        # under its name alone, the buttons under it.
        before = TelegramText(chat_id, caption)
        await enqueue(session, before, key=f"{key}:text", case_id=case_id, now=now, lane=STAFF_LANE)
        caption = html.escape(item.name[:200])
    document = TelegramDocument(
        chat_id,
        item.file.path,
        item.name,
        caption,
        actions(buttons),
        sha256=item.file.sha256,
        content_type=item.file.content_type,
    )
    await enqueue(session, document, key=key, case_id=case_id, now=now, lane=STAFF_LANE)


__all__ = ["MAX_CAPTION", "StaffFile", "queue_files_for_staff"]
