"""The HTTP side: an aiohttp server on 127.0.0.1 that parses Bot API requests the way Telegram
does, applies the test's faults and flood control, dispatches to the methods and records each
call; plus the file download route."""

from __future__ import annotations

import inspect
import json
import time
from typing import Any

from aiohttp import web

from bot.emulator.faults import ApiError, Faults
from bot.emulator.methods import Method, Params, Uploads
from bot.emulator.state import Call, State

MAX_UPLOAD = 50 * 1024 * 1024
# Parameters that are strings by definition: never JSON-decode them ("123" stays text).
_STRINGS = frozenset(
    [
        "text",
        "caption",
        "parse_mode",
        "callback_query_id",
        "file_id",
        "document",
        "photo",
        "url",
        "action",
        "secret_token",
        "language_code",
        "inline_message_id",
        "ip_address",
    ]
)


class ApiServer:
    """``/bot<token>/<method>`` and ``/file/bot<token>/<path>`` on an ephemeral port."""

    def __init__(
        self, state: State, faults: Faults, methods: dict[str, Method], token: str | None
    ) -> None:
        self.state = state
        self.faults = faults
        self.methods = methods
        self.token = token  # None accepts any token
        self.sent: list[Call] = []
        self.unknown: list[str] = []  # unknown methods the bot called
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application(client_max_size=MAX_UPLOAD + 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        # handler_cancellation: a long poll whose client went away (PTB stopping) ends at once.
        self._runner = web.AppRunner(
            app, handler_cancellation=True, shutdown_timeout=0.25, access_log=None
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params, files = await _read_params(request)
        try:
            if self.token is not None and request.match_info["token"] != self.token:
                raise ApiError(401, "Unauthorized")
            result = await self._dispatch(method, params, files)
            status, body = 200, {"ok": True, "result": result}
        except ApiError as err:
            status, body = err.status, err.body()
        async with self.state.changed:
            # Recorded and announced together, so a waiter that sees a reply also sees the call.
            stamp = self.state.clock.now().timestamp()
            self.sent.append(Call(method, params, status, body, time.perf_counter(), stamp))
            self.state.changed.notify_all()
        return web.json_response(body, status=status)

    async def _handle_file(self, request: web.Request) -> web.Response:
        stored = self.state.paths.get(request.match_info["path"])
        if stored is None:
            raise web.HTTPNotFound()
        return web.Response(body=stored.content, content_type="application/octet-stream")

    async def _dispatch(self, method: str, params: Params, files: Uploads) -> Any:
        key = method.lower()
        handler = self.methods.get(key)
        if handler is None:
            self.unknown.append(method)
            raise ApiError(404, "Not Found: method not found")
        fault = self.faults.take(key)
        if fault and not fault.after_delivery:
            raise fault.error()
        self.faults.check_rate(key, params)
        result = handler(params, files)
        if inspect.isawaitable(result):
            result = await result
        if fault:
            raise fault.error()
        return result


def _decode(key: str, value: str) -> Any:
    """Bot API form values: non-strings arrive JSON-encoded."""
    if key in _STRINGS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


async def _read_params(request: web.Request) -> tuple[Params, Uploads]:
    """Query string, then a form (urlencoded or multipart) or a JSON body."""
    params: Params = {k: _decode(k, v) for k, v in request.query.items()}
    files: Uploads = {}
    if request.content_type == "application/json":
        body = await request.json() if request.can_read_body else {}
        params.update(body or {})
    elif request.can_read_body:
        for key, value in (await request.post()).items():
            if isinstance(value, web.FileField):
                files[key] = (value.filename, value.file.read(), value.content_type)
            else:
                params[key] = _decode(key, str(value))
    return params, files
