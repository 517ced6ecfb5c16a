"""A staff alert that is about a stored file: the file itself to the staff chat (sendDocument,
captioned, with the buttons under it), the text alert to every other staff channel (robots,
e-mail), which cannot carry a file. Without a staff chat it is the plain staff alert
(bot.outbox.to_staff), kept until a staff channel is configured.
"""

from __future__ import annotations

import html

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


async def queue_file_for_staff(
    desk: Desk,
    session: AsyncSession,
    *,
    key: str,
    file: StoredFile,
    name: str,
    caption: str,
    text: str,
    buttons: Buttons,
    text_buttons: Buttons | None = None,
    case_id: int | None = None,
) -> None:
    """Queue `file` (shown as `name`) for the staff chat with `caption` (HTML) and `buttons`;
    `text` (HTML) with `text_buttons` (default `buttons`) for the other staff channels, or for
    the staff channel kept when none is configured. Once per `key`, each row on the staff lane.
    """
    settings, now = desk.settings, desk.clock.now()
    found = targets(settings)
    chat = next((target for target in found if target.channel is Channel.TELEGRAM), None)
    shown = actions(text_buttons if text_buttons is not None else buttons)
    if chat is None:
        await queue_for_staff(desk, session, key=key, text=text, buttons=shown, case_id=case_id)
        return
    link = await console_link(settings, session, key, case_id)
    if link:
        opener = html.escape(t("console.open_in_console", settings.default_locale))
        caption += f'\n\n<a href="{html.escape(link)}">{opener}</a>'
    if _length(caption) > MAX_CAPTION:
        # Too long to caption a file (a long name, a long note): the text first, then the file
        # under its name alone, the buttons under it.
        before = TelegramText(chat.recipient, caption)
        await enqueue(session, before, key=f"{key}:text", case_id=case_id, now=now, lane=STAFF_LANE)
        caption = html.escape(name[:200])
    document = TelegramDocument(
        chat.recipient,
        file.path,
        name,
        caption,
        actions(buttons),
        sha256=file.sha256,
        content_type=file.content_type,
    )
    await enqueue(session, document, key=chat.key(key), case_id=case_id, now=now, lane=STAFF_LANE)
    others = [target for target in found if target is not chat]
    if others:
        await fan_out(
            session, settings, now, key=key, text=text, buttons=shown, case_id=case_id, to=others
        )


__all__ = ["MAX_CAPTION", "queue_file_for_staff"]
