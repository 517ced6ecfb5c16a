"""Chat with the bot in a terminal: the emulator plays Telegram, the person types.

Each bot message is shown as plain text followed by its buttons as numbered choices (HELP is
printed first). A typed number is a button press only when it is meant as one: when the bot's
latest message carries the buttons and the number is one of theirs. So a phone number, "10" sites
or "120" people is text; the buttons of an earlier message stay usable as ``#N`` after replies
without buttons; a line starting with a backslash is sent as typed (``\\1`` sends "1").
``/file PATH`` uploads a document, ``/quit`` leaves.
"""

from __future__ import annotations

import asyncio
import inspect
import mimetypes
import sys
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO, Any

from telegram.ext import Application, ApplicationBuilder

from bot.emulator.runner import bot_builder, run_app
from bot.emulator.server import Emulator
from bot.emulator.state import Reply
from bot.emulator.users import FakeUser

AppFactory = Callable[[ApplicationBuilder], Application | Awaitable[Application]]

HELP = (
    "Type your answers. [1] [2] … are buttons: type 1 to press one of the latest message's,"
    " #1 for one shown earlier. Other numbers (a phone, a count) are sent as text; so is a line"
    " after a \\ (\\2 sends 2). /file PATH uploads a file, /quit leaves."
)


async def chat(
    app_factory_or_app: Application | AppFactory,
    emulator: Emulator,
    *,
    user_id: int = 1,
    first_name: str = "You",
    language_code: str | None = "zh-hans",
    stdin: IO[str] | None = None,
    stdout: IO[str] | None = None,
    reply_timeout: float = 10.0,
    settle: float = 0.05,
) -> None:
    """Run the bot and a REPL until ``/quit`` or end of input.

    A factory gets an ``ApplicationBuilder`` already pointed at the emulator. After each input the
    REPL waits for the bot's first reply (``reply_timeout``) and until it has been quiet for
    ``settle`` seconds, so scripted input meets the keyboard it was written for.
    """
    app = await _resolve(app_factory_or_app, emulator)
    stdin = stdin or sys.stdin
    term = _Terminal(
        emulator.user(user_id, first_name, language_code=language_code),
        stdout or sys.stdout,
        echo=not stdin.isatty(),
    )
    lines = _LineReader(stdin)
    term._write(HELP)
    async with run_app(app, errors=term.errors):
        watcher = asyncio.create_task(term.show_forever())
        try:
            while (line := await lines.next(term.prompt)) is not None:
                if line.strip() == "/quit":
                    break
                before = len(term.user.replies)
                if await term.handle(line.strip()):
                    await term.await_quiet(before, reply_timeout, settle)
        finally:
            watcher.cancel()
            term.flush()


async def _resolve(app_or_factory: Application | AppFactory, emulator: Emulator) -> Application:
    if isinstance(app_or_factory, Application):
        return app_or_factory
    app = app_or_factory(bot_builder(emulator))
    return await app if inspect.isawaitable(app) else app


class _Terminal:
    def __init__(self, user: FakeUser, out: IO[str], *, echo: bool) -> None:
        self.user = user
        self.out = out
        self.echo = echo  # scripted input: print it, so the transcript reads like a chat
        self.errors: list[Exception] = []
        self.shown = 0
        self.errors_shown = 0
        self.choices: list[tuple[int | None, dict[str, Any]]] = []  # (message_id, button)
        self.choices_latest = False  # the choices are the latest bot message's own

    def prompt(self, line: str | None) -> None:
        if self.echo and line is not None:
            self._write(f"> {line.rstrip()}")

    async def handle(self, line: str) -> bool:
        """Act on one input line; True when something was sent to the bot."""
        if not line:
            return False
        if line.startswith("\\"):  # sent as typed, whatever it looks like
            await self.user.send(line[1:])
            return True
        if line.startswith("#") and line[1:].isdigit():
            return await self._press(int(line[1:]))
        if line.isdigit() and self.choices_latest and 1 <= int(line) <= len(self.choices):
            return await self._press(int(line))
        if line.startswith("/file "):
            return await self._upload(Path(line.removeprefix("/file ").strip()).expanduser())
        await self.user.send(line)
        return True

    async def _press(self, number: int) -> bool:
        if not self.choices:
            self._write("! no buttons are showing")
            return False
        if not 1 <= number <= len(self.choices):
            self._write(f"! choose #1–#{len(self.choices)}")
            return False
        message_id, button = self.choices[number - 1]
        if "url" in button:
            self._write(f"(opens {button['url']})")
            return False
        try:
            await self.user.press(
                button.get("callback_data", button["text"]), message_id=message_id
            )
        except LookupError as err:
            self._write(f"! {err}")
            return False
        return True

    async def _upload(self, path: Path) -> bool:
        try:
            content = path.read_bytes()
        except OSError as err:
            self._write(f"! cannot read {path}: {err.strerror}")
            return False
        mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        await self.user.upload(content, path.name, mime)
        return True

    async def await_quiet(self, before: int, timeout: float, settle: float) -> None:
        emu = self.user.emulator
        outputs = emu.state.outputs[self.user.chat_id]
        if await emu.wait_for(lambda: len(outputs) > before or self._new_errors(), timeout):
            seen = len(outputs)
            # Quiet period: wait on the emulator's condition, not a blind sleep.
            while await emu.wait_for(_longer_than(outputs, seen), settle):
                seen = len(outputs)
        self.flush()

    async def show_forever(self) -> None:
        """Show what the bot sends on its own (reminders, alerts) while the person is typing."""
        emu = self.user.emulator
        outputs = emu.state.outputs[self.user.chat_id]
        while True:
            await emu.wait_for(lambda: len(outputs) > self.shown or self._new_errors(), 3600)
            self.flush()

    def _new_errors(self) -> bool:
        return len(self.errors) > self.errors_shown

    def flush(self) -> None:
        replies = self.user.replies
        for reply in replies[self.shown :]:
            self._show(reply)
        self.shown = len(replies)
        for err in self.errors[self.errors_shown :]:
            self._write(f"! the bot failed: {type(err).__name__}: {err}")
        self.errors_shown = len(self.errors)

    def _show(self, reply: Reply) -> None:
        head = "bot (edited)" if reply.edited else "bot"
        body = reply.text
        if reply.file is not None:
            what = "photo" if reply.method == "sendPhoto" else "document"
            name = reply.file.file_name or reply.file.file_path
            body = f"[{what} {name}, {reply.file.file_size} bytes] {body}".rstrip()
        self._write(f"{head}: " + body.replace("\n", "\n     "))
        if reply.keyboard:
            self.choices = [(reply.message_id, b) for row in reply.keyboard for b in row]
            self.choices_latest = True
            self._write_choices([[b["text"] for b in row] for row in reply.keyboard])
        elif reply.reply_keyboard:
            self.choices = [(None, {"text": text}) for text in reply.reply_keyboard]
            self.choices_latest = True
            self._write_choices([reply.reply_keyboard])
        elif reply.edited:
            if any(mid == reply.message_id for mid, _ in self.choices):
                self.choices = []  # an edit without buttons took that message's keyboard away
        elif self.choices:
            # A new message without buttons may ask for typed text ("120" is a headcount, not
            # a choice): bare numbers are text now; the earlier buttons stay usable as #N.
            self.choices_latest = False
            self._write(f"  (earlier buttons: type #1–#{len(self.choices)})")

    def _write_choices(self, rows: list[list[str]]) -> None:
        n = 0
        for row in rows:
            cells = []
            for text in row:
                n += 1
                cells.append(f"[{n}] {text}")
            self._write("  " + "  ".join(cells))

    def _write(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()


def _longer_than(items: list[Reply], n: int) -> Callable[[], bool]:
    """A wait predicate bound to this ``n`` (a lambda in the loop would see later values)."""
    return lambda: len(items) > n


class _LineReader:
    """stdin lines without blocking the loop; a daemon thread, so a pending read never holds up
    the interpreter's exit."""

    def __init__(self, stream: IO[str]) -> None:
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()
        loop = asyncio.get_running_loop()

        def pump() -> None:
            try:
                for line in iter(stream.readline, ""):
                    loop.call_soon_threadsafe(self._queue.put_nowait, line)
                loop.call_soon_threadsafe(self._queue.put_nowait, None)
            except RuntimeError:  # the loop closed while we waited for a line: nobody to tell
                return

        threading.Thread(target=pump, name="terminal-stdin", daemon=True).start()

    async def next(self, echo: Callable[[str | None], None]) -> str | None:
        line = await self._queue.get()
        echo(line)
        return None if line is None else line.rstrip("\n")
