"""The WhatsApp channels over real HTTP to local servers that speak Meta's Graph API and
Green API, and their webhook checks (signed here with this file's own code)."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import socket
import threading
import traceback
from collections import deque
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.review.channels.fakes import FakeHTTPServer, LocalServer
from tighten.llm.base import RetryPolicy
from tighten.review.channels.base import ChannelError, WebhookRejected
from tighten.review.channels.whatsapp import GreenApiChannel, WhatsAppCloudChannel

ACCESS_TOKEN = "EAAGm0PX4ZCpsBAKZCZBZAsEcReTaCcEsStOkEn1234567890abcdef"
APP_SECRET = "0123456789abcdef0123456789abcdef"
VERIFY_TOKEN = "tighten-verify-Token_42"
PHONE_ID = "106540352242922"
OWNER = "15551234567"
GREEN_ID = "1101000001"
GREEN_TOKEN = "d75b3a66374942c5b3c019c698abc2067e151558acbd412345"
GREEN_WEBHOOK_TOKEN = "webhook-secret-0f9e8d7c"
OWNER_CHAT = f"{OWNER}@c.us"
FAST = RetryPolicy(max_retries=2, backoff_s=0.001, max_backoff_s=0.002, max_wait_s=10)


def error_text(exc: BaseException) -> str:
    """Everything an exception shows: its message, repr and formatted traceback."""
    return f"{exc}\n{exc!r}\n" + "".join(traceback.format_exception(exc))


# --- local servers -----------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    server: FakeHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_DELETE(self) -> None:
        self._route("DELETE")

    def _route(self, verb: str) -> None:
        raw = self.rfile.read(int(self.headers.get("content-length", "0")))
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        status, doc = self.server.fake.call(
            verb, parts.path, query, json.loads(raw) if raw else None, dict(self.headers)
        )
        data = b"" if doc is ... else json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _Fake(LocalServer):
    def __init__(self) -> None:
        self.errors: deque[tuple[int, Any]] = deque()
        self.lock = threading.Lock()
        super().__init__(_Handler)


class FakeGraph(_Fake):
    """``POST /v21.0/{phone_number_id}/messages`` with Graph API errors
    (``{"error": {"message", "type", "code", "fbtrace_id"}}``)."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        super().__init__()

    def call(
        self, verb: str, path: str, query: dict[str, str], body: Any, headers: dict[str, str]
    ) -> tuple[int, Any]:
        with self.lock:
            if self.errors:
                return self.errors.popleft()
            if headers.get("authorization") != f"Bearer {ACCESS_TOKEN}":
                return graph_error(
                    401, 190, "Invalid OAuth access token - Cannot parse access token"
                )
            if verb != "POST" or path != f"/v21.0/{PHONE_ID}/messages":
                return graph_error(400, 100, "Unsupported post request.")
            text = (body.get("text") or {}).get("body", "")
            if body.get("messaging_product") != "whatsapp" or body.get("type") != "text":
                return graph_error(400, 100, "Invalid parameter")
            if len(text) > 4096:
                return graph_error(
                    400, 100, "Param text['body'] must be at most 4096 characters long."
                )
            self.sent.append(body)
            wamid = f"wamid.HBgL{len(self.sent):04d}"
            return 200, {
                "messaging_product": "whatsapp",
                "contacts": [{"input": body["to"], "wa_id": body["to"]}],
                "messages": [{"id": wamid}],
            }


def graph_error(status: int, code: int, message: str) -> tuple[int, Any]:
    error = {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "AbC"}
    return status, {"error": error}


class FakeGreen(_Fake):
    """``/waInstance{id}/{method}/{token}``: ``sendMessage`` (which queues the
    ``outgoingAPIMessageReceived`` echo, as the instance does), ``receiveNotification``
    (the queue's head, kept until deleted; ``null`` when empty) and ``deleteNotification``."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.queue: list[dict[str, Any]] = []
        self.deleted: list[int] = []
        self.failing_deletes: dict[int, int] = {}  # receipt id -> failures left
        self._receipt = 0
        super().__init__()

    def notify(self, body: dict[str, Any]) -> None:
        with self.lock:
            self._receipt += 1
            self.queue.append({"receiptId": self._receipt, "body": body})

    def incoming(
        self,
        text: str,
        *,
        chat_id: str = OWNER_CHAT,
        message_id: str | None = None,
        extended: bool = False,
    ) -> dict[str, Any]:
        body = notification(
            "incomingMessageReceived",
            text,
            chat_id=chat_id,
            message_id=message_id or f"IN{self._receipt + 1}",
            extended=extended,
        )
        self.notify(body)
        return body

    def call(
        self, verb: str, path: str, query: dict[str, str], body: Any, headers: dict[str, str]
    ) -> tuple[int, Any]:
        with self.lock:
            if self.errors:
                return self.errors.popleft()
            segments = path.strip("/").split("/")
            if (
                len(segments) < 3
                or segments[0] != f"waInstance{GREEN_ID}"
                or segments[2] != GREEN_TOKEN
            ):
                return 401, ...
            method, rest = segments[1], segments[3:]
            if method == "sendMessage" and verb == "POST":
                return self._send(body)
            if method == "receiveNotification" and verb == "GET":
                assert 5 <= int(query["receiveTimeout"]) <= 60
                return 200, self.queue[0] if self.queue else None
            if method == "deleteNotification" and verb == "DELETE" and rest:
                receipt = int(rest[0])
                if self.failing_deletes.get(receipt):
                    self.failing_deletes[receipt] -= 1
                    return 500, {"message": "Internal Server Error"}
                found = [n for n in self.queue if n["receiptId"] == receipt]
                self.queue = [n for n in self.queue if n["receiptId"] != receipt]
                self.deleted.append(receipt)
                return 200, {"result": bool(found)}
            return 404, {"message": "method not found"}

    def _send(self, body: dict[str, Any]) -> tuple[int, Any]:
        if len(body.get("message", "")) > 20_000 or "@" not in body.get("chatId", ""):
            return 400, {"message": "Validation failed"}
        self.sent.append(body)
        message_id = f"BAE5{len(self.sent):08d}"
        self._receipt += 1
        echo = notification(
            "outgoingAPIMessageReceived",
            body["message"],
            chat_id=body["chatId"],
            message_id=message_id,
        )
        self.queue.append({"receiptId": self._receipt, "body": echo})
        return 200, {"idMessage": message_id}


def notification(
    kind: str,
    text: str,
    *,
    chat_id: str = OWNER_CHAT,
    message_id: str = "IN1",
    extended: bool = False,
) -> dict[str, Any]:
    data: dict[str, Any] = (
        {"typeMessage": "extendedTextMessage", "extendedTextMessageData": {"text": text}}
        if extended
        else {"typeMessage": "textMessage", "textMessageData": {"textMessage": text}}
    )
    return {
        "typeWebhook": kind,
        "instanceData": {
            "idInstance": int(GREEN_ID),
            "wid": "15550000000@c.us",
            "typeInstance": "whatsapp",
        },
        "timestamp": 1_700_000_000,
        "idMessage": message_id,
        "senderData": {"chatId": chat_id, "sender": chat_id, "senderName": "Owner"},
        "messageData": data,
    }


# --- Meta Cloud API ----------------------------------------------------------------------


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    with FakeGraph() as fake:
        yield fake


def cloud(
    fake: FakeGraph | None,
    sleeps: list[float],
    *,
    token: str = ACCESS_TOKEN,
    base_url: str | None = None,
) -> WhatsAppCloudChannel:
    return WhatsAppCloudChannel(
        token,
        PHONE_ID,
        f"+{OWNER[0]} {OWNER[1:4]}-{OWNER[4:]}",
        app_secret=APP_SECRET,
        verify_token=VERIFY_TOKEN,
        base_url=base_url or (fake.url if fake else ""),
        retry=FAST,
        sleep=sleeps.append,
        timeout=2,
    )


def meta_signed(payload: dict[str, Any], secret: str = APP_SECRET) -> tuple[dict[str, str], bytes]:
    raw = json.dumps(payload).encode()
    digest = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={digest}"}, raw


def inbound(
    text: str,
    *,
    sender: str = OWNER,
    message_id: str = "wamid.IN1",
    phone_number_id: str = PHONE_ID,
) -> dict[str, Any]:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550000000", "phone_number_id": phone_number_id},
        "contacts": [{"profile": {"name": "Owner"}, "wa_id": sender}],
        "messages": [
            {
                "from": sender,
                "id": message_id,
                "timestamp": "1700000000",
                "type": "text",
                "text": {"body": text},
            }
        ],
    }
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "WABA1", "changes": [{"field": "messages", "value": value}]}],
    }


def test_cloud_send_posts_each_part_as_a_text_message(
    graph: FakeGraph, sleeps: list[float]
) -> None:
    ids = cloud(graph, sleeps).send(["Digest (1/2)", " ", "Digest (2/2)"])
    assert ids == ["wamid.HBgL0001", "wamid.HBgL0002"]
    assert [m["text"] for m in graph.sent] == [
        {"preview_url": False, "body": "Digest (1/2)"},
        {"preview_url": False, "body": "Digest (2/2)"},
    ]
    assert {m["to"] for m in graph.sent} == {OWNER}


def test_cloud_refuses_a_part_over_4096_characters_before_sending(
    graph: FakeGraph, sleeps: list[float]
) -> None:
    with pytest.raises(ChannelError, match="part 2 is 4097 characters"):
        cloud(graph, sleeps).send(["ok", "x" * 4097])
    assert graph.sent == []


def test_cloud_errors_say_what_to_do_without_the_token(
    graph: FakeGraph, sleeps: list[float]
) -> None:
    wrong = "EAAGwrongwrongwrongwrongwrong"
    with pytest.raises(ChannelError, match="code 190") as caught:
        cloud(graph, sleeps, token=wrong).send(["Digest"])
    assert "WHATSAPP_ACCESS_TOKEN" in str(caught.value)
    assert wrong not in error_text(caught.value)
    graph.errors.append(graph_error(400, 131047, "Re-engagement message"))
    with pytest.raises(ChannelError, match="24 hours"):
        cloud(graph, sleeps).send(["Digest"])


def test_cloud_rate_limits_are_retried(graph: FakeGraph, sleeps: list[float]) -> None:
    graph.errors.append(graph_error(400, 130429, "Rate limit hit"))
    assert cloud(graph, sleeps).send(["Digest"]) == ["wamid.HBgL0001"]
    assert len(sleeps) == 1


def test_cloud_has_nothing_to_poll(sleeps: list[float]) -> None:
    assert cloud(None, sleeps, base_url="http://127.0.0.1:9").poll() == []


def test_the_subscription_challenge_is_answered_only_with_the_verify_token(
    sleeps: list[float],
) -> None:
    channel = cloud(None, sleeps, base_url="http://127.0.0.1:9")
    params = {
        "hub.mode": "subscribe",
        "hub.verify_token": VERIFY_TOKEN,
        "hub.challenge": "1158201444",
    }
    assert channel.verify_subscription(params) == "1158201444"
    for bad in (
        {**params, "hub.verify_token": "guess"},
        {**params, "hub.mode": "unsubscribe"},
        {"hub.challenge": "1"},
    ):
        with pytest.raises(WebhookRejected) as caught:
            channel.verify_subscription(bad)
        assert VERIFY_TOKEN not in error_text(caught.value)


def test_a_signed_message_from_the_owner_is_a_reply_once(sleeps: list[float]) -> None:
    channel = cloud(None, sleeps, base_url="http://127.0.0.1:9")
    headers, body = meta_signed(inbound("remove 3, deploy"))
    [reply] = channel.parse_webhook(headers, body)
    assert (reply.channel, reply.sender, reply.text) == ("whatsapp", OWNER, "remove 3, deploy")
    assert reply.message_id == "wamid.IN1"
    assert reply.received_at.timestamp() == 1_700_000_000
    assert channel.parse_webhook(headers, body) == []  # Meta delivering it again


def test_a_forged_or_missing_hub_signature_is_rejected(sleeps: list[float]) -> None:
    channel = cloud(None, sleeps, base_url="http://127.0.0.1:9")
    for headers, body in (
        meta_signed(inbound("deploy all"), secret="not-the-app-secret"),
        ({}, meta_signed(inbound("deploy all"))[1]),
        (meta_signed(inbound("skip"))[0], meta_signed(inbound("deploy all"))[1]),
    ):
        with pytest.raises(WebhookRejected, match="X-Hub-Signature-256") as caught:
            channel.parse_webhook(headers, body)
        assert APP_SECRET not in error_text(caught.value)


def test_messages_from_other_numbers_and_non_messages_are_ignored(sleeps: list[float]) -> None:
    channel = cloud(None, sleeps, base_url="http://127.0.0.1:9")
    statuses = inbound("x")
    value = statuses["entry"][0]["changes"][0]["value"]
    value["statuses"] = [{"id": "wamid.OUT1", "status": "delivered", "recipient_id": OWNER}]
    del value["messages"]
    for payload in (
        inbound("deploy all", sender="15559999999"),
        statuses,
        inbound("deploy all", phone_number_id="999"),
    ):
        assert channel.parse_webhook(*meta_signed(payload)) == []


# --- Green API ---------------------------------------------------------------------------


@pytest.fixture
def green() -> Iterator[FakeGreen]:
    with FakeGreen() as fake:
        yield fake


def green_channel(
    fake: FakeGreen | None,
    sleeps: list[float],
    *,
    token: str = GREEN_TOKEN,
    base_url: str | None = None,
    **options: Any,
) -> GreenApiChannel:
    return GreenApiChannel(
        GREEN_ID,
        token,
        f"+{OWNER}",
        base_url=base_url or (fake.url if fake else ""),
        retry=FAST,
        sleep=sleeps.append,
        timeout=2,
        **options,
    )


def test_green_send_uses_the_owners_chat_id(green: FakeGreen, sleeps: list[float]) -> None:
    ids = green_channel(green, sleeps).send(["Digest (1/2)", "Digest (2/2)"])
    assert ids == ["BAE500000001", "BAE500000002"]
    assert [(m["chatId"], m["message"]) for m in green.sent] == [
        (OWNER_CHAT, "Digest (1/2)"),
        (OWNER_CHAT, "Digest (2/2)"),
    ]
    with pytest.raises(ChannelError, match="20000"):
        green_channel(green, sleeps).send(["x" * 20_001])


def test_green_poll_returns_the_owners_reply_once_and_empties_the_queue(
    green: FakeGreen, sleeps: list[float]
) -> None:
    channel = green_channel(green, sleeps)
    channel.send(["Digest"])  # its echo comes back as an outgoing notification
    green.incoming("deploy all", chat_id="15559999999@c.us")
    green.incoming("skip", chat_id="120363000000000000@g.us")
    green.notify({**notification("outgoingMessageStatus", ""), "status": "delivered"})
    green.incoming("remove 3, deploy", extended=True)
    replies = channel.poll()
    assert [(r.sender, r.text, r.chat) for r in replies] == [
        (OWNER_CHAT, "remove 3, deploy", OWNER_CHAT)
    ]
    assert green.queue == []
    assert sorted(green.deleted) == [1, 2, 3, 4, 5]
    assert channel.poll() == []


def test_green_poll_takes_a_bounded_number_of_notifications(
    green: FakeGreen, sleeps: list[float]
) -> None:
    channel = green_channel(green, sleeps, max_notifications=3)
    for n in range(5):
        green.incoming(f"reply {n}")
    assert [r.text for r in channel.poll()] == ["reply 0", "reply 1", "reply 2"]
    assert [r.text for r in channel.poll()] == ["reply 3", "reply 4"]


def test_a_failed_delete_returns_what_was_done_and_loses_nothing(
    green: FakeGreen, sleeps: list[float]
) -> None:
    channel = green_channel(green, sleeps)
    green.incoming("show 1")
    green.incoming("deploy all")
    green.failing_deletes[2] = 3  # every try to delete the second one fails
    assert [r.text for r in channel.poll()] == ["show 1"]
    assert [r.text for r in channel.poll()] == ["deploy all"]
    assert channel.poll() == []


def test_green_errors_never_show_the_token(
    green: FakeGreen, sleeps: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="httpx")
    wrong = "0000000000wrongtoken1111111111"
    with pytest.raises(
        ChannelError, match="HTTP 401; check the instance id and GREEN_API_TOKEN"
    ) as caught:
        green_channel(green, sleeps, token=wrong).poll()
    assert wrong not in error_text(caught.value)
    green_channel(green, sleeps).send(["Digest"])
    assert "waInstance" in caplog.text
    assert GREEN_TOKEN not in caplog.text
    assert wrong not in caplog.text


def test_an_unreachable_green_api_is_one_error_without_the_token(sleeps: list[float]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    channel = green_channel(None, sleeps, base_url=f"http://127.0.0.1:{port}")
    with pytest.raises(ChannelError, match="cannot reach") as caught:
        channel.poll()
    assert GREEN_TOKEN not in error_text(caught.value)
    assert GREEN_TOKEN not in repr(channel)


def test_green_webhooks_need_the_configured_token(sleeps: list[float]) -> None:
    raw = json.dumps(notification("incomingMessageReceived", "deploy all")).encode()
    unguarded = green_channel(None, sleeps, base_url="http://127.0.0.1:9")
    with pytest.raises(WebhookRejected, match="no webhook token"):
        unguarded.parse_webhook({"Authorization": f"Bearer {GREEN_WEBHOOK_TOKEN}"}, raw)
    channel = green_channel(
        None, sleeps, base_url="http://127.0.0.1:9", webhook_token=GREEN_WEBHOOK_TOKEN
    )
    for headers in (
        {},
        {"Authorization": "Bearer guess"},
        {"Authorization": GREEN_WEBHOOK_TOKEN[:-1]},
    ):
        with pytest.raises(WebhookRejected, match="Authorization") as caught:
            channel.parse_webhook(headers, raw)
        assert GREEN_WEBHOOK_TOKEN not in error_text(caught.value)
    [reply] = channel.parse_webhook({"Authorization": f"Bearer {GREEN_WEBHOOK_TOKEN}"}, raw)
    assert (reply.sender, reply.text) == (OWNER_CHAT, "deploy all")
    assert channel.parse_webhook({"authorization": GREEN_WEBHOOK_TOKEN}, raw) == []  # again
    other = json.dumps(
        notification("incomingMessageReceived", "x", chat_id="1@c.us", message_id="IN9")
    ).encode()
    assert channel.parse_webhook({"Authorization": GREEN_WEBHOOK_TOKEN}, other) == []
    echo = json.dumps(
        notification("outgoingAPIMessageReceived", "Digest", message_id="O1")
    ).encode()
    assert channel.parse_webhook({"Authorization": GREEN_WEBHOOK_TOKEN}, echo) == []
