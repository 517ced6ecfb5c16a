"""One uploaded file (document or photo) taken from an update and checked as every upload is:
its size before and after downloading, and its type by content. Refusals are answered here."""

from __future__ import annotations

from typing import Any

from telegram import Update

from bot.domain.files import EXTENSIONS, sanitise_filename, sniff_type
from handlers.telegram.common import Context, desk_of, reply


def mb(size: int) -> str:
    return f"{size / 1_000_000:.1f}".rstrip("0").rstrip(".")


async def checked_upload(update: Update, context: Context) -> tuple[bytes, str, str] | None:
    """(bytes, sanitised name, sniffed kind) of the file in the update; None, with the reason
    told to the person, when it is too big or of a type we do not take."""
    message = update.effective_message
    assert message is not None
    limit = desk_of(context).settings.max_upload_bytes
    if message.document is not None:
        media: Any = message.document
        name = sanitise_filename(message.document.file_name, default="document")
    else:
        media = message.photo[-1]  # the largest size
        name = "photo.jpg"
    if media.file_size is not None and media.file_size > limit:
        await reply(
            update, context, "application.too_big", size=mb(media.file_size), limit=mb(limit)
        )
        return None
    data = bytes(await (await media.get_file()).download_as_bytearray())
    if len(data) > limit:
        await reply(update, context, "application.too_big", size=mb(len(data)), limit=mb(limit))
        return None
    kind = sniff_type(data)
    if kind is None:
        await reply(update, context, "application.bad_type")
        return None
    if message.photo and not message.document:
        name = f"photo{EXTENSIONS.get(kind, '')}"
    return data, name, kind


__all__ = ["checked_upload", "mb"]
