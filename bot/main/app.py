"""The one factory of the Telegram application: wiring in explicit order.

    Defaults (HTML, Asia/Shanghai) → the token's shared rate limiter (which commits the update's
    unit of work before any request leaves) → database persistence (conversation states)
    → post_init (commands in both languages, services) / post_shutdown → error handler
    → handler modules, in HANDLER_MODULES order.

`build_application(desk, builder)` takes a builder so tests and the local mode can point it at
the emulator (bot.emulator.bot_builder); the real bot gets one with the token.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from telegram import BotCommand, Update
from telegram.constants import ParseMode
from telegram.ext import Application, ApplicationBuilder, ContextTypes, Defaults

from bot.clock import SHANGHAI
from bot.delivery.telegram import RateLimiter
from bot.delivery.telegram_limits import SharedRateLimiter
from bot.desk import Desk
from handlers.telegram.common import COMMANDS, commit_before_reply
from messages.render import th
from storage.persistence import DatabasePersistence
from storage.unit_of_work import AlreadyHandled, UnitOfWork, bind, current, unbind

log = logging.getLogger(__name__)

# Each module exposes `register(app, desk)`. Order matters:
# - common first: its guard (group -2) must exist before anything can be handled, and it
#   allocates the conversation groups the flows below take in this order;
# - staff modules before public ones (staff buttons in group 0 stop propagation);
# - a deep-link `/start <payload>` handler must come before common's plain /start, which is
#   in the last group (common.GLOBAL_GROUP), so any module listed here precedes it.
HANDLER_MODULES: list[str] = [
    "handlers.telegram.common",
    "handlers.telegram.staff_documents",
    "handlers.telegram.staff_cases",
    "handlers.telegram.eligibility",
    "handlers.telegram.quote",
    "handlers.telegram.documents",
    "handlers.telegram.application",
    "handlers.telegram.certificates",
    "handlers.telegram.cases_filing",
    "handlers.telegram.cases_mine",
    "handlers.telegram.changes",
]

Hook = Callable[[Application], Awaitable[None]]


class CertdeskApplication(Application):  # type: ignore[type-arg]
    """One unit of work per update (storage.unit_of_work): handlers' services write through it,
    the update id is recorded in its first commit — made before the first reply goes out
    (handlers.telegram.common.send) — and the conversation states are committed at the end, so a
    redelivered update does nothing twice and a crash never loses where a conversation stood."""

    async def process_update(self, update: object) -> None:
        desk: Desk | None = self.bot_data.get("desk")
        if not isinstance(update, Update) or desk is None:
            await super().process_update(update)
            if self.persistence is not None:
                await self.update_persistence()
            return
        uow = UnitOfWork(desk.sessions)
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


async def _set_commands(app: Application) -> None:
    for locale, language_code in (("zh_CN", "zh"), ("en", "en"), ("zh_CN", None)):
        commands = [BotCommand(name, th(key, locale)) for name, key in COMMANDS]
        await app.bot.set_my_commands(commands, language_code=language_code)


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


def load_modules(names: Sequence[str]) -> list[Any]:
    """Import every handler module; a missing one fails loudly, never silently skipped."""
    modules = []
    for name in names:
        module = importlib.import_module(name)
        if not callable(getattr(module, "register", None)):
            raise ImportError(f"{name} has no register(app, desk)")
        modules.append(module)
    return modules


def build_application(
    desk: Desk,
    builder: ApplicationBuilder | None = None,
    *,
    on_start: Sequence[Hook] = (),
    on_stop: Sequence[Hook] = (),
    modules: Sequence[str] | None = None,
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
    loaded = load_modules(HANDLER_MODULES if modules is None else modules)
    limiter = limiter or RateLimiter(settings.telegram_rate_per_second)

    async def post_init(app: Application) -> None:
        await _set_commands(app)
        for hook in on_start:
            await hook(app)

    async def post_shutdown(app: Application) -> None:
        for hook in reversed(on_stop):
            await hook(app)

    app = (
        builder.application_class(CertdeskApplication)
        .defaults(Defaults(parse_mode=ParseMode.HTML, tzinfo=SHANGHAI))
        .rate_limiter(SharedRateLimiter(limiter, before_send=commit_before_reply))
        .persistence(DatabasePersistence(desk.sessions))
        .post_init(post_init)
        .post_shutdown(post_shutdown)
        .build()
    )
    app.bot_data["desk"] = desk
    app.add_error_handler(on_error)
    for module in loaded:
        module.register(app, desk)
    return app


__all__ = ["HANDLER_MODULES", "build_application", "load_modules"]
