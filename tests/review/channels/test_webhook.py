"""The generic Standard Webhooks channel: signed digests out, verified replies in."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import traceback
from collections.abc import Iterator

import pytest

from tests.review.channels.fakes import WebhookReceiver
from tighten.errors import ConfigError
from tighten.llm.base import RetryPolicy
from tighten.review.channels.base import ChannelError, WebhookRejected
from tighten.review.channels.webhook import TOLERANCE_S, WebhookChannel, secret_key, sign

SECRET = "whsec_" + base64.b64encode(b"tighten-test-key-0123456789abcdef").decode()
FAST = RetryPolicy(max_retries=2, backoff_s=0.001, max_backoff_s=0.002)
NOW = 1_750_000_000


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(SECRET) as fake:
        yield fake


def make_channel(url: str = "https://example.test/hook", **kwargs: object) -> WebhookChannel:
    options: dict[str, object] = {"retry": FAST, "sleep": lambda s: None, "timeout": 2, **kwargs}
    return WebhookChannel(url, SECRET, **options)  # type: ignore[arg-type]


def signed(
    body: bytes, *, webhook_id: str = "msg_1", at: int = NOW, secret: str = SECRET
) -> dict[str, str]:
    """Headers as an independent Standard Webhooks sender makes them."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{webhook_id}.{at}.".encode() + body, hashlib.sha256).digest()
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(at),
        "webhook-signature": "v1," + base64.b64encode(mac).decode(),
    }


REPLY = json.dumps({"type": "reply", "sender": "owner@example.com", "text": "deploy all"}).encode()


def test_signature_matches_the_standard_webhooks_test_vector() -> None:
    key = secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    body = b'{"test": 2432232314}'
    expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == expected


# --- send --------------------------------------------------------------------------------


def test_send_posts_the_parts_as_one_signed_digest(receiver: WebhookReceiver) -> None:
    ids = make_channel(receiver.url + "/hook").send(["part one", "", "part two"])
    (delivery,) = receiver.deliveries
    assert delivery.body == {"type": "digest", "parts": ["part one", "part two"]}
    assert ids == [delivery.webhook_id]
    assert abs(delivery.timestamp - time.time()) < 5
    assert receiver.attempts[0]["content-type"] == "application/json"


def test_a_failing_receiver_is_retried_with_the_same_webhook_id(
    receiver: WebhookReceiver,
) -> None:
    receiver.statuses.extend([503, 429])
    (webhook_id,) = make_channel(receiver.url).send(["digest"])
    assert [a["webhook-id"] for a in receiver.attempts] == [webhook_id] * 3
    assert len(receiver.deliveries) == 1


def test_a_receiver_with_another_secret_refuses_and_the_error_hides_the_secret(
    receiver: WebhookReceiver,
) -> None:
    other = "whsec_" + base64.b64encode(b"another-key-entirely-0123456789").decode()
    channel = WebhookChannel(receiver.url, other, retry=FAST)
    with pytest.raises(ChannelError, match="HTTP 401") as caught:
        channel.send(["digest"])
    shown = "".join(traceback.format_exception(caught.value)) + repr(channel)
    assert other not in shown
    assert other.removeprefix("whsec_") not in shown


def test_an_unreachable_receiver_ends_in_a_channel_error() -> None:
    channel = make_channel("http://127.0.0.1:9/hook", timeout=0.5)
    with pytest.raises(ChannelError, match=r"cannot reach 127\.0\.0\.1:9 .*\(3 tries\)"):
        channel.send(["digest"])


@pytest.mark.parametrize("secret", ["", "whsec_", "whsec_not base64!", "plain words"])
def test_a_secret_that_is_not_whsec_base64_is_a_config_error(secret: str) -> None:
    with pytest.raises(ConfigError, match="whsec_") as caught:
        WebhookChannel("https://example.test/hook", secret)
    shown = secret.removeprefix("whsec_")
    assert not shown or shown not in str(caught.value)


# --- parse_webhook -----------------------------------------------------------------------


def test_a_validly_signed_reply_is_accepted() -> None:
    channel = make_channel(now=lambda: NOW + 10)
    (reply,) = channel.parse_webhook(signed(REPLY), REPLY)
    assert (reply.channel, reply.sender, reply.text) == (
        "webhook",
        "owner@example.com",
        "deploy all",
    )
    assert reply.message_id == "msg_1"
    assert reply.received_at.timestamp() == NOW


def test_one_valid_signature_among_several_is_enough() -> None:
    headers = signed(REPLY)
    good = headers["webhook-signature"]
    forged = "v1," + base64.b64encode(b"x" * 32).decode()
    headers["webhook-signature"] = f"{forged} v2,{good[3:]} {good} v1,%%%"
    assert len(make_channel(now=lambda: NOW).parse_webhook(headers, REPLY)) == 1


def _forged(headers: dict[str, str]) -> dict[str, str]:
    return {**headers, "webhook-signature": "v1," + base64.b64encode(b"\0" * 32).decode()}


@pytest.mark.parametrize(
    ("case", "headers", "body"),
    [
        ("forged signature", _forged(signed(REPLY)), REPLY),
        ("tampered body", signed(REPLY), REPLY.replace(b"deploy all", b"deploy 1")),
        ("wrong secret", signed(REPLY, secret="whsec_" + "QUJD" * 8), REPLY),
        ("stale timestamp", signed(REPLY, at=NOW - TOLERANCE_S - 1), REPLY),
        ("future timestamp", signed(REPLY, at=NOW + TOLERANCE_S + 1), REPLY),
        ("missing signature", {k: v for k, v in signed(REPLY).items() if "sig" not in k}, REPLY),
        ("missing id", {k: v for k, v in signed(REPLY).items() if k != "webhook-id"}, REPLY),
        ("bad timestamp", {**signed(REPLY), "webhook-timestamp": "yesterday"}, REPLY),
        ("unversioned", {**signed(REPLY), "webhook-signature": "deadbeef"}, REPLY),
    ],
)
def test_an_unverifiable_call_is_rejected(case: str, headers: dict[str, str], body: bytes) -> None:
    with pytest.raises(WebhookRejected):
        make_channel(now=lambda: NOW).parse_webhook(headers, body)


def test_a_replayed_webhook_id_is_rejected() -> None:
    channel = make_channel(now=lambda: NOW)
    headers = signed(REPLY)
    assert len(channel.parse_webhook(headers, REPLY)) == 1
    with pytest.raises(WebhookRejected, match="replay"):
        channel.parse_webhook(headers, REPLY)
    resent = signed(REPLY, at=NOW + 1)  # same id, freshly signed: still the same message
    with pytest.raises(WebhookRejected, match="replay"):
        channel.parse_webhook(resent, REPLY)


def test_a_forged_call_does_not_use_up_its_id() -> None:
    channel = make_channel(now=lambda: NOW)
    with pytest.raises(WebhookRejected):
        channel.parse_webhook(_forged(signed(REPLY)), REPLY)
    assert len(channel.parse_webhook(signed(REPLY), REPLY)) == 1


def test_seen_ids_are_bounded() -> None:
    channel = make_channel(now=lambda: NOW, max_seen=3)
    for n in range(5):
        channel.parse_webhook(signed(REPLY, webhook_id=f"msg_{n}"), REPLY)
    assert len(channel._seen) == 3


def test_a_signed_call_that_is_not_a_reply() -> None:
    channel = make_channel(now=lambda: NOW)
    ping = b'{"type": "ping"}'
    assert channel.parse_webhook(signed(ping, webhook_id="a"), ping) == []
    bad = b'{"type": "reply", "sender": 5}'
    with pytest.raises(WebhookRejected, match="sender"):
        channel.parse_webhook(signed(bad, webhook_id="b"), bad)


def test_poll_returns_nothing() -> None:
    assert make_channel().poll() == []
