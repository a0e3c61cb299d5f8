"""A generic webhook: the digest POSTed to a URL, replies POSTed back, both signed the
Standard Webhooks way (https://www.standardwebhooks.com).

Every call carries three headers: ``webhook-id`` (unique per message, kept across
retries), ``webhook-timestamp`` (Unix seconds) and ``webhook-signature``:
``v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>``, where the key is the
base64 part of a ``whsec_…`` secret. Several space-separated signatures may be given
(while a secret is rotated); one match is enough.

``send`` POSTs ``{"type": "digest", "parts": [...]}``. ``parse_webhook`` accepts
``{"type": "reply", "sender": ..., "text": ...}`` and rejects a call whose signature is
missing or wrong, whose timestamp is more than five minutes from now (either way), or
whose ``webhook-id`` was seen before. ``poll`` returns nothing: replies only come in.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, ClassVar
from urllib.parse import urlsplit

from tighten.errors import ConfigError
from tighten.http import RetryPolicy, retry_after_s
from tighten.review.channels.base import ChannelError, Reply, WebhookRejected

if TYPE_CHECKING:
    import httpx

__all__ = ["TOLERANCE_S", "WebhookChannel", "sign"]

TOLERANCE_S = 300
SECRET_PREFIX = "whsec_"
_RETRY_STATUS = frozenset({408, 409, 425, 429})


def secret_key(secret: str) -> bytes:
    """The HMAC key in a ``whsec_<base64>`` secret (the prefix is optional)."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if not key:
        raise ConfigError(
            "The webhook secret must be `whsec_` followed by base64, as Standard Webhooks "
            "senders issue it (e.g. `whsec_` + the base64 of 32 random bytes)."
        )
    return key


def sign(key: bytes, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value of one call: ``v1,<base64 HMAC-SHA256>``."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def _matches(key: bytes, webhook_id: str, timestamp: str, body: bytes, header: str) -> bool:
    """Whether one of the space-separated ``v1,`` signatures in ``header`` is right."""
    expected = hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256)
    found = False
    for entry in header.split():
        version, _, value = entry.partition(",")
        if version != "v1":
            continue
        try:
            given = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            continue
        found |= hmac.compare_digest(given, expected.digest())
    return found


class WebhookChannel:
    """Digests to a URL of the owner's choosing, replies from it (see the module
    docstring). ``now`` gives the time in Unix seconds (tests pass a fixed clock)."""

    name: ClassVar[str] = "webhook"

    def __init__(
        self,
        url: str,
        secret: str,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 30,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], float] = time.time,
        max_seen: int = 10_000,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"The webhook url must be an http(s) URL, not {url!r}.")
        self.url = url
        self._key = secret_key(secret)
        self._transport = transport
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._now = now
        self._max_seen = max_seen
        self._seen: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()
        self._host = parts.netloc.rpartition("@")[2]

    def __repr__(self) -> str:
        return f"WebhookChannel(host={self._host!r})"

    # --- the Channel protocol ------------------------------------------------------------

    def send(self, parts: Sequence[str]) -> list[str]:
        """POST the parts as one signed call; its ``webhook-id``."""
        texts = [part for part in parts if part.strip()]
        if not texts:
            return []
        webhook_id = f"msg_{uuid.uuid4().hex}"
        body = json.dumps({"type": "digest", "parts": texts}, ensure_ascii=False).encode()
        import httpx

        with httpx.Client(timeout=self.timeout, transport=self._transport) as client:
            attempt = 0
            while True:
                failure = self._attempt(client, webhook_id, body)
                if failure is None:
                    return [webhook_id]
                reason, wait = failure
                if wait is not None and wait > self.retry.max_wait_s:
                    raise ChannelError(f"webhook: {reason}; the receiver asks to wait too long.")
                if attempt >= self.retry.max_retries:
                    raise ChannelError(f"webhook: {reason} ({attempt + 1} tries).")
                self._sleep(wait if wait is not None else self.retry.backoff(attempt))
                attempt += 1

    def poll(self) -> list[Reply]:
        """Nothing: replies come in through :meth:`parse_webhook`."""
        return []

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[Reply]:
        """The reply in one signed call, after checking signature, age and novelty."""
        webhook_id, timestamp = self._verify(headers, body)
        try:
            doc = json.loads(body)
        except ValueError:
            raise WebhookRejected("webhook: the body is not JSON.") from None
        if not isinstance(doc, dict) or doc.get("type") != "reply":
            return []
        sender, text = doc.get("sender"), doc.get("text")
        if not isinstance(sender, str) or not sender or not isinstance(text, str):
            raise WebhookRejected("webhook: a reply needs a string `sender` and `text`.")
        return [
            Reply(
                channel=self.name,
                sender=sender,
                text=text,
                received_at=datetime.fromtimestamp(timestamp, UTC),
                message_id=webhook_id,
            )
        ]

    # --- signing -------------------------------------------------------------------------

    def _headers(self, webhook_id: str, body: bytes) -> dict[str, str]:
        timestamp = int(self._now())
        return {
            "content-type": "application/json",
            "webhook-id": webhook_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(self._key, webhook_id, timestamp, body),
        }

    def _verify(self, headers: Mapping[str, str], body: bytes) -> tuple[str, int]:
        """The call's id and timestamp, or :class:`WebhookRejected`."""
        lowered = {k.lower(): v for k, v in headers.items()}
        webhook_id = lowered.get("webhook-id", "")
        stamp = lowered.get("webhook-timestamp", "")
        signature = lowered.get("webhook-signature", "")
        if not (webhook_id and stamp and signature):
            raise WebhookRejected("webhook: the webhook-id, -timestamp or -signature is missing.")
        if not stamp.isascii() or not stamp.isdigit():
            raise WebhookRejected("webhook: the webhook-timestamp is not Unix seconds.")
        now = int(self._now())
        if abs(now - int(stamp)) > TOLERANCE_S:
            raise WebhookRejected(
                f"webhook: the timestamp is more than {TOLERANCE_S} s from now "
                "(a replay, or a clock out of sync)."
            )
        if not _matches(self._key, webhook_id, stamp, body, signature):
            raise WebhookRejected("webhook: no valid v1 signature (forged or altered call).")
        with self._lock:
            if webhook_id in self._seen:
                raise WebhookRejected(f"webhook: {webhook_id!r} was already received (replay).")
            self._remember(webhook_id, now)
        return webhook_id, int(stamp)

    def _remember(self, webhook_id: str, now: int) -> None:
        """Keep the ids of the last ``TOLERANCE_S`` (older calls fail on their timestamp),
        at most ``max_seen`` of them."""
        self._seen[webhook_id] = now
        while self._seen and (
            len(self._seen) > self._max_seen
            or next(iter(self._seen.values())) < now - 2 * TOLERANCE_S
        ):
            self._seen.popitem(last=False)

    # --- HTTP ----------------------------------------------------------------------------

    def _attempt(
        self, client: httpx.Client, webhook_id: str, body: bytes
    ) -> tuple[str, float | None] | None:
        """One signed POST: ``None`` when delivered, a retryable failure and how long to
        wait, or :class:`ChannelError`."""
        import httpx

        try:
            response = client.post(self.url, content=body, headers=self._headers(webhook_id, body))
        except httpx.TimeoutException:
            return f"no answer from {self._host} within {self.timeout:g} s", None
        except httpx.TransportError as exc:
            return f"cannot reach {self._host} ({type(exc).__name__})", None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise ChannelError(
                f"webhook: POST to {self._host} failed: {type(exc).__name__}."
            ) from None
        status = response.status_code
        if 200 <= status < 300:
            return None
        if status in _RETRY_STATUS or status >= 500:
            return f"HTTP {status} from {self._host}", retry_after_s(response.headers)
        raise ChannelError(
            f"webhook: {self._host} refused the digest (HTTP {status}); check the url and "
            "that the receiver has the same whsec_ secret."
        )
