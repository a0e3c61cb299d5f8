"""The Slack channel over real HTTP to a local server that speaks the Web API, and its
Events API webhook verification (signed here with this file's own code)."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import traceback
from collections import deque
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.review.channels.fakes import FakeHTTPServer, LocalServer
from tighten.http import RetryPolicy
from tighten.review.channels.base import ChannelError, WebhookRejected
from tighten.review.channels.slack import SlackChannel, url_verification_challenge

BOT_TOKEN = "xoxb-1111111111-2222222222222-AbCdEfGhIjKlMnOpQrStUvWx"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
CHANNEL = "C0123456789"
OWNER = "U0OWNER01"
NOW = 1_700_000_000.0
FAST = RetryPolicy(max_retries=2, backoff_s=0.001, max_backoff_s=0.002, max_wait_s=10)


# --- a local Slack Web API ---------------------------------------------------------------


class FakeSlack(LocalServer):
    """``chat.postMessage``, ``conversations.history`` (top-level messages, newest first)
    and ``conversations.replies`` (the parent, then its replies) over one channel, with
    Slack's quirks: errors as HTTP 200 ``{"ok": false}``, pages of at most ``page_size``
    with ``next_cursor``, ``oldest`` exclusive. ``errors`` are answered first."""

    def __init__(self, page_size: int = 2) -> None:
        self.page_size = page_size
        self.messages: list[dict[str, Any]] = []
        self.posted: list[dict[str, Any]] = []
        self.calls: list[str] = []
        self.errors: deque[tuple[int, dict[str, Any], dict[str, str]]] = deque()
        self._clock = 0
        self._lock = threading.Lock()
        super().__init__(_SlackHandler)

    @property
    def url(self) -> str:
        return super().url + "/api"

    def _next_ts(self) -> str:
        self._clock += 1
        return f"{NOW + self._clock:.6f}"

    def post(
        self, text: str, *, user: str = OWNER, thread_ts: str | None = None, **extra: Any
    ) -> dict[str, Any]:
        """A message someone typed in the channel (or a thread of it)."""
        with self._lock:
            message = {"type": "message", "ts": self._next_ts(), "user": user, "text": text}
            if thread_ts:
                message["thread_ts"] = thread_ts
                self._parent(thread_ts)["thread_ts"] = thread_ts
            message.update(extra)
            self.messages.append(message)
            return message

    def _parent(self, ts: str) -> dict[str, Any]:
        return next(m for m in self.messages if m["ts"] == ts)

    def call(
        self, method: str, params: dict[str, Any], auth: str
    ) -> tuple[int, Any, dict[str, str]]:
        with self._lock:
            self.calls.append(method)
            if self.errors:
                return self.errors.popleft()
            if auth != f"Bearer {BOT_TOKEN}":
                return 200, {"ok": False, "error": "invalid_auth"}, {}
            if params.get("channel") != CHANNEL:
                return 200, {"ok": False, "error": "channel_not_found"}, {}
            handler = {
                "chat.postMessage": self._post_message,
                "conversations.history": self._history,
                "conversations.replies": self._replies,
            }.get(method)
            if handler is None:
                return 200, {"ok": False, "error": "unknown_method"}, {}
            return 200, handler(params), {}

    def _post_message(self, params: dict[str, Any]) -> dict[str, Any]:
        text = params.get("markdown_text")
        if not isinstance(text, str) or "text" in params or len(text) > 12_000:
            return {"ok": False, "error": "invalid_arguments"}
        self.posted.append(params)
        message = {
            "type": "message",
            "ts": self._next_ts(),
            "bot_id": "B0TIGHTEN",
            "app_id": "A0TIGHTEN",
            "text": text,
        }
        if params.get("thread_ts"):
            message["thread_ts"] = params["thread_ts"]
            self._parent(params["thread_ts"])["thread_ts"] = params["thread_ts"]
        self.messages.append(message)
        return {"ok": True, "channel": CHANNEL, "ts": message["ts"], "message": message}

    def _history(self, params: dict[str, Any]) -> dict[str, Any]:
        top = [
            m
            for m in self.messages
            if m.get("thread_ts") in (None, m["ts"]) or m.get("subtype") == "thread_broadcast"
        ]
        newer = [m for m in top if float(m["ts"]) > float(params.get("oldest") or 0)]
        return self._page(sorted(newer, key=lambda m: float(m["ts"]), reverse=True), params)

    def _replies(self, params: dict[str, Any]) -> dict[str, Any]:
        parent = next((m for m in self.messages if m["ts"] == params.get("ts")), None)
        if parent is None:
            return {"ok": False, "error": "thread_not_found"}
        oldest = float(params.get("oldest") or 0)
        replies = [
            m
            for m in self.messages
            if m.get("thread_ts") == parent["ts"] and m is not parent and float(m["ts"]) > oldest
        ]
        return self._page([parent, *replies], params)

    def _page(self, messages: list[dict[str, Any]], params: dict[str, Any]) -> dict[str, Any]:
        start = int(params.get("cursor", "off:0").removeprefix("off:"))
        size = min(int(params.get("limit", 100)), self.page_size)
        page, more = messages[start : start + size], start + size < len(messages)
        meta = {"next_cursor": f"off:{start + size}" if more else ""}
        return {"ok": True, "messages": page, "has_more": more, "response_metadata": meta}


class _SlackHandler(BaseHTTPRequestHandler):
    server: FakeHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        query = {k: v[-1] for k, v in parse_qs(urlsplit(self.path).query).items()}
        self._answer(query)

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("content-length", "0")))
        self._answer(json.loads(raw or b"{}"))

    def _answer(self, params: dict[str, Any]) -> None:
        method = urlsplit(self.path).path.removeprefix("/api/")
        status, doc, headers = self.server.fake.call(
            method, params, self.headers.get("authorization", "")
        )
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json; charset=utf-8")
        self.send_header("content-length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


# --- fixtures ----------------------------------------------------------------------------


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


def channel(
    fake: FakeSlack,
    state: Path,
    sleeps: list[float],
    *,
    token: str = BOT_TOKEN,
    base_url: str | None = None,
    secret: str | None = SIGNING_SECRET,
    now: float = NOW,
) -> SlackChannel:
    return SlackChannel(
        token,
        CHANNEL,
        signing_secret=secret,
        base_url=base_url or fake.url,
        state_path=state,
        now=lambda: now,
        retry=FAST,
        sleep=sleeps.append,
        timeout=2,
    )


@pytest.fixture
def bot(slack: FakeSlack, tmp_path: Path, sleeps: list[float]) -> SlackChannel:
    return channel(slack, tmp_path / "state" / "slack.json", sleeps)


def error_text(exc: BaseException) -> str:
    """Everything an exception shows: its message, repr and formatted traceback."""
    return f"{exc}\n{exc!r}\n" + "".join(traceback.format_exception(exc))


def signed(
    body: dict[str, Any], *, at: float = NOW, secret: str = SIGNING_SECRET
) -> tuple[dict[str, str], bytes]:
    raw = json.dumps(body).encode()
    stamp = str(int(at))
    digest = hmac.new(secret.encode(), b"v0:" + stamp.encode() + b":" + raw, hashlib.sha256)
    headers = {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": "v0=" + digest.hexdigest()}
    return headers, raw


def event(
    text: str, *, event_id: str = "Ev0001", channel_id: str = CHANNEL, **extra: Any
) -> dict[str, Any]:
    message = {
        "type": "message",
        "channel": channel_id,
        "user": OWNER,
        "text": text,
        "ts": f"{NOW:.6f}",
        **extra,
    }
    return {
        "type": "event_callback",
        "team_id": "T0001",
        "api_app_id": "A0TIGHTEN",
        "event": message,
        "event_id": event_id,
        "event_time": int(NOW),
    }


# --- send --------------------------------------------------------------------------------


def test_send_starts_a_thread_and_posts_later_parts_in_it(
    slack: FakeSlack, bot: SlackChannel
) -> None:
    ids = bot.send(["Digest (1/3)", "", "Digest (2/3)", "Digest (3/3)"])
    assert len(ids) == 3
    assert [p["markdown_text"] for p in slack.posted] == [
        "Digest (1/3)",
        "Digest (2/3)",
        "Digest (3/3)",
    ]
    assert "thread_ts" not in slack.posted[0]
    assert [p["thread_ts"] for p in slack.posted[1:]] == [ids[0], ids[0]]
    assert all(p["unfurl_links"] is False and p["channel"] == CHANNEL for p in slack.posted)
    state = json.loads(bot.state_path.read_text())
    assert state["threads"][0]["ts"] == ids[0]


def test_a_part_over_slacks_limit_is_refused_before_anything_is_sent(
    slack: FakeSlack, bot: SlackChannel
) -> None:
    with pytest.raises(ChannelError, match="part 2 is 12001 characters"):
        bot.send(["fine", "x" * 12_001])
    assert slack.posted == []


# --- poll --------------------------------------------------------------------------------


def test_poll_returns_the_owners_thread_reply_once_and_never_bot_messages(
    slack: FakeSlack, bot: SlackChannel
) -> None:
    ids = bot.send(["Digest (1/2)", "Digest (2/2)"])
    slack.post("remove 3, deploy", thread_ts=ids[0])
    slack.post("I am another bot", thread_ts=ids[0], bot_id="B0OTHER", subtype="bot_message")
    replies = bot.poll()
    assert [(r.sender, r.text, r.chat, r.channel) for r in replies] == [
        (OWNER, "remove 3, deploy", CHANNEL, "slack")
    ]
    assert bot.poll() == []


def test_poll_returns_top_level_messages_and_skips_system_messages(
    slack: FakeSlack, bot: SlackChannel
) -> None:
    bot.send(["Digest"])
    slack.post("<@U0OWNER01> has joined the channel", subtype="channel_join")
    slack.post("deploy all &amp; thanks &lt;3")
    replies = bot.poll()
    assert [r.text for r in replies] == ["deploy all & thanks <3"]
    assert replies[0].received_at.timestamp() == pytest.approx(float(replies[0].message_id or 0))


def test_the_first_poll_before_any_digest_starts_from_now(
    slack: FakeSlack, tmp_path: Path, sleeps: list[float]
) -> None:
    slack.post("an old message that is not a reply")  # ts NOW + 1
    later = channel(slack, tmp_path / "slack.json", sleeps, now=NOW + 5)
    assert later.poll() == []
    for _ in range(4):
        slack.post("filler")  # ts NOW + 2 .. NOW + 5
    slack.post("skip")  # NOW + 6: after the cursor
    assert [r.text for r in later.poll()] == ["skip"]


def test_poll_reads_every_page_in_order(slack: FakeSlack, bot: SlackChannel) -> None:
    ids = bot.send(["Digest"])
    for n in range(5):
        slack.post(f"thread {n}", thread_ts=ids[0])
        slack.post(f"channel {n}")
    texts = [r.text for r in bot.poll()]
    assert texts == [f"{where} {n}" for n in range(5) for where in ("thread", "channel")]
    assert slack.calls.count("conversations.history") >= 3  # pages of two


def test_earlier_threads_are_still_read_after_an_answer_starts_a_new_one(
    slack: FakeSlack, bot: SlackChannel
) -> None:
    digest = bot.send(["Digest"])[0]
    slack.post("show 2", thread_ts=digest)
    assert [r.text for r in bot.poll()] == ["show 2"]
    bot.send(["Item 2 in full"])  # the answer starts its own thread
    slack.post("deploy all", thread_ts=digest)
    assert [r.text for r in bot.poll()] == ["deploy all"]


def test_a_reply_also_sent_to_the_channel_is_returned_once(
    slack: FakeSlack, bot: SlackChannel
) -> None:
    digest = bot.send(["Digest"])[0]
    slack.post("skip", thread_ts=digest, subtype="thread_broadcast")
    assert [r.text for r in bot.poll()] == ["skip"]
    assert bot.poll() == []


def test_a_failed_poll_loses_no_reply(slack: FakeSlack, bot: SlackChannel) -> None:
    digest = bot.send(["Digest"])[0]
    slack.post("deploy all", thread_ts=digest)
    slack.errors.extend([(500, {"ok": False, "error": "fatal_error"}, {})] * 3)
    with pytest.raises(ChannelError, match="HTTP 500"):
        bot.poll()
    assert [r.text for r in bot.poll()] == ["deploy all"]


def test_a_deleted_thread_is_forgotten(slack: FakeSlack, bot: SlackChannel) -> None:
    digest = bot.send(["Digest"])[0]
    slack.messages = [m for m in slack.messages if m["ts"] != digest]
    slack.post("deploy all")
    assert [r.text for r in bot.poll()] == ["deploy all"]
    assert json.loads(bot.state_path.read_text())["threads"] == []


def test_a_rate_limit_is_waited_out(
    slack: FakeSlack, bot: SlackChannel, sleeps: list[float]
) -> None:
    slack.errors.append((429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "2"}))
    assert len(bot.send(["Digest"])) == 1
    assert sleeps == [2.0]


# --- errors ------------------------------------------------------------------------------


def test_a_bad_token_is_reported_without_the_token(
    slack: FakeSlack, tmp_path: Path, sleeps: list[float]
) -> None:
    wrong = "xoxb-9999999999-8888888888888-WrongWrongWrongWrong00"
    with pytest.raises(ChannelError) as caught:
        channel(slack, tmp_path / "s.json", sleeps, token=wrong).send(["Digest"])
    text = error_text(caught.value)
    assert "invalid_auth" in text
    assert "SLACK_BOT_TOKEN" in text
    assert wrong not in text
    assert BOT_TOKEN not in text


def test_a_wrong_channel_says_to_invite_the_app(slack: FakeSlack, bot: SlackChannel) -> None:
    bot.channel_id = "C0NOTHERE"
    with pytest.raises(ChannelError, match="channel_not_found; check channel_id"):
        bot.send(["Digest"])


def test_an_unreachable_server_is_one_clear_error(tmp_path: Path, sleeps: list[float]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    bot = SlackChannel(
        BOT_TOKEN,
        CHANNEL,
        base_url=f"http://127.0.0.1:{port}/api",
        state_path=tmp_path / "s.json",
        retry=FAST,
        sleep=sleeps.append,
    )
    with pytest.raises(ChannelError, match="cannot reach") as caught:
        bot.send(["Digest"])
    assert BOT_TOKEN not in error_text(caught.value)
    assert len(sleeps) == 2
    assert BOT_TOKEN not in repr(bot)


# --- webhooks ----------------------------------------------------------------------------


def test_a_signed_message_event_is_a_reply(bot: SlackChannel) -> None:
    headers, body = signed(event("deploy all"))
    [reply] = bot.parse_webhook(headers, body)
    assert (reply.sender, reply.text, reply.chat) == (OWNER, "deploy all", CHANNEL)


def test_a_forged_or_altered_call_is_rejected(bot: SlackChannel) -> None:
    headers, body = signed(event("skip"), secret="not-the-signing-secret")
    with pytest.raises(WebhookRejected, match="signature is wrong"):
        bot.parse_webhook(headers, body)
    headers, body = signed(event("skip"))
    with pytest.raises(WebhookRejected, match="signature is wrong"):
        bot.parse_webhook(headers, body.replace(b"skip", b"deploy all"))
    with pytest.raises(WebhookRejected, match="missing"):
        bot.parse_webhook({}, body)


@pytest.mark.parametrize("offset", [-360, 360])
def test_a_stale_or_future_timestamp_is_rejected(bot: SlackChannel, offset: int) -> None:
    headers, body = signed(event("deploy all"), at=NOW + offset)
    with pytest.raises(WebhookRejected, match="more than 300 s"):
        bot.parse_webhook(headers, body)


def test_a_replayed_event_is_rejected(bot: SlackChannel) -> None:
    headers, body = signed(event("deploy all", event_id="Ev0042"))
    assert len(bot.parse_webhook(headers, body)) == 1
    with pytest.raises(WebhookRejected, match="replay"):
        bot.parse_webhook(headers, body)
    again, body_again = signed(event("deploy all", event_id="Ev0042"), at=NOW + 1)
    with pytest.raises(WebhookRejected, match="replay"):
        bot.parse_webhook(again, body_again)


def test_url_verification_gives_no_reply_and_its_challenge(bot: SlackChannel) -> None:
    payload = {
        "token": "legacy",
        "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
        "type": "url_verification",
    }
    headers, body = signed(payload)
    assert bot.parse_webhook(headers, body) == []
    assert url_verification_challenge(body) == payload["challenge"]
    assert url_verification_challenge(signed(event("hi"))[1]) is None


def test_events_from_bots_and_other_channels_give_no_reply(bot: SlackChannel) -> None:
    for n, payload in enumerate(
        [
            event("elsewhere", channel_id="C0OTHER"),
            event("from a bot", bot_id="B0OTHER", subtype="bot_message"),
            event("edited", subtype="message_changed"),
            {**event("x"), "event": {"type": "reaction_added", "user": OWNER}},
        ]
    ):
        payload["event_id"] = f"Ev{n}"
        assert bot.parse_webhook(*signed(payload)) == []


def test_without_a_signing_secret_every_call_is_rejected(
    slack: FakeSlack, tmp_path: Path, sleeps: list[float]
) -> None:
    bot = channel(slack, tmp_path / "s.json", sleeps, secret=None)
    with pytest.raises(WebhookRejected, match="SLACK_SIGNING_SECRET"):
        bot.parse_webhook(*signed(event("deploy all")))


def test_rejections_never_show_the_secrets(bot: SlackChannel) -> None:
    headers, body = signed(event("x"), secret="wrong")
    for call in (
        lambda: bot.parse_webhook(headers, body),
        lambda: bot.parse_webhook(*signed(event("x"), at=NOW - 999)),
    ):
        with pytest.raises(WebhookRejected) as caught:
            call()
        assert SIGNING_SECRET not in error_text(caught.value)
        assert BOT_TOKEN not in error_text(caught.value)
