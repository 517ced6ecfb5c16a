"""Staff alerts to the WeCom, DingTalk and Feishu group robots, against the local emulator of their
webhooks: rendering and escaping, signatures, size cuts, error codes, faults and pacing."""

from __future__ import annotations

import asyncio
import json
import re
import time
import traceback
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest

from bot.delivery import DeliveryFailure, PermanentFailure, TransientFailure
from bot.delivery.messages import RobotAlert
from bot.delivery.robots import (
    CUT_MARK,
    DINGTALK_MAX_BYTES,
    FEISHU_MAX_BODY_BYTES,
    WECOM_MAX_BYTES,
    DingTalkSender,
    FeishuSender,
    RobotSender,
    WeComSender,
    render_dingtalk,
    render_feishu,
    render_wecom,
    robot_senders,
)
from bot.domain.vocabulary import Channel
from tests.fixtures.robots import RobotEmulator

LINK = "https://console.example.cn/cases/TS-2026-0001?tab=deadlines"
ALERT: dict[str, Any] = {
    "title": "投诉 TS-2026-0001 受理期限将至",
    "text": "受理期限：2026-11-23\n负责人：王工",
    "link": LINK,
    "act_hint": "打开控制台",
}
FOOTER = f"[打开控制台]({LINK})"
EVIL = (
    '[点我](http://evil.example/x) **粗体** <font color="warning">红字</font> <@all> @all '
    "@13800138000\n# 标题\n> 引用\n   - 列表\n1. 一\n![图](http://evil.example/i.png) `代码` "
    '~~删~~ <at user_id="all">所有人</at> www.evil.example &lt;b&gt; |a|b| \\*'
)


def message(payload: dict[str, Any], key: str = "alert-1") -> RobotAlert:
    """The alert as stored (unchecked: the sender refuses a bad one); `key` is unused now."""
    return RobotAlert(
        Channel.WECOM,
        payload.get("title"),  # type: ignore[arg-type]
        payload.get("text"),  # type: ignore[arg-type]
        payload.get("link"),
        payload.get("act_hint"),
    )


@asynccontextmanager
async def opened(*senders: RobotSender) -> AsyncIterator[None]:
    try:
        yield
    finally:
        for sender in senders:
            await sender.close()


@pytest.fixture
async def senders(robots: RobotEmulator) -> AsyncIterator[dict[str, RobotSender]]:
    urls = (robots.wecom_url, robots.dingtalk_url, robots.dingtalk_secret, robots.feishu_url)
    made = robot_senders(*urls, robots.feishu_secret)
    async with opened(*made.values()):
        yield made


def credentials(robots: RobotEmulator, *more: str) -> list[str]:
    found = [robots.wecom_key, robots.dingtalk_token, robots.dingtalk_secret, robots.feishu_hook]
    return [s for s in [*found, robots.feishu_secret, *more] if s]


def assert_no_secret(exc: BaseException, secrets: list[str]) -> None:
    shown = "".join(traceback.format_exception(exc)) + repr(exc) + repr(exc.args)
    assert [s for s in secrets if s in shown] == []


def unsigned(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in ("timestamp", "sign")}


def texts(feishu_body: dict[str, Any]) -> list[dict[str, str]]:
    return [e for row in feishu_body["content"]["post"]["zh_cn"]["content"] for e in row]


async def test_each_robot_delivers_the_rendered_alert(
    robots: RobotEmulator, senders: dict[str, RobotSender]
) -> None:
    assert set(senders) == {"wecom", "dingtalk", "feishu"}
    before = time.time()
    for sender in senders.values():
        assert await sender.send(message(ALERT)) is None

    (wecom,) = robots.received["wecom"]
    assert wecom.body == render_wecom(ALERT)
    assert wecom.body == {
        "msgtype": "markdown",
        "markdown": {
            "content": "**投诉 TS-2026-0001 受理期限将至**\n受理期限：2026-11-23\n"
            f"负责人：王工\n{FOOTER}"
        },
    }
    (ding,) = robots.received["dingtalk"]
    assert ding.body == render_dingtalk(ALERT)
    assert ding.body["markdown"] == {
        "title": "投诉 TS-2026-0001 受理期限将至",
        "text": "#### 投诉 TS-2026-0001 受理期限将至\n\n受理期限：2026-11-23  \n"
        f"负责人：王工\n\n{FOOTER}",
    }
    assert ding.body["at"] == {"atMobiles": [], "atUserIds": [], "isAtAll": False}
    assert before * 1000 - 1000 <= int(ding.query["timestamp"]) <= time.time() * 1000
    assert ding.query["sign"]  # checked by the emulator, which accepted it
    (feishu,) = robots.received["feishu"]
    assert unsigned(feishu.body) == render_feishu(ALERT)
    assert isinstance(feishu.body["timestamp"], str)
    assert before - 1 <= int(feishu.body["timestamp"]) <= time.time()
    assert feishu.body["content"]["post"]["zh_cn"] == {
        "title": "投诉 TS-2026-0001 受理期限将至",
        "content": [
            [{"tag": "text", "text": "受理期限：2026-11-23"}],
            [{"tag": "text", "text": "负责人：王工"}],
            [{"tag": "a", "text": "打开控制台", "href": LINK}],
        ],
    }


@pytest.mark.parametrize(
    ("channel", "code", "says"), [("dingtalk", 310000, "sign not match"), ("feishu", 19021, "sign")]
)
async def test_a_wrong_secret_is_refused_for_good(
    robots: RobotEmulator, channel: str, code: int, says: str
) -> None:
    wrong = "SEC" + "0" * 64
    sender: RobotSender = (
        DingTalkSender(robots.dingtalk_url, wrong)
        if channel == "dingtalk"
        else FeishuSender(robots.feishu_url, wrong)
    )
    async with opened(sender):
        with pytest.raises(PermanentFailure) as caught:
            await sender.send(message(ALERT))
    assert str(code) in str(caught.value) and says in str(caught.value)
    assert_no_secret(caught.value, credentials(robots, wrong))
    assert robots.received[channel] == [] and robots.refused[channel] == [code]


@pytest.mark.parametrize("channel", ["dingtalk", "feishu"])
async def test_timestamps_are_accepted_within_the_hour_only(
    robots: RobotEmulator, channel: str
) -> None:
    def sender(skew: float) -> RobotSender:
        def now() -> float:
            return time.time() + skew

        if channel == "dingtalk":
            return DingTalkSender(robots.dingtalk_url, robots.dingtalk_secret, now)
        return FeishuSender(robots.feishu_url, robots.feishu_secret, now)

    stale, skewed = sender(-7200), sender(-1800)
    async with opened(stale, skewed):
        with pytest.raises(PermanentFailure):
            await stale.send(message(ALERT))
        await skewed.send(message(ALERT))
    assert len(robots.received[channel]) == 1


async def test_wecom_rate_limit_is_transient_and_dingtalk_still_delivers(
    robots: RobotEmulator, senders: dict[str, RobotSender]
) -> None:
    robots.fail_next("wecom", 45009)
    with pytest.raises(TransientFailure) as caught:
        await senders["wecom"].send(message(ALERT))
    assert caught.value.retry_after == 60 and "45009" in str(caught.value)
    # WeCom said to slow down: its next alert fails fast, without a request.
    with pytest.raises(TransientFailure) as again:
        await senders["wecom"].send(message(ALERT, "alert-2"))
    assert again.value.retry_after is not None and 55 < again.value.retry_after <= 60
    assert robots.refused["wecom"] == [45009] and robots.received["wecom"] == []
    started = time.monotonic()
    await senders["dingtalk"].send(message(ALERT))
    assert time.monotonic() - started < 2 and len(robots.received["dingtalk"]) == 1


async def test_alerts_queued_behind_a_rate_limit_answer_fail_fast(
    robots: RobotEmulator, senders: dict[str, RobotSender]
) -> None:
    robots.fail_next("wecom", 45009)
    sends = [senders["wecom"].send(message(ALERT, f"alert-{i}")) for i in range(3)]
    outcomes = await asyncio.gather(*sends, return_exceptions=True)
    assert all(isinstance(o, TransientFailure) and o.retry_after for o in outcomes)
    assert robots.refused["wecom"] == [45009] and robots.received["wecom"] == []  # one request


@pytest.mark.parametrize(
    ("channel", "code", "msg", "retry_after"),
    [
        ("dingtalk", 130101, None, 600),  # DingTalk then throttles the robot for 10 minutes
        ("feishu", 11232, None, 60),
        ("feishu", 9499, "too many request", 60),
        ("feishu", 9499, None, None),  # "Bad Request": permanent
        ("wecom", 93000, None, None),
        ("dingtalk", 300001, None, None),
        ("feishu", 19024, "Key Words Not Found", None),
        ("wecom", -1, "system busy", 0),
    ],
)
async def test_error_codes(
    robots: RobotEmulator,
    senders: dict[str, RobotSender],
    channel: str,
    code: int,
    msg: str | None,
    retry_after: float | None,
) -> None:
    robots.fail_next(channel, code, msg=msg)
    expected = PermanentFailure if retry_after is None else TransientFailure
    with pytest.raises(expected) as caught:
        await senders[channel].send(message(ALERT))
    assert str(code) in str(caught.value)
    if isinstance(caught.value, TransientFailure):
        assert caught.value.retry_after == (retry_after or None)


@pytest.mark.parametrize("channel", ["wecom", "dingtalk", "feishu"])
async def test_http_500_is_transient_then_the_next_send_delivers(
    robots: RobotEmulator, senders: dict[str, RobotSender], channel: str
) -> None:
    robots.fail_http(channel, 500)
    with pytest.raises(TransientFailure) as caught:
        await senders[channel].send(message(ALERT))
    assert "HTTP 500" in str(caught.value) and caught.value.retry_after is None
    await senders[channel].send(message(ALERT))
    assert len(robots.received[channel]) == 1


async def test_robots_down_is_transient_and_leaks_nothing(
    robots: RobotEmulator, senders: dict[str, RobotSender]
) -> None:
    for sender in senders.values():
        await sender.send(message(ALERT))  # a kept-alive connection the outage must break
    await robots.down()
    for sender in senders.values():
        with pytest.raises(TransientFailure) as caught:
            await sender.send(message(ALERT))
        assert caught.value.__cause__ is None and caught.value.__context__ is None
        assert_no_secret(caught.value, credentials(robots))
    await robots.up()
    for sender in senders.values():
        await sender.send(message(ALERT))
    assert [len(robots.received[c]) for c in senders] == [2, 2, 2]


async def test_user_text_cannot_inject_links_formatting_or_mentions(
    robots: RobotEmulator, senders: dict[str, RobotSender]
) -> None:
    payload = {"title": "**[T](http://evil.example)**", "text": EVIL, "link": LINK}
    for sender in senders.values():
        await sender.send(message(payload))
    label = "打开链接 / Open"
    wecom = robots.received["wecom"][0].body["markdown"]["content"]
    ding = robots.received["dingtalk"][0].body["markdown"]["text"]
    for content, head in ((wecom, "**"), (ding, "#### ")):
        assert re.findall(r"\[([^\]]*)\]\(([^)]*)\)", content) == [(label, LINK)]
        body = content.split("\n", 1)[1]  # below our own heading
        assert body.count("**") == 0 and not re.search(r"[<>`~|@#]|&lt;|http://|www\.", body)
        assert not re.search(r"(?m)^\s*([-+>]|\d+\.)", body)
        assert content.startswith(head) and "点我" in body and "红字" in body  # still readable
    assert robots.received["dingtalk"][0].body["at"]["isAtAll"] is False
    feishu = robots.received["feishu"][0].body
    elements = texts(feishu)
    assert [e["tag"] for e in elements].count("a") == 1 and elements[-1]["href"] == LINK
    assert {e["tag"] for e in elements} == {"text", "a"}
    shown = json.dumps(feishu, ensure_ascii=False)
    assert not re.search(r"(?i)<at\b|http://|www\.evil", shown)


async def test_a_long_text_is_cut_to_the_limit_and_ends_with_the_link(
    robots: RobotEmulator, senders: dict[str, RobotSender]
) -> None:
    long = {**ALERT, "text": "证书监督审核提醒。" * 3000}  # 81 000 bytes
    quoted = {**ALERT, "text": '"\\\n' * 9000}  # JSON escapes double these
    for sender in senders.values():
        await sender.send(message(long))
    await senders["feishu"].send(message(quoted))
    wecom = robots.received["wecom"][0].body["markdown"]["content"]
    assert len(wecom.encode()) <= WECOM_MAX_BYTES and wecom.endswith(f"{CUT_MARK}\n{FOOTER}")
    ding = robots.received["dingtalk"][0].body["markdown"]["text"]
    assert len(ding.encode()) <= DINGTALK_MAX_BYTES and ding.endswith(f"{CUT_MARK}\n\n{FOOTER}")
    for received in robots.received["feishu"]:
        assert len(received.raw) <= FEISHU_MAX_BODY_BYTES
        *_, last_text, link = texts(received.body)
        assert last_text["text"].endswith(CUT_MARK) and link["href"] == LINK
    assert len(robots.received["feishu"][0].raw) > FEISHU_MAX_BODY_BYTES - 200  # cut, not gutted


async def test_the_emulator_refuses_what_the_services_refuse(robots: RobotEmulator) -> None:
    too_long = {"msgtype": "markdown", "markdown": {"content": "x" * (WECOM_MAX_BYTES + 1)}}
    unsigned_ding = {"msgtype": "markdown", "markdown": {"title": "t", "text": "t"}}
    async with aiohttp.ClientSession() as http:
        for url, body, key, code in (
            (robots.wecom_url, too_long, "errcode", 40058),
            (robots.dingtalk_url, unsigned_ding, "errcode", 310000),
            (robots.feishu_url, {"msg_type": "post"}, "code", 19021),
            (robots.feishu_url.replace(robots.feishu_hook, "nope"), {}, "code", 19001),
        ):
            async with http.post(url, json=body) as res:
                assert res.status == 200 and (await res.json())[key] == code


async def test_pacing_the_fourth_send_in_a_window_waits_and_others_do_not(
    robots: RobotEmulator,
) -> None:
    window = 1.0
    wecom = WeComSender(robots.wecom_url, per_minute=3, window_seconds=window)
    ding = DingTalkSender(robots.dingtalk_url, robots.dingtalk_secret, per_minute=3)
    robots.limit("wecom", (3, window))  # an overrun would be refused (45009)
    async with opened(wecom, ding):
        sends = [
            asyncio.create_task(wecom.send(message({**ALERT, "title": f"alert {i}"})))
            for i in range(4)
        ]
        await robots.wait_for("wecom", 3)
        assert not sends[3].done()
        await ding.send(message(ALERT))  # another robot's pacing is its own
        assert len(robots.received["dingtalk"]) == 1 and not sends[3].done()
        await asyncio.gather(*sends)
    got = robots.received["wecom"]
    assert [r.body["markdown"]["content"].split("\n")[0] for r in got] == [
        f"**alert {i}**" for i in range(4)
    ]  # served in order
    assert got[3].arrived - got[0].arrived >= window and robots.refused["wecom"] == []


async def test_bad_payloads_are_permanent_and_send_nothing(
    robots: RobotEmulator, senders: dict[str, RobotSender]
) -> None:
    for payload in (
        {**ALERT, "link": "javascript:alert(1)"},
        {"text": "no title"},
        {**ALERT, "text": None},
    ):
        for sender in senders.values():
            with pytest.raises(PermanentFailure):
                await sender.send(message(payload))
    assert all(robots.received[c] == [] and robots.refused[c] == [] for c in senders)


async def test_secrets_never_show_in_failures(robots: RobotEmulator) -> None:
    wrong_ding, wrong_feishu = "SEC" + "f" * 64, "wrong-feishu-secret"
    senders = [
        WeComSender(robots.wecom_url),
        DingTalkSender(robots.dingtalk_url, wrong_ding),
        FeishuSender(robots.feishu_url, wrong_feishu),
    ]
    failures: list[DeliveryFailure] = []
    async with opened(*senders):
        robots.fail_http("wecom", 502)
        robots.fail_next("wecom", 93000, msg=f"invalid webhook url {robots.wecom_url}")
        for _ in range(2):
            with pytest.raises(DeliveryFailure) as caught:
                await senders[0].send(message(ALERT))
            failures.append(caught.value)
        for sender in senders[1:]:
            with pytest.raises(PermanentFailure) as refused:
                await sender.send(message(ALERT))
            failures.append(refused.value)
    secrets = credentials(robots, wrong_ding, wrong_feishu)
    for failure in failures:
        assert_no_secret(failure, secrets)
    for sender in senders:
        assert not any(s in sender.redacted_url for s in secrets)


def test_factory_returns_only_the_configured_robots() -> None:
    wecom = (
        "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"
    )
    assert robot_senders() == {}
    only = robot_senders(wecom_url=wecom, dingtalk_secret="SECx")
    assert list(only) == ["wecom"] and only["wecom"].channel == "wecom"
    assert "693a91f6" not in only["wecom"].redacted_url
    with pytest.raises(ValueError):
        WeComSender(wecom, "a secret")
