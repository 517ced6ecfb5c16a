"""Run a real PTB ``Application`` against the emulator: builder and start/stop in one place."""

from __future__ import annotations

import datetime as dtm
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from telegram.ext import Application, ApplicationBuilder, ContextTypes

from bot.emulator.server import Emulator


def bot_builder(emulator: Emulator, token: str = "123:TEST") -> ApplicationBuilder:
    """An ``ApplicationBuilder`` pointed at the emulator; add handlers and build as usual."""
    return (
        ApplicationBuilder()
        .token(token)
        .base_url(emulator.base_url)
        .base_file_url(emulator.base_file_url)
    )


@asynccontextmanager
async def run_app(
    app: Application,
    *,
    poll_timeout: float = 10,
    errors: list[Exception] | None = None,
) -> AsyncIterator[Application]:
    """Initialise, start and poll; on exit stop polling and the app (fast: the emulator ends the
    pending long poll as soon as PTB drops it).

    Handler exceptions are collected: into ``errors`` when given (the test inspects them), else
    raised as an ExceptionGroup on a clean exit, so a failing handler fails the test.
    """
    collected: list[Exception] = [] if errors is None else errors

    async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        if context.error is not None:
            collected.append(context.error)

    if app.updater is None:
        raise ValueError("run_app needs an Application with an Updater (it polls)")
    app.add_error_handler(on_error)
    try:
        async with app:
            await app.start()
            await app.updater.start_polling(
                poll_interval=0, timeout=dtm.timedelta(seconds=poll_timeout)
            )
            try:
                yield app
            finally:
                await app.updater.stop()
                await app.stop()
    finally:
        app.remove_error_handler(on_error)
    if errors is None and collected:
        raise ExceptionGroup("the bot's handlers raised", collected)
