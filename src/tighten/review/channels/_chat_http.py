"""What the HTTP chat channels share (Slack, the WhatsApp Cloud API, Green API).

:class:`ChatHTTP` sends one request at a time through ``httpx`` and hands the response to
a service-specific ``read`` function, which returns the useful part of the answer, raises
:class:`RetryLater` for a failure worth another try, or raises :class:`ChannelError`.
Timeouts, connection errors, HTTP 429 and 5xx are retried as a
:class:`~tighten.http.RetryPolicy` says (``Retry-After`` honoured); what is left is one
:class:`ChannelError` with a one-line reason.

Secrets never leave this module in text: every error message is redacted (the secret and
its URL-quoted form become ``<token>``), no exception is chained to an ``httpx`` error
(whose request may carry the secret), and a filter on the ``httpx`` logger masks the
secrets in its "HTTP Request: GET https://…" lines (Green API puts its token in the path).

Also here, for the same channels: webhook helpers (:func:`header`, :func:`matches` for
constant-time comparison, :func:`json_object`, :class:`SeenIds` against duplicates), the
part-length check (:func:`refuse_long`) and a small JSON state file (:func:`load_state`,
:func:`save_state`, written atomically).
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from tighten.http import RetryPolicy, retry_after_s
from tighten.http import one_line as _one_line
from tighten.review.channels.base import ChannelError, WebhookRejected

if TYPE_CHECKING:
    import httpx

__all__ = [
    "ChatHTTP",
    "RetryLater",
    "SeenIds",
    "header",
    "json_object",
    "json_of",
    "load_state",
    "matches",
    "one_line",
    "refuse_long",
    "retry_on_status",
    "save_state",
    "unix_time",
]


class RetryLater(Exception):
    """A failure worth another try; ``wait_s`` is how long the service asked to wait.
    Raised by ``read`` functions and caught by :meth:`ChatHTTP.call`: it never escapes."""

    def __init__(self, reason: str, wait_s: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.wait_s = wait_s


def one_line(text: str, limit: int = 160) -> str:
    """``text`` on one line, cut to ``limit`` characters (160 for chat errors)."""
    return _one_line(str(text), limit)


def json_of(response: httpx.Response) -> Any:
    """The JSON of a response, or ``None`` when it is not JSON."""
    try:
        return response.json()
    except ValueError:
        return None


def header(headers: Mapping[str, str], name: str) -> str:
    """A header's value, whatever the case of its name; empty when absent."""
    wanted = name.lower()
    return next((value for key, value in headers.items() if key.lower() == wanted), "")


def matches(given: str, expected: str | None) -> bool:
    """Whether ``given`` is ``expected``, compared in constant time; never when nothing is
    expected."""
    if not expected:
        return False
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode())


def refuse_long(service: str, texts: Sequence[str], limit: int) -> None:
    """Raise :class:`ChannelError` when a part is longer than the service takes."""
    for number, text in enumerate(texts, 1):
        if len(text) > limit:
            raise ChannelError(
                f"{service}: part {number} is {len(text)} characters, more than the {limit} "
                "a message may hold; split the digest into smaller parts."
            )


def json_object(service: str, body: bytes) -> dict[str, Any]:
    """A webhook body as a JSON object, or :class:`WebhookRejected`."""
    try:
        payload = json.loads(body)
    except ValueError:
        raise WebhookRejected(f"{service}: the webhook body is not JSON.") from None
    if not isinstance(payload, dict):
        raise WebhookRejected(f"{service}: the webhook body is not a JSON object.")
    return payload


def unix_time(value: Any) -> datetime:
    """Unix seconds (a number or its digits) as a UTC datetime; now when it is neither."""
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    return datetime.now(UTC)


class SeenIds:
    """The last ``limit`` ids met (webhook deliveries, messages), thread-safe."""

    def __init__(self, limit: int = 10_000) -> None:
        self.limit = limit
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def first_time(self, key: str | None) -> bool:
        """Whether ``key`` is new (no key always is); it is remembered either way."""
        if key is None:
            return True
        with self._lock:
            if key in self._ids:
                return False
            self._ids[key] = None
            while len(self._ids) > self.limit:
                self._ids.popitem(last=False)
            return True


def load_state(service: str, path: Path) -> dict[str, Any]:
    """A channel's small JSON state file; empty when there is none yet."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ChannelError(
            f"{service}: cannot read the polling state {path} ({one_line(str(exc), 80)}); "
            "delete it to start again."
        ) from None
    return doc if isinstance(doc, dict) else {}


def save_state(path: Path, doc: Mapping[str, Any]) -> None:
    """Write a state file atomically: a reader sees the old or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(doc, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class _MaskSecrets(logging.Filter):
    """Replaces known secrets with ``<token>`` in the records it sees."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = message
        for secret in self.secrets:
            masked = masked.replace(secret, "<token>")
        if masked != message:
            record.msg, record.args = masked, None
        return True


_MASK = _MaskSecrets()


def _mask_in_httpx_log(secrets: Iterable[str]) -> None:
    _MASK.secrets.update(secrets)
    httpx_logger = logging.getLogger("httpx")
    if _MASK not in httpx_logger.filters:
        httpx_logger.addFilter(_MASK)


class ChatHTTP:
    """Requests to one chat service, with retries and redacted one-line errors."""

    def __init__(
        self,
        service: str,
        *,
        secrets: Iterable[str],
        transport: httpx.BaseTransport | None,
        timeout: float,
        retry: RetryPolicy | None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.service = service
        forms = {form for s in secrets if s for form in (s, quote(s, safe=""))}
        self._secrets = sorted(forms, key=len, reverse=True)
        self._transport = transport
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        _mask_in_httpx_log(self._secrets)

    def client(self) -> httpx.Client:
        """A new ``httpx`` client; use it in a ``with`` block."""
        import httpx

        return httpx.Client(timeout=self.timeout, transport=self._transport)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "<token>")
        return text

    def call(
        self,
        client: httpx.Client,
        verb: str,
        url: str,
        *,
        what: str,
        read: Callable[[httpx.Response], Any],
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """Send the request (``what`` names it in errors) until ``read`` accepts the
        answer or the retries run out."""
        attempt = 0
        while True:
            sent = self._send(client, verb, url, params, body, headers)
            if isinstance(sent, RetryLater):
                failure = sent
            else:
                try:
                    return read(sent)
                except RetryLater as later:
                    failure = later
                except ChannelError as exc:
                    exc.args = tuple(self.redact(str(arg)) for arg in exc.args)
                    raise
            self._wait_or_fail(what, failure, attempt)
            attempt += 1

    def _wait_or_fail(self, what: str, failure: RetryLater, attempt: int) -> None:
        reason = self.redact(failure.reason)
        if failure.wait_s is not None and failure.wait_s > self.retry.max_wait_s:
            raise ChannelError(
                f"{self.service}: {what}: {reason}; the service asks to wait "
                f"{failure.wait_s:.0f} s, more than the {self.retry.max_wait_s:.0f} s "
                "allowed. Try again later."
            )
        if attempt >= self.retry.max_retries:
            raise ChannelError(f"{self.service}: {what}: {reason} ({attempt + 1} tries).")
        wait = failure.wait_s if failure.wait_s is not None else self.retry.backoff(attempt)
        self._sleep(wait)

    def _send(
        self,
        client: httpx.Client,
        verb: str,
        url: str,
        params: Mapping[str, Any] | None,
        body: Mapping[str, Any] | None,
        headers: Mapping[str, str] | None,
    ) -> httpx.Response | RetryLater:
        import httpx

        host = urlsplit(url).netloc
        try:
            return client.request(
                verb,
                url,
                params=dict(params) if params else None,
                json=dict(body) if body is not None else None,
                headers=dict(headers or {}),
            )
        except httpx.TimeoutException:
            return RetryLater(f"no answer from {host} within {self.timeout:g} s")
        except httpx.TransportError as exc:
            detail = one_line(self.redact(str(exc)), 80)
            return RetryLater(f"cannot reach {host} ({type(exc).__name__}: {detail})")
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            kind = type(exc).__name__
            raise ChannelError(f"{self.service}: request to {host} failed: {kind}.") from None


def retry_on_status(response: httpx.Response, said: str) -> None:
    """Raise :class:`RetryLater` for HTTP 429 and 5xx answers."""
    status = response.status_code
    if status == 429:
        raise RetryLater(f"rate limited ({said})", retry_after_s(response.headers))
    if status >= 500:
        raise RetryLater(f"HTTP {status} ({said})", retry_after_s(response.headers))
