"""In-project Telegram Bot API emulator: tests, benches and the local terminal chat."""

from bot.emulator.faults import ApiError
from bot.emulator.runner import bot_builder, run_app
from bot.emulator.server import Emulator
from bot.emulator.state import Call, Reply, StoredFile
from bot.emulator.users import FakeUser, NoReplyError

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
