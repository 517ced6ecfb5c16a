"""A Telegram Bot API emulator the real PTB ``Application`` talks to over HTTP.

It plays Telegram (the Bot API methods certdesk uses, validated the way Telegram validates them)
and the people (``FakeUser``) on the other side, and records everything the bot sent, so tests,
benches and the local terminal mode exercise the real bot without the network.

``Emulator`` puts the parts together and is the test's handle on them: ``State`` (what Telegram
remembers), ``UpdateQueue`` (what the bot polls), ``BotApi`` (the methods), ``Faults`` (what the
test makes go wrong) and ``ApiServer`` (the HTTP side).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from typing import Any

from bot.clock import Clock
from bot.emulator.api import ApiServer
from bot.emulator.faults import RATED, Fault, Faults
from bot.emulator.methods import BotApi
from bot.emulator.state import Call, Reply, State, StoredFile
from bot.emulator.updates import UpdateQueue
from bot.emulator.users import FakeUser


class Emulator:
    """Telegram Bot API on 127.0.0.1:<ephemeral port>; ``async with Emulator() as emu:``.

    ``clock`` dates the messages (a test's FrozenClock gives consistent dates); the real clock
    by default.
    """

    def __init__(
        self,
        *,
        token: str | None = None,
        bot_username: str = "certdesk_bot",
        bot_name: str = "certdesk",
        clock: Clock | None = None,
        poll_cap: float | None = None,
    ) -> None:
        bot_id = int(token.split(":")[0]) if token and token.split(":")[0].isdigit() else 100
        bot_user: dict[str, Any] = {
            "id": bot_id,
            "is_bot": True,
            "first_name": bot_name,
            "username": bot_username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }
        self.state = State(bot_user, clock or Clock())
        self.queue = UpdateQueue(self.state, poll_cap)
        self.faults = Faults(lambda: self.state.clock.now().timestamp())
        self.server = ApiServer(
            self.state, self.faults, BotApi(self.state, self.queue).table(), token
        )

    # ---- lifecycle -------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def base_url(self) -> str:
        """For ``ApplicationBuilder().base_url(...)``; PTB appends the token."""
        return f"http://127.0.0.1:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/file/bot"

    async def start(self) -> None:
        await self.server.start()

    async def stop(self) -> None:
        await self.queue.close()
        await self.server.stop()

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---- what the test reads -----------------------------------------------------------------

    @property
    def token(self) -> str | None:
        return self.server.token

    @property
    def clock(self) -> Clock:
        return self.state.clock

    @property
    def bot_user(self) -> dict[str, Any]:
        return self.state.bot_user

    @property
    def sent(self) -> list[Call]:
        """Every HTTP call the bot made, as answered."""
        return self.server.sent

    @property
    def unknown(self) -> list[str]:
        """Methods the bot called that the emulator does not know."""
        return self.server.unknown

    @property
    def updates(self) -> list[dict[str, Any]]:
        """Every update ever queued."""
        return self.queue.history

    @property
    def webhook_url(self) -> str | None:
        return self.queue.webhook_url

    @property
    def rejected(self) -> int:
        """Calls refused by ``rate_limit()``."""
        return self.faults.rejected

    @property
    def group_rejected(self) -> int:
        """Of those, calls refused by a group's per-minute limit."""
        return self.faults.group_rejected

    def busiest_minute(self, chat_id: int) -> int:
        """The most messages this chat accepted within any 60 s of the emulator's clock."""
        stamps = sorted(
            c.clock_at
            for c in self.server.sent
            if c.ok and c.method.lower() in RATED and c.params.get("chat_id") == chat_id
        )
        ends = (bisect.bisect_left(stamps, t + 60) - i for i, t in enumerate(stamps))
        return max(ends, default=0)

    @property
    def files(self) -> dict[str, StoredFile]:
        return self.state.files

    @property
    def commands(self) -> dict[tuple[str, str], list[dict[str, Any]]]:
        """Command lists by (JSON scope, language code)."""
        return self.state.commands

    @property
    def callback_answers(self) -> dict[str, dict[str, Any] | None]:
        """answerCallbackQuery parameters by query id; None while unanswered."""
        return self.state.callback_answers

    @property
    def _outputs(self) -> dict[int, list[Reply]]:
        """The live per-chat reply lists (``outputs()`` returns copies)."""
        return self.state.outputs

    @property
    def _messages(self) -> dict[int, dict[int, dict[str, Any]]]:
        """The live per-chat messages by id, as edited."""
        return self.state.messages

    def calls(self, method: str) -> list[Call]:
        """Every recorded call of ``method`` (case-insensitive), failed ones included."""
        key = method.lower()
        return [c for c in self.sent if c.method.lower() == key]

    def outputs(self, chat_id: int) -> list[Reply]:
        """Everything the bot showed in a chat: messages and edits, in order."""
        return list(self.state.outputs[chat_id])

    def delivered(self, chat_id: int) -> list[Reply]:
        """Messages that reached the chat (sendMessage/sendDocument/sendPhoto), not edits."""
        return [r for r in self.state.outputs[chat_id] if not r.edited]

    def message(self, chat_id: int, message_id: int) -> dict[str, Any] | None:
        """The message's current state (after edits), or None if deleted or unknown."""
        return self.state.messages[chat_id].get(message_id)

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        """Wait until ``predicate()`` holds after some call or update; False on timeout."""
        return await self.state.wait_for(predicate, timeout)

    # ---- what the test does ------------------------------------------------------------------

    def user(
        self,
        user_id: int,
        first_name: str = "Test",
        *,
        language_code: str | None = "zh-hans",
        chat_type: str = "private",
        chat_id: int | None = None,
        username: str | None = None,
        last_name: str | None = None,
    ) -> FakeUser:
        """A person who has started the bot (so the bot may write to them)."""
        return FakeUser(
            self,
            user_id,
            first_name,
            language_code=language_code,
            chat_type=chat_type,
            chat_id=chat_id,
            username=username,
            last_name=last_name,
        )

    def block(self, chat_id: int, blocked: bool = True) -> None:
        """The user blocks the bot: sending to them answers 403 Forbidden."""
        (self.state.blocked.add if blocked else self.state.blocked.discard)(chat_id)

    def migrate(self, chat_id: int, new_chat_id: int) -> None:
        """The group becomes a supergroup: the old id answers 400 with `migrate_to_chat_id`."""
        old = self.state.chats[chat_id]
        self.state.chats[new_chat_id] = {**old, "id": new_chat_id, "type": "supergroup"}
        self.state.migrated[chat_id] = new_chat_id

    def fail_next(
        self,
        method: str,
        n: int = 1,
        status: int = 429,
        retry_after: float = 1,
        *,
        description: str | None = None,
        after_delivery: bool = False,
    ) -> None:
        """Answer the next ``n`` calls of ``method`` with an error.

        ``retry_after`` is whole seconds on real Telegram; a fraction keeps tests fast (PTB accepts
        it). ``after_delivery=True`` performs the call first and then fails it, as a 5xx after
        Telegram already delivered does, to test that retries do not send twice.
        """
        self.faults.fail_next(method, n, Fault(status, retry_after, description, after_delivery))

    def rate_limit(
        self,
        per_second: int | None = None,
        per_chat_per_second: int | None = None,
        per_group_per_minute: int | None = None,
    ) -> None:
        """Flood control for sending methods: over the limit answers 429 with retry_after.

        ``per_group_per_minute`` (Telegram: 20) counts each group's sends (negative chat ids)
        over any 60 s of the emulator's clock: a test moving its FrozenClock sees it enforced."""
        self.faults.rate_limit(per_second, per_chat_per_second, per_group_per_minute)

    async def queue_update(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Queue an update of type ``kind`` ("message", "callback_query", …) for getUpdates."""
        return await self.queue.put(kind, payload)

    def store_file(
        self,
        content: bytes,
        *,
        file_name: str | None,
        mime_type: str | None,
        folder: str = "documents",
        file_size: int | None = None,
    ) -> StoredFile:
        """Keep a file as Telegram would; ``file_size`` may claim more than ``content`` holds."""
        return self.state.store_file(
            content, file_name=file_name, mime_type=mime_type, folder=folder, file_size=file_size
        )
