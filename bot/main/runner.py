"""`certdesk run` and `certdesk chat`: the real bot, or the same bot in a terminal.

With TELEGRAM_BOT_TOKEN: the Telegram application (long polling, or a webhook when WEBHOOK_URL is
set, checked with WEBHOOK_SECRET), the outbox worker and the scheduler. Without it: the local
mode — the in-project Bot API emulator plays Telegram and this terminal plays the user, on the
embedded SQLite database under DATA_DIR.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import Callable
from datetime import timedelta
from typing import IO
from urllib.parse import urlsplit

from telegram.ext import Application

from bot.clock import Clock
from bot.config import ConfigError, Settings
from bot.desk import Desk
from bot.main.desk import open_desk
from bot.outbox.worker import Outbox
from messages.render import t

LOCAL_TOKEN = "100:LOCAL"


def local_mode_line() -> str:
    return f"{t('menu.local_mode', 'zh_CN')} / {t('menu.local_mode', 'en')}"


def _senders(desk: Desk, telegram_sender: object) -> dict[str, object]:
    from bot.delivery.smtp import SmtpSender
    from bot.outbox.robots import robots_from_settings

    senders: dict[str, object] = {"telegram": telegram_sender}
    smtp = SmtpSender.from_settings(desk.settings, desk.clock)
    if smtp is not None:
        senders["email"] = smtp
    # Staff alerts to WeCom / DingTalk / Feishu; signed with the desk's clock. Closed in `stop`.
    senders.update(robots_from_settings(desk.settings, lambda: desk.clock.now().timestamp()))
    return senders


def services(desk: Desk, outbox: Outbox, bot: object) -> tuple[list[Callable], list[Callable]]:
    """post_init / post_shutdown hooks: the outbox sender's own Bot, the scheduler (which drains
    the outbox and runs the deadline and reminder scans) and, with IMAP_HOST, the e-mail intake."""
    from bot.scheduler.jobs import shutdown, start_scheduler

    intake_stop = asyncio.Event()

    async def start(app: Application) -> None:
        await bot.initialize()  # type: ignore[attr-defined]
        app.bot_data["scheduler"] = start_scheduler(desk, outbox)
        if desk.settings.imap_host:
            from handlers.email.intake import run as run_intake

            app.bot_data["intake"] = asyncio.create_task(
                run_intake(desk, intake_stop), name="imap-intake"
            )

    async def stop(app: Application) -> None:
        if "intake" in app.bot_data:
            intake_stop.set()
            await app.bot_data.pop("intake")
        if "scheduler" in app.bot_data:
            await shutdown(app.bot_data.pop("scheduler"))
        for sender in outbox.senders.values():
            close = getattr(sender, "close", None)
            if close is not None:
                await close()
        await bot.shutdown()  # type: ignore[attr-defined]

    return [start], [stop]


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def start_updates(app: Application, settings: Settings) -> None:
    """Long polling, or the webhook when WEBHOOK_URL is set: Telegram then sends
    X-Telegram-Bot-Api-Secret-Token, and a request without the right one is refused (403)."""
    assert app.updater is not None
    if not settings.webhook_url:
        await app.updater.start_polling()
        return
    if settings.webhook_secret is None:
        raise ConfigError("configuration error: WEBHOOK_SECRET: set it whenever WEBHOOK_URL is set")
    await app.updater.start_webhook(
        listen=settings.webhook_listen,
        port=settings.webhook_port,
        url_path=urlsplit(settings.webhook_url).path.lstrip("/"),
        webhook_url=settings.webhook_url,
        secret_token=settings.webhook_secret.get_secret_value(),
    )


async def serve(
    settings: Settings, stop: asyncio.Event | None = None, clock: Clock | None = None
) -> int:
    """The real bot until SIGINT/SIGTERM (or until `stop` is set, for tests); every timed path
    asks `clock` (the real one by default)."""
    from bot.delivery.telegram import telegram_sender
    from bot.main.app import build_application

    assert settings.telegram_bot_token is not None
    if settings.webhook_url and settings.webhook_secret is None:
        raise ConfigError("configuration error: WEBHOOK_SECRET: set it whenever WEBHOOK_URL is set")
    if settings.webhook_url:
        try:
            import tornado  # noqa: F401  (PTB's webhook server)
        except ImportError:
            raise ConfigError(
                "configuration error: WEBHOOK_URL: webhooks need python-telegram-bot[webhooks]"
            ) from None
    desk = await open_desk(settings, clock)
    sender = telegram_sender(
        settings.telegram_bot_token.get_secret_value(),
        base_url=settings.telegram_api_base_url,
        base_file_url=settings.telegram_file_base_url,
        per_second=settings.telegram_rate_per_second,
        connections=max(8, settings.outbox_lanes),
    )
    outbox = Outbox(
        desk.sessions,
        _senders(desk, sender),  # type: ignore[arg-type]
        desk.clock,
        worker_id=f"{socket.gethostname()}-{os.getpid()}",
        settings=settings,  # failures are reported on every staff channel
        concurrency=settings.outbox_lanes,
        lease=timedelta(seconds=settings.outbox_lease_seconds),
    )
    on_start, on_stop = services(desk, outbox, sender.bot)
    app = build_application(desk, on_start=on_start, on_stop=on_stop, limiter=sender.limiter)
    stop = stop or _stop_event()
    try:
        async with app:
            await app.post_init(app)  # type: ignore[misc]
            await app.start()
            await start_updates(app, settings)
            await stop.wait()
            assert app.updater is not None
            await app.updater.stop()
            await app.stop()
    finally:
        if app.post_shutdown is not None:
            await app.post_shutdown(app)
        await desk.close()
    return 0


async def local_chat(
    settings: Settings,
    *,
    stdin: IO[str] | None = None,
    stdout: IO[str] | None = None,
    language_code: str | None = None,
    user_id: int = 1,
) -> int:
    """The full bot in this terminal through the emulator, on SQLite under DATA_DIR."""
    from bot.delivery.telegram import telegram_sender
    from bot.emulator import Emulator, bot_builder
    from bot.emulator.terminal import chat
    from bot.main.app import build_application
    from storage.db import upgrade_async

    # Local mode is the embedded database and no staff chat (nobody would read it).
    settings = settings.model_copy(update={"database_url": "", "staff_chat_id": None})
    await upgrade_async(settings.effective_database_url)
    desk = await open_desk(settings)
    try:
        from storage.persistence import forget_updates

        async with desk.sessions() as session, session.begin():
            await forget_updates(session)
        async with Emulator() as emulator:
            sender = telegram_sender(
                LOCAL_TOKEN, base_url=emulator.base_url, base_file_url=emulator.base_file_url
            )
            outbox = Outbox(desk.sessions, {"telegram": sender}, desk.clock)  # type: ignore[dict-item]
            on_start, on_stop = services(desk, outbox, sender.bot)
            app = build_application(
                desk, bot_builder(emulator, LOCAL_TOKEN), limiter=sender.limiter
            )
            lang = language_code or ("zh-hans" if settings.default_locale == "zh_CN" else "en")
            for hook in on_start:
                await hook(app)
            try:
                await chat(
                    app,
                    emulator,
                    user_id=user_id,
                    language_code=lang,
                    stdin=stdin,
                    stdout=stdout,
                )
            finally:
                for hook in on_stop:
                    await hook(app)
    finally:
        await desk.close()
    return 0


def run(settings: Settings) -> int:
    """`certdesk run`: Telegram with a token, else the local mode (and says so)."""
    from storage.db import NotMigrated

    if settings.telegram_bot_token is None:
        print(local_mode_line(), file=sys.stderr)
        return asyncio.run(local_chat(settings))
    try:
        return asyncio.run(serve(settings))
    except NotMigrated as exc:  # one line, as every start-up refusal
        raise ConfigError(str(exc)) from None


__all__ = ["local_chat", "local_mode_line", "run", "serve", "services", "start_updates"]
