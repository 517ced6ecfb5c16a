"""In-project Telegram Bot API emulator: tests, benches and the local terminal chat."""

from bot.emulator.runner import bot_builder, run_app
from bot.emulator.server import ApiError, Call, Emulator, FakeUser, NoReplyError, Reply, StoredFile

__all__ = [
    "ApiError",
    "Call",
    "Emulator",
    "FakeUser",
    "NoReplyError",
    "Reply",
    "StoredFile",
    "bot_builder",
    "run_app",
]
