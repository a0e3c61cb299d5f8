"""Local HTTP servers that speak what the channels talk to.

:class:`FakeTelegram` is the Telegram Bot API (``/bot<token>/METHOD``, ``{ok, result}``
answers, ``{ok: false, error_code, description, parameters}`` errors) with the behaviour
the channel relies on: ``getUpdates`` forgets the updates below ``offset``, a wrong token
gets 401, and a rate limit or server error can be scripted. :class:`WebhookReceiver`
checks Standard Webhooks signatures with its own code (not the channel's) and keeps the
deliveries it accepted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.local_server import FakeHTTPServer, LocalServer

BOT_TOKEN = "123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11"
OWNER_CHAT = 424242
OWNER = 777


class _Handler(BaseHTTPRequestHandler):
    server: FakeHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, doc: Any) -> None:
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("content-length", "0")))


# --- Telegram ----------------------------------------------------------------------------


class FakeTelegram(LocalServer):
    """``with FakeTelegram() as tg:`` — queue updates with :meth:`message`; what the bot
    sent is in ``sent``; ``errors`` are answered (one per request) before anything else."""

    def __init__(self, token: str = BOT_TOKEN) -> None:
        self.token = token
        self.sent: list[dict[str, Any]] = []
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.errors: deque[tuple[int, dict[str, Any]]] = deque()
        self._updates: list[dict[str, Any]] = []
        self._next_update = 1000
        self._next_message = 1
        self._lock = threading.Lock()
        super().__init__(_TelegramHandler)

    def message(
        self, text: str, *, chat_id: int = OWNER_CHAT, sender: int = OWNER
    ) -> dict[str, Any]:
        """Queue (and return) an Update carrying a text message, as Telegram shapes it."""
        with self._lock:
            self._next_update += 1
            update = {
                "update_id": self._next_update,
                "message": {
                    "message_id": self._next_message + 500,
                    "from": {"id": sender, "is_bot": False, "first_name": "Owner"},
                    "chat": {"id": chat_id, "type": "private"},
                    "date": int(time.time()),
                    "text": text,
                },
            }
            self._updates.append(update)
            return update

    def rate_limit_once(self, retry_after: int = 3) -> None:
        self.errors.append(
            (429, {"description": f"Too Many Requests: retry after {retry_after}",
                   "parameters": {"retry_after": retry_after}})
        )  # fmt: skip

    def fail(self, status: int, description: str, times: int = 1) -> None:
        self.errors.extend([(status, {"description": description})] * times)

    def call(self, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.calls.append((method, params))
            if self.errors:
                status, extra = self.errors.popleft()
                return status, {"ok": False, "error_code": status, **extra}
            if method == "sendMessage":
                return self._send_message(params)
            if method == "getUpdates":
                return self._get_updates(params)
            return 404, {"ok": False, "error_code": 404, "description": "Not Found"}

    def _send_message(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            return _bad("Bad Request: message text is empty")
        if len(text.encode("utf-16-le")) // 2 > 4096:
            return _bad("Bad Request: message is too long")
        if str(params.get("chat_id")) != str(OWNER_CHAT):
            return _bad("Bad Request: chat not found")
        if "parse_mode" in params:
            self.problems.append("parse_mode was set: trace text could inject markup")
        message_id = self._next_message
        self._next_message += 1
        self.sent.append(params)
        chat = {"id": OWNER_CHAT, "type": "private"}
        result = {"message_id": message_id, "date": int(time.time()), "chat": chat, "text": text}
        return 200, {"ok": True, "result": result}

    def _get_updates(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        allowed = json.loads(params.get("allowed_updates", "null"))
        if allowed is not None and allowed != ["message"]:
            self.problems.append(f"unexpected allowed_updates {allowed!r}")
        if "offset" in params:  # Telegram forgets the updates it was told were handled
            offset = int(params["offset"])
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        limit = int(params.get("limit", 100))
        return 200, {"ok": True, "result": self._updates[:limit]}


def _bad(description: str) -> tuple[int, dict[str, Any]]:
    return 400, {"ok": False, "error_code": 400, "description": description}


class _TelegramHandler(_Handler):
    def do_GET(self) -> None:
        query = parse_qs(urlsplit(self.path).query)
        self._route({k: v[-1] for k, v in query.items()})

    def do_POST(self) -> None:
        raw = self._body()
        if not self.headers.get("content-type", "").startswith("application/json"):
            self.server.fake.problems.append("POST without a JSON body")
        self._route(json.loads(raw or b"{}"))

    def _route(self, params: dict[str, Any]) -> None:
        fake: FakeTelegram = self.server.fake
        path = urlsplit(self.path).path
        prefix, _, method = path.rpartition("/")
        if prefix != f"/bot{fake.token}":
            return self._send(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
        self._send(*fake.call(method, params))


# --- Standard Webhooks receiver ----------------------------------------------------------


@dataclass
class Delivery:
    webhook_id: str
    timestamp: int
    body: dict[str, Any]


class WebhookReceiver(LocalServer):
    """Accepts POSTs signed with ``secret`` (204) and keeps them in ``deliveries``;
    answers 401 to a bad signature; ``statuses`` scripts answers before that."""

    def __init__(self, secret: str) -> None:
        self.key = base64.b64decode(secret.removeprefix("whsec_"))
        self.deliveries: list[Delivery] = []
        self.attempts: list[dict[str, str]] = []
        self.statuses: deque[int] = deque()
        super().__init__(_ReceiverHandler)

    def verify(self, headers: dict[str, str], raw: bytes) -> bool:
        msg_id, stamp = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "")
        signed = msg_id.encode() + b"." + stamp.encode() + b"." + raw
        expected = base64.b64encode(hmac.new(self.key, signed, hashlib.sha256).digest())
        given = [s.split(",", 1)[1].encode() for s in headers.get("webhook-signature", "").split()]
        fresh = stamp.isdigit() and abs(time.time() - int(stamp)) <= 300
        return fresh and any(hmac.compare_digest(expected, g) for g in given)


class _ReceiverHandler(_Handler):
    def do_POST(self) -> None:
        fake: WebhookReceiver = self.server.fake
        raw = self._body()
        headers = {k.lower(): v for k, v in self.headers.items()}
        fake.attempts.append(headers)
        if fake.statuses:
            return self._send(fake.statuses.popleft(), {"error": "scripted"})
        if not fake.verify(headers, raw):
            return self._send(401, {"error": "bad signature"})
        stamp = int(headers["webhook-timestamp"])
        fake.deliveries.append(Delivery(headers["webhook-id"], stamp, json.loads(raw)))
        self.send_response(204)
        self.end_headers()
