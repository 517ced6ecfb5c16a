"""Staff alerts to WeCom (企业微信), DingTalk (钉钉) and Feishu (飞书) group robots: Telegram is
blocked in mainland China. A `RobotAlert`: title, text (plain, untrusted), link, act_hint.

Relied on (limits, signatures, codes as noted at each constant and sender): WeCom 群机器人配置说明
developer.work.weixin.qq.com/document/path/91770; DingTalk 自定义机器人接入
open.dingtalk.com/document/robots/custom-robot-access; Feishu 自定义机器人使用指南
open.feishu.cn/document/client-docs/bot-v3/add-custom-bot. Feishu gets `msg_type: "post"`: its
`text` elements are plain text (no markup, entities kept), the link a real `a` element.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import hashlib
import hmac
import json
import re
import time
import urllib.parse
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import aiohttp
from yarl import URL

from bot.delivery import PermanentFailure, TransientFailure
from bot.delivery.messages import Outbound, RobotAlert, encode

WECOM_MAX_BYTES = 4096  # markdown.content, UTF-8 (else errcode 40058)
DINGTALK_MAX_BYTES = 15_000  # none published: the documented msgParam limit of its app robots
FEISHU_MAX_BODY_BYTES = 20_000  # the whole request body: "20 KB", whichever KB is meant
_SIGN_RESERVE = 128  # room kept in Feishu's body for "timestamp" and "sign"
CUT_MARK = "…（已截断 / truncated）"
LINK_LABEL = "打开链接 / Open"
TITLE_MAX_CHARS = 200

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# Markdown / HTML / mention syntax → full-width look-alikes (no backslash escape is documented):
# read the same, never form a link, <font>, **bold**, `<@userid>` (WeCom) or @mobile (DingTalk).
_LOOKALIKES = str.maketrans({c: chr(ord(c) + 0xFEE0) for c in "[]*_`<>~|#&@\\"})


def _plain(text: str) -> str:
    """\\n line ends, no control/bidi characters, URLs defanged: no clickable user links."""
    text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " "))
    return re.sub(r"(?i)\bwww\.", "www．", text.replace("://", "：//"))


def escape_markdown(text: str) -> str:
    """Untrusted text for WeCom or DingTalk markdown: shows as typed, formats nothing."""
    text = re.sub(r"(?m)^ +", "", _plain(text).translate(_LOOKALIKES))  # no code blocks
    text = re.sub(r"(?m)^([-+=])", lambda m: chr(ord(m[1]) + 0xFEE0), text)  # lists, headings
    return re.sub(r"(?m)^(\d+)\.", "\\1．", text)  # ordered lists


@dataclass(frozen=True)
class Alert:
    title: str  # one line, capped
    text: str
    link: str | None
    act_hint: str | None

    @classmethod
    def of(cls, payload: Mapping[str, Any]) -> Alert:
        title, text = payload.get("title"), payload.get("text")
        link, hint = payload.get("link") or None, payload.get("act_hint") or None
        if not isinstance(title, str) or not isinstance(text, str) or not title.strip():
            raise ValueError("needs a non-empty str 'title' and a str 'text'")
        if not isinstance(link or "", str) or not isinstance(hint or "", str):
            raise ValueError("'link' and 'act_hint' are str or null")
        if link and urllib.parse.urlsplit(link).scheme.lower() not in ("http", "https"):
            raise ValueError("'link' must be an http(s) URL")
        if link:  # percent-encoded: ( ) < > [ ] " and spaces cannot close a markdown target
            link = urllib.parse.quote(link, safe=":/?#@!$&'*+,;=%-._~")
        title = " ".join(title.split())
        title = title if len(title) <= TITLE_MAX_CHARS else title[: TITLE_MAX_CHARS - 1] + "…"
        return cls(title, text, link, hint)


def _fit(text: str, budget: int) -> str:
    """`text`, or its longest prefix (whole characters) + CUT_MARK within `budget` bytes."""
    if len(text.encode()) <= budget:
        return text
    room = budget - len(CUT_MARK.encode())
    if room < 0:
        raise ValueError("title and link alone exceed the message size limit")
    return text.encode()[:room].decode("utf-8", "ignore").rstrip() + CUT_MARK


def _markdown(alert: Alert, head: str, br: str, newline: str, limit: int) -> str:
    """`head`, the escaped text cut to fit `limit` bytes, then the link (labelled by act_hint)."""
    label = escape_markdown(alert.act_hint) if alert.act_hint else LINK_LABEL
    foot = f"{br}[{label}]({alert.link})" if alert.link else f"{br}{label}" * bool(alert.act_hint)
    body = escape_markdown(alert.text).replace("\n", newline)
    return head + _fit(body, limit - len((head + foot).encode())) + foot


def render_wecom(payload: Mapping[str, Any]) -> dict[str, Any]:
    alert = Alert.of(payload)
    content = _markdown(alert, f"**{escape_markdown(alert.title)}**\n", "\n", "\n", WECOM_MAX_BYTES)
    return {"msgtype": "markdown", "markdown": {"content": content}}


def render_dingtalk(payload: Mapping[str, Any]) -> dict[str, Any]:
    alert = Alert.of(payload)
    head = f"#### {escape_markdown(alert.title)}\n\n"
    # DingTalk markdown joins single newlines: a hard break is two spaces before one.
    text = _markdown(alert, head, "\n\n", "  \n", DINGTALK_MAX_BYTES)
    return {
        "msgtype": "markdown",
        # The title shows, unrendered, in the chat list and notifications only.
        "markdown": {"title": _plain(alert.title), "text": text},
        "at": {"atMobiles": [], "atUserIds": [], "isAtAll": False},  # never mentions anyone
    }


def _dumps(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def render_feishu(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A `post` (rich text) message, without the signature fields (`FeishuSender` adds them)."""
    alert = Alert.of(payload)
    hint = {"tag": "text", "text": _plain(alert.act_hint or LINK_LABEL)}
    foot = [[{**hint, "tag": "a", "href": alert.link} if alert.link else hint]]
    foot = foot if alert.link or alert.act_hint else []
    # `<at user_id=…>` is the one markup Feishu parses in plain text (text messages): broken up.
    text = re.sub(r"(?i)<(/?at\b)", "＜\\1", _plain(alert.text))

    def build(body: str) -> dict[str, Any]:
        rows = [[{"tag": "text", "text": line}] for line in body.split("\n")]
        post = {"zh_cn": {"title": _plain(alert.title), "content": rows + foot}}
        return {"msg_type": "post", "content": {"post": post}}

    def fits(body: dict[str, Any]) -> bool:
        return len(_dumps(body)) + _SIGN_RESERVE <= FEISHU_MAX_BODY_BYTES

    if fits(whole := build(text)):
        return whole
    # JSON escapes make bytes per character vary: search the longest prefix that fits.
    cut_at = bisect.bisect(
        range(len(text)), False, key=lambda n: not fits(build(text[:n] + CUT_MARK))
    )
    if not fits(cut := build(text[: max(cut_at - 1, 0)].rstrip() + CUT_MARK)):
        raise ValueError("title and link alone exceed the message size limit")
    return cut


def _hmac64(key: str, msg: str) -> str:
    return base64.b64encode(hmac.new(key.encode(), msg.encode(), hashlib.sha256).digest()).decode()


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """base64(HmacSHA256(key=secret, msg=f"{timestamp}\\n{secret}")); ms, within 1 h."""
    return _hmac64(secret, f"{timestamp_ms}\n{secret}")


def feishu_sign(secret: str, timestamp_s: int) -> str:
    """base64(HmacSHA256(key=f"{timestamp}\\n{secret}", msg="")); seconds, within 1 h."""
    return _hmac64(f"{timestamp_s}\n{secret}", "")


class Pacer:
    """At most `limit` sends in any `window` seconds per rule (monotonic), one at a time, callers
    in order (asyncio.Lock is FIFO). Stamped when the answer came back: arrivals lie between
    leaving and answering, so any window of arrivals stays under the limit whatever the latency."""

    def __init__(self, rules: Sequence[tuple[int, float]]) -> None:
        if not rules or any(limit < 1 or window <= 0 for limit, window in rules):
            raise ValueError("pacing rules are (limit ≥ 1, window > 0)")
        self.rules, self._clock = list(rules), time.monotonic
        self._stamps: deque[float] = deque(maxlen=max(limit for limit, _ in rules))
        self._lock = asyncio.Lock()
        self._held_until = float("-inf")

    def hold(self, seconds: float) -> None:  # the service said to slow down
        self._held_until = max(self._held_until, self._clock() + seconds)

    def held_for(self) -> float:
        return max(0.0, self._held_until - self._clock())

    @asynccontextmanager
    async def slot(self, channel: str) -> AsyncIterator[None]:
        async with self._lock:
            while (wait := self._wait()) > 0:
                await asyncio.sleep(wait)
            # Checked in turn, so callers queued before the service said "slow down" fail too;
            # failing fast, no outbox lane sleeps through the pause.
            if (held := self.held_for()) > 0:
                raise TransientFailure(f"{channel}: rate limited, paused {held:.0f} s more", held)
            try:
                yield
            finally:
                self._stamps.append(self._clock())

    def _wait(self) -> float:
        # A window frees up when the limit-th latest send leaves it.
        now, stamps = self._clock(), self._stamps
        waits = [stamps[-n] + window - now for n, window in self.rules if len(stamps) >= n]
        return max(waits, default=0.0)


class RobotHttp:
    """One aiohttp session for the robot senders, opened on first use (inside the loop)."""

    def __init__(self, timeout: float = 10.0) -> None:
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()


class RobotSender:
    """Base of the three senders: render, pace, sign, post, judge the JSON answer."""

    channel: str  # an instance attribute to `Sender`; each subclass sets it
    rate_codes: ClassVar[Mapping[int, float]]  # code → retry_after; also pauses this robot
    busy_codes: ClassVar[frozenset[int]] = frozenset({-1})  # "system busy": retry
    signed: ClassVar[bool] = True  # takes a signing secret
    per_second: ClassVar[int | None] = None  # a second pacing rule, where documented
    render: ClassVar[staticmethod[[Mapping[str, Any]], dict[str, Any]]]  # payload → JSON body

    def __init__(
        self,
        webhook_url: str,
        secret: str | None = None,
        now: Callable[[], float] = time.time,
        per_minute: int = 20,
        *,
        window_seconds: float = 60.0,
        http: RobotHttp | None = None,
    ) -> None:
        if secret is not None and not self.signed:
            raise ValueError(f"{self.channel} robots have no signing secret: the key is the URL")
        self._url, self._secret = webhook_url, secret
        self._now = now  # wall clock (epoch seconds) for the signatures' timestamps
        rules = [(per_minute, window_seconds)]
        self.pacer = Pacer(rules + ([(self.per_second, 1.0)] if self.per_second else []))
        self.http = http or RobotHttp()
        # Credentials never to show in an exception or a log line: the secret, query values
        # (key=, access_token=) and a long last path segment (Feishu's hook id).
        parts = urllib.parse.urlsplit(webhook_url)
        query = [v for _, v in urllib.parse.parse_qsl(parts.query)]
        found = [parts.path.rsplit("/", 1)[-1], *query]
        secrets = {s for s in found if len(s) >= 16} | ({secret} if secret else set())
        self._secrets = sorted(secrets, key=len, reverse=True)
        self.redacted_url = self._redact(webhook_url)

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            for form in {secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote(secret)}:
                text = text.replace(form, "***")
        return text

    async def close(self) -> None:
        await self.http.close()

    def _signed(self, body: dict[str, Any], secret: str) -> tuple[URL, dict[str, Any]]:
        raise NotImplementedError  # only robots with a signing secret

    async def send(self, message: Outbound) -> str | None:
        try:
            if not isinstance(message, RobotAlert):
                raise ValueError(f"a {type(message).__name__} is no robot alert")
            body = self.render(encode(message)[2])
        except ValueError as exc:
            raise PermanentFailure(f"{self.channel}: bad alert payload: {exc}") from None
        async with self.pacer.slot(self.channel):
            # Signed in turn, so the timestamp is fresh.
            url, body = self._signed(body, self._secret) if self._secret else (URL(self._url), body)
            await self._post(url, body)
        return None  # the robots answer no message id

    async def _post(self, url: URL, body: dict[str, Any]) -> None:
        try:
            async with self.http.session().post(
                url,
                data=_dumps(body),
                headers={"Content-Type": "application/json; charset=utf-8"},
                allow_redirects=False,  # never hand the signed URL to another host
            ) as res:
                return self._judge(res.status, res.headers, await res.text(errors="replace"))
        except TimeoutError:
            reason = f"{self.channel}: timed out"
        except aiohttp.ClientError as exc:
            reason = self._redact(f"{self.channel}: {type(exc).__name__}: {exc}")
        # Raised outside the except block: no chained exception carries the URL along.
        raise TransientFailure(reason)

    def _judge(self, status: int, headers: Mapping[str, str], text: str) -> None:
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        data = data if isinstance(data, dict) else {}
        # WeCom and DingTalk: errcode/errmsg; Feishu: code/msg (StatusCode/…Message: legacy).
        code = next((data[k] for k in ("errcode", "code", "StatusCode") if k in data), None)
        code = code if isinstance(code, int) else None
        msg = next((str(data[k]) for k in ("errmsg", "msg", "StatusMessage") if data.get(k)), "")
        said = f", code {code}: {msg[:300]}" if code is not None else ""
        what = self._redact(f"{self.channel}: HTTP {status}{said}")
        if status == 200 and code == 0:
            return
        if status == 429 or (code is not None and self._is_rate_limit(code, msg)):
            hint = headers.get("Retry-After") or headers.get("x-ogw-ratelimit-reset") or ""
            retry = self.rate_codes.get(code or 0) or (float(hint) if hint.isdigit() else 60.0)
            self.pacer.hold(retry)
            raise TransientFailure(what, retry_after=retry)
        if status >= 500 or status == 408 or code in self.busy_codes:
            raise TransientFailure(what)
        if code or status != 200:
            raise PermanentFailure(what)  # bad key, signature, keyword, IP whitelist, body
        raise TransientFailure(f"{self.channel}: HTTP 200 without a JSON verdict")

    def _is_rate_limit(self, code: int, msg: str) -> bool:
        return code in self.rate_codes


class WeComSender(RobotSender):
    """企业微信 group robot: markdown; the key is in the URL, no signature."""

    channel = "wecom"
    rate_codes: ClassVar[Mapping[int, float]] = {45009: 60.0}  # 20 messages a minute
    signed = False
    render = staticmethod(render_wecom)
    # Refused for good, the service's errmsg in the reason: 93000 invalid webhook URL, 40058
    # content too long, 40008 bad msgtype, … (any other non-zero errcode but -1 "system busy").


class DingTalkSender(RobotSender):
    """钉钉 custom robot: markdown; 加签 (timestamp + sign query params) when a secret is set."""

    channel = "dingtalk"
    # 20 a minute; 130101 comes with 10 minutes of throttling: retrying sooner fails again. 90030
    # "webhook over limit": the organisation's call quota is spent; a later attempt may pass.
    rate_codes: ClassVar[Mapping[int, float]] = {130101: 600.0, 90030: 3600.0}
    render = staticmethod(render_dingtalk)
    # Refused for good: 310000 keywords / sign / timestamp / IP whitelist, 300001 unknown token.

    def _signed(self, body: dict[str, Any], secret: str) -> tuple[URL, dict[str, Any]]:
        timestamp = int(self._now() * 1000)
        sign = urllib.parse.quote_plus(dingtalk_sign(secret, timestamp))
        query = f"{'&' if '?' in self._url else '?'}timestamp={timestamp}&sign={sign}"
        return URL(self._url + query, encoded=True), body  # encoded: "+" must stay %2B


class FeishuSender(RobotSender):
    """飞书 custom robot: `post` rich text; timestamp + sign in the body when a secret is set."""

    channel = "feishu"
    rate_codes: ClassVar[Mapping[int, float]] = {11232: 60.0, 99991400: 60.0, 9499: 60.0}
    per_second = 5  # besides 100 a minute
    render = staticmethod(render_feishu)
    # 11232 throttled (99991400 at the gateway); refused for good: 19021 sign / timestamp, 19022
    # IP whitelist, 19024 keyword, 19001 bad hook, 9499 "Bad Request" unless about frequency.

    def _signed(self, body: dict[str, Any], secret: str) -> tuple[URL, dict[str, Any]]:
        timestamp = int(self._now())
        sign = feishu_sign(secret, timestamp)
        return URL(self._url), {"timestamp": str(timestamp), "sign": sign, **body}

    def _is_rate_limit(self, code: int, msg: str) -> bool:
        if code == 9499:  # documented as "Bad Request"; only a throttling message is retried
            return re.search(r"(?i)too many|frequen|rate.?limit", msg) is not None
        return code in self.rate_codes


def robot_senders(
    wecom_url: str | None = None,
    dingtalk_url: str | None = None,
    dingtalk_secret: str | None = None,
    feishu_url: str | None = None,
    feishu_secret: str | None = None,
    *,
    now: Callable[[], float] = time.time,
    per_minute: int = 20,
) -> dict[str, RobotSender]:
    """The configured robots by channel ("wecom", "dingtalk", "feishu"), for `Outbox(senders=…)`;
    they share one session: closing one closes it (it reopens on the next send)."""
    http, senders = RobotHttp(), dict[str, RobotSender]()
    for channel, cls, url, secret in (
        ("wecom", WeComSender, wecom_url, None),
        ("dingtalk", DingTalkSender, dingtalk_url, dingtalk_secret),
        ("feishu", FeishuSender, feishu_url, feishu_secret),
    ):
        if url:
            senders[channel] = cls(url, secret or None, now, per_minute, http=http)
    return senders
