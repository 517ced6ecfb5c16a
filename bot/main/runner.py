"""`certdesk run`, `certdesk serve` and `certdesk chat`: the service, or the bot in a terminal.

The service is the outbox worker (e-mail, staff robots, staff e-mail), the scheduler and, with
IMAP_HOST, the e-mail intake; with TELEGRAM_BOT_TOKEN also the Telegram application (long polling,
or a webhook when WEBHOOK_URL is set, checked with WEBHOOK_SECRET). Without a token it runs
headless — where Telegram is blocked, staff work in WeCom, DingTalk or Feishu. The local mode
(`certdesk chat`, or `certdesk run` with nothing configured) is the in-project Bot API emulator
playing Telegram and this terminal the user, on its own SQLite database under DATA_DIR/local.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from datetime import timedelta
from typing import IO, Any
from urllib.parse import urlsplit

from telegram.ext import Application

from bot.clock import Clock
from bot.config import ConfigError, Settings
from bot.desk import Desk
from bot.main.desk import open_desk, ready_for_work, work_done
from bot.outbox.worker import Outbox
from messages.render import t
from storage import history_key

log = logging.getLogger(__name__)

LOCAL_TOKEN = "100:LOCAL"


def local_mode_line() -> str:
    return f"{t('menu.local_mode', 'zh_CN')} / {t('menu.local_mode', 'en')}"


def _senders(desk: Desk, telegram_sender: object | None) -> dict[str, object]:
    """Every channel the settings configure; Telegram only with a sender (a token)."""
    from bot.delivery.smtp import SmtpSender
    from bot.outbox.robots import robots_from_settings

    senders: dict[str, object] = {}
    if telegram_sender is not None:
        senders["telegram"] = telegram_sender
    smtp = SmtpSender.from_settings(desk.settings, desk.clock)
    if smtp is not None:
        senders["email"] = smtp
    # Staff alerts to WeCom / DingTalk / Feishu; signed with the desk's clock. Closed in `stop`.
    senders.update(robots_from_settings(desk.settings, lambda: desk.clock.now().timestamp()))
    return senders


def services(
    desk: Desk, outbox: Outbox, bot: object | None
) -> tuple[list[Callable], list[Callable]]:
    """post_init / post_shutdown hooks: the outbox sender's own Bot (when there is Telegram), the
    scheduler (which drains the outbox and runs the deadline and reminder scans) and, with
    IMAP_HOST, the e-mail intake; with CONSOLE_PORT, the staff console. The hooks take the
    application, or None when headless."""
    from bot.scheduler.jobs import shutdown, start_scheduler

    intake_stop = asyncio.Event()
    running: dict[str, Any] = {}

    async def start(app: Application | None) -> None:
        from bot.main.console_cmd import start_console

        # First: a console that cannot start (no key, port taken) stops start-up with one line.
        console = start_console(desk)
        if console is not None:
            running["console"] = console
        if bot is not None:
            await bot.initialize()  # type: ignore[attr-defined]
        running["scheduler"] = start_scheduler(desk, outbox)
        if desk.settings.imap_host:
            from handlers.email.intake import run as run_intake

            running["intake"] = asyncio.create_task(
                run_intake(desk, intake_stop), name="imap-intake"
            )
        if app is not None:
            app.bot_data.update(running)

    async def stop(app: Application | None) -> None:
        if "console" in running:
            console = running.pop("console")
            console.cancel()
            await asyncio.gather(console, return_exceptions=True)
        if "intake" in running:
            intake_stop.set()
            await running.pop("intake")
        if "scheduler" in running:
            await shutdown(running.pop("scheduler"))
        if app is not None:
            for key in ("intake", "scheduler"):
                app.bot_data.pop(key, None)
        await outbox.close()  # another instance takes over sending to Telegram at once
        for sender in outbox.senders.values():
            close = getattr(sender, "close", None)
            if close is not None:
                await close()
        if bot is not None:
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


def service_channels(settings: Settings) -> list[str]:
    """What a service without Telegram would run for: the inbox, and the ways out (e-mail, the
    staff robots, staff e-mail). Empty: nothing for a headless service to do."""
    found = []
    if settings.imap_host:
        found.append("IMAP intake")
    if settings.smtp_host:
        found.append("SMTP")
    for name, url in (
        ("WeCom", settings.wecom_webhook_url),
        ("DingTalk", settings.dingtalk_webhook_url),
        ("Feishu", settings.feishu_webhook_url),
    ):
        if url is not None:
            found.append(name)
    if settings.staff_alert_emails:
        found.append("STAFF_ALERT_EMAILS")
    if settings.console_port is not None:
        found.append("the staff console")
    return found


def run_mode(settings: Settings) -> str:
    """`certdesk run`: "telegram" with a token; "headless" without one when the inbox, SMTP or a
    staff robot is configured (a deployment where Telegram is blocked, e.g. mainland China);
    else "local", the terminal chat for trying the bot out."""
    if settings.telegram_bot_token is not None:
        return "telegram"
    return "headless" if service_channels(settings) else "local"


async def serve(
    settings: Settings, stop: asyncio.Event | None = None, clock: Clock | None = None
) -> int:
    """The service until SIGINT/SIGTERM (or until `stop` is set, for tests): the Telegram bot when
    TELEGRAM_BOT_TOKEN is set, and always the outbox worker (e-mail, staff robots, staff e-mail),
    the scheduler and, with IMAP_HOST, the e-mail intake. Every timed path asks `clock`."""
    token = settings.telegram_bot_token
    if token is None and not service_channels(settings):
        raise ConfigError(
            "configuration error: nothing to serve: set TELEGRAM_BOT_TOKEN, or IMAP_HOST / "
            "SMTP_HOST / a staff robot (see README, Running it for real)"
        )
    if token is not None:
        _check_webhook(settings)
    desk = await open_desk(settings, clock)
    history_key.warn_if_unset(settings)
    try:
        await ready_for_work(desk)
        if token is None:
            return await _serve_headless(desk, stop)
        return await _serve_telegram(desk, token.get_secret_value(), stop)
    finally:
        await desk.close()
        work_done()


def _check_webhook(settings: Settings) -> None:
    if settings.webhook_url and settings.webhook_secret is None:
        raise ConfigError("configuration error: WEBHOOK_SECRET: set it whenever WEBHOOK_URL is set")
    if settings.webhook_url:
        try:
            import tornado  # noqa: F401  (PTB's webhook server)
        except ImportError:
            raise ConfigError(
                "configuration error: WEBHOOK_URL: webhooks need python-telegram-bot[webhooks]"
            ) from None


def _outbox(desk: Desk, telegram: object | None) -> Outbox:
    settings = desk.settings
    return Outbox(
        desk.sessions,
        _senders(desk, telegram),  # type: ignore[arg-type]
        desk.clock,
        worker_id=f"{socket.gethostname()}-{os.getpid()}",
        settings=settings,  # failures are reported on every staff channel
        concurrency=settings.outbox_lanes,
        lease=timedelta(seconds=settings.outbox_lease_seconds),
    )


async def _serve_headless(desk: Desk, stop: asyncio.Event | None) -> int:
    """No Telegram: the intake, the outbox worker and the scheduler on their own."""
    settings = desk.settings
    log.info("serving without Telegram: %s", ", ".join(service_channels(settings)))
    if settings.staff_chat_id is not None:
        log.warning(
            "STAFF_CHAT_ID is set but TELEGRAM_BOT_TOKEN is not: "
            "staff messages for Telegram wait in the outbox"
        )
    outbox = _outbox(desk, None)
    on_start, on_stop = services(desk, outbox, None)
    stop = stop or _stop_event()
    try:
        for hook in on_start:
            await hook(None)
        await stop.wait()
    finally:
        for hook in reversed(on_stop):
            await hook(None)
    return 0


async def _serve_telegram(desk: Desk, token: str, stop: asyncio.Event | None) -> int:
    from telegram.error import InvalidToken, NetworkError

    from bot.delivery.telegram import telegram_sender
    from bot.delivery.telegram_pace import budget_scope
    from bot.main.app import build_application
    from storage.repo.send_budget import send_budget

    settings = desk.settings
    sender = telegram_sender(
        token,
        base_url=settings.telegram_api_base_url,
        base_file_url=settings.telegram_file_base_url,
        per_second=settings.telegram_rate_per_second,
        connections=max(8, settings.outbox_lanes),
        # PostgreSQL: the 30 a second shared with the other instances (replies and outbox).
        shared=send_budget(desk.engine, budget_scope(token)),
    )
    outbox = _outbox(desk, sender)
    on_start, on_stop = services(desk, outbox, sender.bot)
    app = build_application(desk, on_start=on_start, on_stop=on_stop, limiter=sender.limiter)
    stop = stop or _stop_event()
    try:
        try:
            await app.initialize()  # getMe: the token and the Bot API are checked here
        except InvalidToken:
            raise ConfigError(
                "configuration error: TELEGRAM_BOT_TOKEN: the Bot API refused this token"
            ) from None
        except NetworkError as exc:
            raise ConfigError(
                f"configuration error: TELEGRAM_API_BASE_URL: cannot reach the Telegram Bot API "
                f"at {urlsplit(settings.telegram_api_base_url).netloc} ({exc}): check the network "
                "or the proxy, or run without TELEGRAM_BOT_TOKEN (e-mail and staff robots only)"
            ) from None
        try:
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
    finally:
        await app.shutdown()
    return 0


def local_settings(settings: Settings) -> Settings:
    """The local mode's settings: its own SQLite database and data folder (LOCAL_DATA_DIR, by
    default DATA_DIR/local), and none of the real deployment's ways in or out — no inbox, no
    SMTP, no staff chat, robots or staff e-mail — so the real outbox is never touched."""
    folder = settings.local_data_dir or settings.data_dir / "local"
    if folder.resolve() == settings.data_dir.resolve():
        raise ConfigError(
            "configuration error: LOCAL_DATA_DIR: must not be DATA_DIR "
            "(the local chat would work on the real database and outbox)"
        )
    return settings.model_copy(
        update={
            "data_dir": folder,
            "database_url": "",
            "staff_chat_id": None,
            "imap_host": None,
            "smtp_host": None,
            "wecom_webhook_url": None,
            "dingtalk_webhook_url": None,
            "feishu_webhook_url": None,
            "staff_alert_emails": [],
            "escalation_emails": [],
            "webhook_url": None,
        }
    )


async def local_chat(
    settings: Settings,
    *,
    stdin: IO[str] | None = None,
    stdout: IO[str] | None = None,
    language_code: str | None = None,
    user_id: int = 1,
    announce: str | None = None,
) -> int:
    """The full bot in this terminal through the emulator, on its own SQLite database;
    `announce` is printed on stderr once it has started (a start-up error stays one line)."""
    from bot.delivery.telegram import telegram_sender
    from bot.emulator import Emulator, bot_builder
    from bot.emulator.terminal import chat
    from bot.main.app import build_application
    from storage.db import upgrade_async

    settings = local_settings(settings)
    await upgrade_async(settings.effective_database_url)
    desk = await open_desk(settings)
    if announce:
        print(announce, file=sys.stderr)
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


def run(settings: Settings, mode: str | None = None) -> int:
    """`certdesk run` (mode by `run_mode`) and `certdesk serve` (mode "serve": never the local
    chat). The local mode says so on stderr."""
    mode = mode or run_mode(settings)
    if mode == "local":
        return asyncio.run(local_chat(settings, announce=local_mode_line()))
    return asyncio.run(serve(settings))


__all__ = [
    "local_chat",
    "local_mode_line",
    "local_settings",
    "run",
    "run_mode",
    "serve",
    "service_channels",
    "services",
    "start_updates",
]
