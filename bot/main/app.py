"""The one factory of the Telegram application: wiring in explicit order.

    Defaults (HTML, Asia/Shanghai) → the token's shared rate limiter (which commits the update's
    unit of work before any request leaves, and records a reply into a group for its pacer)
    → database persistence (conversation states)
    → post_init (commands in both languages, services) / post_shutdown → error handler
    → handler modules (HANDLER_MODULES, imported explicitly), each in its named handler groups.

`build_application(desk, builder)` takes a builder so tests and the local mode can point it at
the emulator (bot.emulator.bot_builder); the real bot gets one with the token.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from telegram import Update
from telegram.constants import ParseMode
from telegram.ext import Application, ApplicationBuilder, ContextTypes, Defaults

from bot.clock import SHANGHAI
from bot.delivery.telegram_limits import SharedRateLimiter
from bot.delivery.telegram_pace import RateLimiter
from bot.desk import Desk
from bot.outbox.group_replies import group_reply_recorder
from handlers.telegram import (
    application,
    cases_filing,
    cases_mine,
    certificates,
    changes,
    commands,
    common,
    documents,
    eligibility,
    findings,
    quote,
    staff_cases,
    staff_documents,
    staff_findings,
)
from handlers.telegram.common import commit_before_reply
from messages.render import th
from storage.persistence import DatabasePersistence, engine_of
from storage.unit_of_work import AlreadyHandled, UnitOfWork, bind, current, unbind
from storage.writer import Writer, writer_for

log = logging.getLogger(__name__)


class HandlerModule(Protocol):
    """A handler module: registers its handlers, each in its named group (context.Group)."""

    __name__: str

    def register(self, app: Application, desk: Desk) -> None: ...


# Every handler module, imported above by name (nothing is loaded from a string). Each puts its
# handlers in its own named group, so the order here matters only within a group: common first
# (its guard must exist before anything is handled).
HANDLER_MODULES: tuple[HandlerModule, ...] = (
    common,
    commands,
    staff_documents,
    staff_findings,
    staff_cases,
    eligibility,
    quote,
    documents,
    application,
    certificates,
    cases_filing,
    cases_mine,
    changes,
    findings,
)

Hook = Callable[[Application], Awaitable[None]]


class CertdeskApplication(Application):  # type: ignore[type-arg]
    """One unit of work per update (storage.unit_of_work): handlers' services write through it,
    the update id is recorded in its first commit — made before the first reply goes out
    (handlers.telegram.common.send) — and the conversation states are committed at the end, so a
    redelivered update does nothing twice and a crash never loses where a conversation stood."""

    writer: Writer | None = None  # set by build_application: the updates' one-call commits

    async def process_update(self, update: object) -> None:
        desk: Desk | None = self.bot_data.get("desk")
        if not isinstance(update, Update) or desk is None:
            await super().process_update(update)
            if self.persistence is not None:
                await self.update_persistence()
            return
        uow = UnitOfWork(desk.sessions, self.writer)
        token = bind(uow)
        try:
            await super().process_update(update)
            if self.persistence is not None:
                await self.update_persistence()
            try:
                await uow.commit()
            except AlreadyHandled:
                log.warning("update %s was handled elsewhere: writes dropped", update.update_id)
            except Exception as exc:  # the user hears of it, as of a failing handler
                await self.process_error(update, exc)
        finally:
            unbind(token)
            await uow.close()

    async def update_persistence(self) -> None:
        await super().update_persistence()
        # PTB notes every user and chat an update touched (and every one dropped) for the
        # persistence, but empties those sets only when the persistence stores user or chat
        # data — ours stores neither, so they would grow by every user ever seen.
        store = self.persistence.store_data if self.persistence is not None else None
        if store is None or not store.user_data:
            self._user_ids_to_be_updated_in_persistence.clear()
            self._user_ids_to_be_deleted_in_persistence.clear()
        if store is None or not store.chat_data:
            self._chat_ids_to_be_updated_in_persistence.clear()
            self._chat_ids_to_be_deleted_in_persistence.clear()

    async def process_error(
        self,
        update: object | None,
        error: Exception,
        job: Any = None,
        coroutine: Any = None,
    ) -> bool:
        uow = current()
        if uow is not None and job is None:
            await uow.rollback()  # a failed handler's writes are not committed
            with contextlib.suppress(Exception):
                await uow.commit()  # …but its update id is: it is not handled again
        return await super().process_error(update, error, job, coroutine)


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log the failure (type and update id only: no personal data) and apologise once."""
    update_id = update.update_id if isinstance(update, Update) else None
    log.error(
        "update %s failed: %s", update_id, type(context.error).__name__, exc_info=context.error
    )
    if isinstance(update, Update) and update.effective_chat is not None:
        desk: Desk = context.bot_data["desk"]
        try:
            await context.bot.send_message(
                update.effective_chat.id, th("common.error_generic", desk.settings.default_locale)
            )
        except Exception:
            log.warning("could not tell chat about the failure")


def select_modules(chosen: Sequence[HandlerModule | str]) -> list[HandlerModule]:
    """Some of HANDLER_MODULES (tests, a trimmed deployment), in their order; a module may be
    named by its dotted name, which picks it from HANDLER_MODULES (never imports it). common is
    always included: without its guard nothing is safe to handle."""
    known = {m.__name__: m for m in HANDLER_MODULES}
    wanted = {common.__name__}
    for item in chosen:
        name = item if isinstance(item, str) else item.__name__
        if name not in known:
            raise ValueError(f"{name} is not a handler module (bot.main.app.HANDLER_MODULES)")
        wanted.add(name)
    return [m for m in HANDLER_MODULES if m.__name__ in wanted]


def build_application(
    desk: Desk,
    builder: ApplicationBuilder | None = None,
    *,
    on_start: Sequence[Hook] = (),
    on_stop: Sequence[Hook] = (),
    modules: Sequence[HandlerModule | str] | None = None,
    limiter: RateLimiter | None = None,
) -> Application:
    """The application with every handler; `on_start`/`on_stop` run in post_init/post_shutdown
    (the outbox worker and the scheduler in `certdesk run`); `limiter` is the outbox sender's for
    the same token (a new one when the bot sends nothing else)."""
    settings = desk.settings
    if builder is None:
        if settings.telegram_bot_token is None:
            raise ValueError("TELEGRAM_BOT_TOKEN is not set")
        builder = (
            ApplicationBuilder()
            .token(settings.telegram_bot_token.get_secret_value())
            .base_url(settings.telegram_api_base_url)
            .base_file_url(settings.telegram_file_base_url)
        )
    loaded = HANDLER_MODULES if modules is None else select_modules(modules)
    limiter = limiter or RateLimiter(settings.telegram_rate_per_second)

    async def post_init(app: Application) -> None:
        await commands.set_commands(app, desk)  # the menus, per scope and language
        for hook in on_start:
            await hook(app)

    async def post_shutdown(app: Application) -> None:
        for hook in reversed(on_stop):
            await hook(app)
        if isinstance(app, CertdeskApplication) and app.writer is not None:
            await app.writer.close()
            app.writer = None

    app = (
        builder.application_class(CertdeskApplication)
        .defaults(Defaults(parse_mode=ParseMode.HTML, tzinfo=SHANGHAI))
        .rate_limiter(
            SharedRateLimiter(
                limiter,
                before_send=commit_before_reply,
                # A reply into a group counts in its 20 a minute, as the outbox's sends there.
                on_group=group_reply_recorder(desk.sessions, desk.clock),
            )
        )
        .persistence(DatabasePersistence(desk.sessions))
        .post_init(post_init)
        .post_shutdown(post_shutdown)
        .build()
    )
    if isinstance(app, CertdeskApplication):
        app.writer = writer_for(engine_of(desk.sessions))
    app.bot_data["desk"] = desk
    app.add_error_handler(on_error)
    for module in loaded:
        module.register(app, desk)
    return app


__all__ = ["HANDLER_MODULES", "HandlerModule", "build_application", "select_modules"]
