"""Telegram: the digest as bot messages to one chat, replies by polling or webhook.

``send`` calls ``sendMessage`` once a part, as plain text (no ``parse_mode``, so text
derived from traces cannot inject markup; link previews off). Telegram refuses a message
over 4,096 characters as it counts them (UTF-16 units); such a part is refused before
anything is sent. ``poll`` calls ``getUpdates`` with the next offset (the last
``update_id`` + 1) kept in a small JSON file, so a reply is returned once, whichever
process polls; Telegram forgets the updates below that offset. Messages from any chat
other than ``chat_id`` are dropped and logged. Webhook calls carry the ``secret_token``
given to ``setWebhook`` in the ``X-Telegram-Bot-Api-Secret-Token`` header; there is no
signature, so that header is compared in constant time and a channel without a secret
rejects every call.

The bot token is part of every URL: it never appears in an error message, a ``repr``
or httpx's request log (a filter on the ``httpx`` logger masks it).
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import re
import tempfile
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote, urlsplit

from tighten.http import RetryPolicy
from tighten.review.channels.base import ChannelError, Reply, WebhookRejected

if TYPE_CHECKING:
    import httpx

__all__ = ["MESSAGE_LIMIT", "TelegramChannel"]

MESSAGE_LIMIT = 4096
SECRET_HEADER = "x-telegram-bot-api-secret-token"
_PAGE = 100  # getUpdates' largest page
_MAX_PAGES = 20
_SEEN_LIMIT = 1000
_TOKEN_SHAPE = re.compile(r"[0-9]+:[A-Za-z0-9_-]+")
_TOKEN_IN_PATH = re.compile(r"/bot[^/\s]+/")

logger = logging.getLogger(__name__)


class _MaskBotToken(logging.Filter):
    """Masks ``/bot<token>/`` in httpx's "HTTP Request: POST https://…" log lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "/bot" in message:
            record.msg, record.args = _TOKEN_IN_PATH.sub("/bot<token>/", message), None
        return True


_MASK = _MaskBotToken()


def _mask_httpx_log() -> None:
    httpx_logger = logging.getLogger("httpx")
    if _MASK not in httpx_logger.filters:
        httpx_logger.addFilter(_MASK)


def utf16_len(text: str) -> int:
    """The length of ``text`` as Telegram counts it (UTF-16 code units)."""
    return len(text.encode("utf-16-le")) // 2


@dataclass(frozen=True, slots=True)
class _Ok:
    result: Any


@dataclass(frozen=True, slots=True)
class _Retry:
    reason: str
    wait_s: float | None = None


class TelegramChannel:
    """The owner's Telegram chat with the bot (see the module docstring)."""

    name: ClassVar[str] = "telegram"

    def __init__(
        self,
        token: str,
        chat_id: str | int,
        *,
        base_url: str = "https://api.telegram.org",
        state_path: Path,
        webhook_secret: str | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 30,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not _TOKEN_SHAPE.fullmatch(token):
            raise ChannelError(
                "telegram: the bot token does not look like one (`<digits>:<letters>`, "
                "no spaces); copy it again from @BotFather into TELEGRAM_BOT_TOKEN."
            )
        self._token = token
        self.chat_id = str(chat_id)
        self.base_url = base_url.rstrip("/")
        self.state_path = Path(state_path)
        self._webhook_secret = webhook_secret or None
        self._transport = transport
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._seen_updates: OrderedDict[int, None] = OrderedDict()
        self._host = urlsplit(self.base_url).netloc or self.base_url
        _mask_httpx_log()

    def __repr__(self) -> str:
        return f"TelegramChannel(chat_id={self.chat_id!r}, base_url={self.base_url!r})"

    # --- the Channel protocol ------------------------------------------------------------

    def send(self, parts: Sequence[str]) -> list[str]:
        """Send each non-empty part as one message, in order; the message ids."""
        texts = [part for part in parts if part.strip()]
        for number, text in enumerate(texts, 1):
            if utf16_len(text) > MESSAGE_LIMIT:
                raise ChannelError(
                    f"telegram: part {number} is {utf16_len(text)} characters, more than "
                    f"Telegram's {MESSAGE_LIMIT}; split the digest into smaller parts."
                )
        ids = []
        with self._client() as client:
            for text in texts:
                body = {
                    "chat_id": self.chat_id,
                    "text": text,
                    "link_preview_options": {"is_disabled": True},
                }
                message = self._call(client, "sendMessage", body=body)
                ids.append(str(message.get("message_id")) if isinstance(message, dict) else "")
        return ids

    def poll(self) -> list[Reply]:
        """The messages that reached the chat since the last poll, by any process."""
        replies: list[Reply] = []
        with self._client() as client:
            for _ in range(_MAX_PAGES):
                offset = self._load_offset()
                params: dict[str, Any] = {
                    "timeout": 0,
                    "limit": _PAGE,
                    "allowed_updates": json.dumps(["message"]),
                }
                if offset is not None:
                    params["offset"] = offset
                result = self._call(client, "getUpdates", params=params)
                updates = (
                    [u for u in result if isinstance(u, dict)] if isinstance(result, list) else []
                )
                if not updates:
                    break
                ids = [u["update_id"] for u in updates if isinstance(u.get("update_id"), int)]
                if ids:
                    self._save_offset(max(ids) + 1)
                replies += [r for r in map(self._reply, updates) if r is not None]
                if len(updates) < _PAGE:
                    break
        return replies

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[Reply]:
        """The reply in one webhook call (an Update), after checking its secret token."""
        if self._webhook_secret is None:
            raise WebhookRejected(
                "telegram: no webhook secret is configured, so no webhook call is trusted; "
                "set TELEGRAM_WEBHOOK_SECRET and pass it to setWebhook as secret_token."
            )
        given = {k.lower(): v for k, v in headers.items()}.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), self._webhook_secret.encode()):
            raise WebhookRejected("telegram: the webhook secret token is missing or wrong.")
        try:
            update = json.loads(body)
        except ValueError:
            raise WebhookRejected("telegram: the webhook body is not JSON.") from None
        if not isinstance(update, dict) or not isinstance(update.get("update_id"), int):
            raise WebhookRejected("telegram: the webhook body is not a Telegram Update.")
        if update["update_id"] in self._seen_updates:
            return []  # Telegram delivers again when an answer was lost
        self._seen_updates[update["update_id"]] = None
        while len(self._seen_updates) > _SEEN_LIMIT:
            self._seen_updates.popitem(last=False)
        reply = self._reply(update)
        return [reply] if reply else []

    # --- updates -------------------------------------------------------------------------

    def _reply(self, update: Mapping[str, Any]) -> Reply | None:
        """The reply in an update, or ``None`` (not a text message, or another chat)."""
        message = update.get("message")
        if not isinstance(message, dict):
            return None
        chat = _object(message.get("chat"))
        if not self._is_our_chat(chat):
            logger.warning(
                "telegram: dropped update %s from chat %s (the channel is for chat %s)",
                update.get("update_id"), chat.get("id"), self.chat_id,
            )  # fmt: skip
            return None
        sender = _object(message.get("from"))
        text = message.get("text")
        if not isinstance(text, str) or "id" not in sender or sender.get("is_bot"):
            return None
        date = message.get("date")
        received = datetime.fromtimestamp(date, UTC) if isinstance(date, int) else None
        return Reply(
            channel=self.name,
            sender=str(sender["id"]),
            text=text,
            received_at=received or datetime.now(UTC),
            message_id=str(message.get("message_id")),
            chat=str(chat.get("id")),
        )

    def _is_our_chat(self, chat: Mapping[str, Any]) -> bool:
        if self.chat_id.startswith("@"):
            return f"@{chat.get('username')}".lower() == self.chat_id.lower()
        return str(chat.get("id")) == self.chat_id

    # --- the state file ------------------------------------------------------------------

    def _load_offset(self) -> int | None:
        try:
            state = json.loads(self.state_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise ChannelError(
                f"telegram: cannot read the polling state {self.state_path} ({exc}); "
                "delete it to start again from the oldest update Telegram still holds."
            ) from None
        offset = state.get("offset") if isinstance(state, dict) else None
        return offset if isinstance(offset, int) else None

    def _save_offset(self, offset: int) -> None:
        """Write the state file atomically: a reader sees the old or the new offset."""
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.state_path.parent, prefix=".telegram-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump({"offset": offset}, out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.state_path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    # --- HTTP ----------------------------------------------------------------------------

    def _client(self) -> httpx.Client:
        import httpx

        return httpx.Client(timeout=self.timeout, transport=self._transport)

    def _call(
        self,
        client: httpx.Client,
        method: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> Any:
        """Call a Bot API method and return its ``result``, retrying as ``retry`` says."""
        attempt = 0
        while True:
            outcome = self._attempt(client, method, params, body)
            if isinstance(outcome, _Ok):
                return outcome.result
            if outcome.wait_s is not None and outcome.wait_s > self.retry.max_wait_s:
                raise ChannelError(
                    f"telegram: {method}: {outcome.reason}; Telegram asks to wait "
                    f"{outcome.wait_s:.0f} s, more than the {self.retry.max_wait_s:.0f} s "
                    "allowed. Try again later."
                )
            if attempt >= self.retry.max_retries:
                raise ChannelError(f"telegram: {method}: {outcome.reason} ({attempt + 1} tries).")
            wait = outcome.wait_s if outcome.wait_s is not None else self.retry.backoff(attempt)
            self._sleep(wait)
            attempt += 1

    def _attempt(
        self,
        client: httpx.Client,
        method: str,
        params: Mapping[str, Any] | None,
        body: Mapping[str, Any] | None,
    ) -> _Ok | _Retry:
        import httpx

        url = f"{self.base_url}/bot{self._token}/{method}"
        try:
            if body is None:
                response = client.get(url, params=dict(params or {}))
            else:
                response = client.post(url, json=dict(body))
        except httpx.TimeoutException:
            return _Retry(f"no answer from {self._host} within {self.timeout:g} s")
        except httpx.TransportError as exc:
            detail = self._redact(" ".join(str(exc).split())[:80])
            return _Retry(f"cannot reach {self._host} ({type(exc).__name__}: {detail})")
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise ChannelError(f"telegram: {method} failed: {type(exc).__name__}.") from None
        return self._outcome(method, response)

    def _outcome(self, method: str, response: httpx.Response) -> _Ok | _Retry:
        try:
            answer = response.json()
        except ValueError:
            answer = None
        answer = answer if isinstance(answer, dict) else {}
        status = response.status_code
        said = self._redact(str(answer.get("description") or response.reason_phrase)).rstrip(".")
        if status == 429:
            parameters = answer.get("parameters")
            wait = parameters.get("retry_after") if isinstance(parameters, dict) else None
            return _Retry(f"rate limited ({said})", float(wait) if wait is not None else None)
        if status >= 500:
            return _Retry(f"HTTP {status} from {self._host} ({said})")
        if status in (401, 404):
            raise ChannelError(
                f"telegram: {method}: HTTP {status} {said}; check the bot token "
                "(TELEGRAM_BOT_TOKEN, from @BotFather)."
            )
        if status >= 400 or answer.get("ok") is not True:
            raise ChannelError(f"telegram: {method} refused: {said}{_hint(status, said)}")
        return _Ok(answer.get("result"))

    def _redact(self, text: str) -> str:
        for form in {self._token, quote(self._token, safe="")}:
            text = text.replace(form, "<token>")
        return text


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _hint(status: int, description: str) -> str:
    if status == 409:
        return (
            ". A webhook is set for this bot: replies arrive through `tighten serve`, "
            "or call deleteWebhook to poll."
        )
    if "chat not found" in description.lower():
        return ". Check the chat_id and that the owner has sent the bot a message first."
    return "."
