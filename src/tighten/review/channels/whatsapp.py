"""WhatsApp, two ways: Meta's Cloud API (official; replies by webhook only) and Green API
(a gateway on the owner's own WhatsApp account; replies by polling or webhook).

:class:`WhatsAppCloudChannel` sends each part with ``POST /{version}/{phone_number_id}/
messages`` as a ``text`` message (link previews off). The Cloud API takes at most 4,096
characters of text, and delivers free-form text only within 24 hours of the owner's last
message to the business number. It has no way to poll: ``poll`` returns nothing and
replies arrive at ``tighten serve``. Meta first checks the webhook with a GET
(:meth:`~WhatsAppCloudChannel.verify_subscription` answers it), then signs every POST with
``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body keyed with the app
secret>``. Only text messages from the owner (``to``) to this ``phone_number_id`` become
replies; a message id seen before (Meta delivers again when an answer is lost) gives none.

:class:`GreenApiChannel` calls ``/waInstance{id}/{method}/{token}``. ``send`` uses
``sendMessage`` (at most 20,000 characters a message). ``poll`` takes notifications from
the instance's queue with ``receiveNotification`` (at most ``max_notifications`` a poll)
and deletes every one it read with ``deleteNotification``, ignored ones included (status
updates, tighten's own outgoing messages, other chats), so the queue never clogs; a reply
is returned only once its notification is deleted. Polling needs an empty ``webhookUrl``
in the instance settings. Webhook calls carry the instance's ``webhookUrlToken`` in the
``Authorization`` header (alone or after ``Bearer``/``Basic``); there is no signature, so
it is compared in constant time and a channel without ``webhook_token`` rejects every call.

Tokens and secrets never appear in an error message, a ``repr`` or httpx's request log.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

from tighten.http import RetryPolicy
from tighten.review.channels._chat_http import (
    ChatHTTP,
    RetryLater,
    SeenIds,
    header,
    json_object,
    json_of,
    matches,
    one_line,
    refuse_long,
    retry_on_status,
    unix_time,
)
from tighten.review.channels.base import ChannelError, Reply, WebhookRejected

if TYPE_CHECKING:
    import httpx

__all__ = ["GREEN_API_LIMIT", "MESSAGE_LIMIT", "GreenApiChannel", "WhatsAppCloudChannel"]

MESSAGE_LIMIT = 4096
GREEN_API_LIMIT = 20_000
SIGNATURE_HEADER = "x-hub-signature-256"
_GRAPH_RATE_LIMITS = frozenset({4, 80007, 130429, 131056})
_GRAPH_HINTS = {
    190: "; the access token is invalid or expired: renew WHATSAPP_ACCESS_TOKEN",
    100: "; check phone_number_id and the owner's number (to)",
    131030: "; the owner's number is not on the app's allowed recipients list",
    131047: "; the owner has not written in 24 hours: free-form text is refused until they do",
}

logger = logging.getLogger(__name__)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


# --- Meta WhatsApp Cloud API -------------------------------------------------------------


class WhatsAppCloudChannel:
    """The owner's WhatsApp number through Meta's Cloud API (see the module docstring)."""

    name: ClassVar[str] = "whatsapp"

    def __init__(
        self,
        access_token: str,
        phone_number_id: str,
        to: str,
        *,
        app_secret: str,
        verify_token: str,
        api_version: str = "v21.0",
        base_url: str = "https://graph.facebook.com",
        transport: httpx.BaseTransport | None = None,
        timeout: float = 30,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not access_token:
            raise ChannelError("whatsapp: the access token is empty; set WHATSAPP_ACCESS_TOKEN.")
        self._token = access_token
        self.phone_number_id = str(phone_number_id)
        self.to = re.sub(r"\D", "", to)
        if not self.to:
            raise ChannelError(
                f"whatsapp: {to!r} is not a phone number; give the owner's number with its "
                "country code (e.g. 15551234567)."
            )
        self._app_secret = app_secret
        self._verify_token = verify_token
        self.url = f"{base_url.rstrip('/')}/{api_version}/{self.phone_number_id}/messages"
        self._http = ChatHTTP(
            "whatsapp", secrets=[access_token, app_secret, verify_token], transport=transport,
            timeout=timeout, retry=retry, sleep=sleep,
        )  # fmt: skip
        self._seen = SeenIds()

    def __repr__(self) -> str:
        return f"WhatsAppCloudChannel(phone_number_id={self.phone_number_id!r}, to={self.to!r})"

    def send(self, parts: Sequence[str]) -> list[str]:
        """Send each non-empty part as one text message, in order; the ``wamid`` ids."""
        texts = [part for part in parts if part.strip()]
        refuse_long("whatsapp", texts, MESSAGE_LIMIT)
        ids = []
        with self._http.client() as client:
            for text in texts:
                body = {
                    "messaging_product": "whatsapp",
                    "recipient_type": "individual",
                    "to": self.to,
                    "type": "text",
                    "text": {"preview_url": False, "body": text},
                }
                answer = self._http.call(
                    client, "POST", self.url, what="send", read=_read_graph, body=body,
                    headers={"authorization": f"Bearer {self._token}"},
                )  # fmt: skip
                messages = answer.get("messages")
                first = messages[0] if isinstance(messages, list) and messages else {}
                ids.append(str(first.get("id", "")) if isinstance(first, dict) else "")
        return ids

    def poll(self) -> list[Reply]:
        """Nothing: the Cloud API only delivers replies by webhook (``tighten serve``)."""
        return []

    def verify_subscription(self, params: Mapping[str, str]) -> str:
        """The ``hub.challenge`` to answer Meta's verification GET with, when
        ``hub.mode`` is ``subscribe`` and ``hub.verify_token`` is ours; else
        :class:`WebhookRejected` (answer 403)."""
        challenge = params.get("hub.challenge", "")
        if params.get("hub.mode") != "subscribe" or not challenge:
            raise WebhookRejected("whatsapp: not a webhook verification request.")
        if not matches(params.get("hub.verify_token", ""), self._verify_token):
            raise WebhookRejected("whatsapp: the verify token is wrong.")
        return challenge

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[Reply]:
        """The owner's text messages in one signed webhook call."""
        digest = hmac.new(self._app_secret.encode(), body, hashlib.sha256).hexdigest()
        if not matches(header(headers, SIGNATURE_HEADER), f"sha256={digest}"):
            raise WebhookRejected(
                "whatsapp: the X-Hub-Signature-256 is missing or wrong (forged or altered "
                "call, or WHATSAPP_APP_SECRET is not this app's secret)."
            )
        payload = json_object("whatsapp", body)
        replies = []
        for value in _message_values(payload):
            number_id = str(_dict(value.get("metadata")).get("phone_number_id"))
            if number_id != self.phone_number_id:
                logger.warning("whatsapp: dropped messages to phone number id %s (the channel "
                               "is for %s)", number_id, self.phone_number_id)  # fmt: skip
                continue
            for message in value.get("messages") or []:
                reply = self._reply(message) if isinstance(message, dict) else None
                if reply is not None and self._seen.first_time(reply.message_id):
                    replies.append(reply)
        return replies

    def _reply(self, message: Mapping[str, Any]) -> Reply | None:
        sender, text = str(message.get("from", "")), _dict(message.get("text")).get("body")
        if sender != self.to:
            logger.warning("whatsapp: dropped a message from %s (not the owner)", sender)
            return None
        if message.get("type") != "text" or not isinstance(text, str):
            return None
        message_id = message.get("id")
        return Reply(
            channel=self.name, sender=sender, text=text,
            received_at=unix_time(message.get("timestamp")),
            message_id=str(message_id) if message_id is not None else None, chat=sender,
        )  # fmt: skip


def _message_values(payload: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``value`` of every ``messages`` change in a webhook payload."""
    values = []
    for entry in payload.get("entry") or []:
        changes = entry.get("changes") if isinstance(entry, dict) else None
        for change in changes if isinstance(changes, list) else []:
            if isinstance(change, dict) and change.get("field", "messages") == "messages":
                value = change.get("value")
                if isinstance(value, dict):
                    values.append(value)
    return values


def _read_graph(response: httpx.Response) -> dict[str, Any]:
    """A Graph API answer, or the error it carries as a retry or :class:`ChannelError`."""
    doc, status = _dict(json_of(response)), response.status_code
    error = _dict(doc.get("error"))
    if 200 <= status < 300 and not error:
        return doc
    message, code = one_line(str(error.get("message") or response.reason_phrase)), error.get("code")
    if code in _GRAPH_RATE_LIMITS:
        raise RetryLater(f"rate limited ({message})")
    retry_on_status(response, message)
    hint = _GRAPH_HINTS.get(code, "") if isinstance(code, int) else ""
    raise ChannelError(
        f"whatsapp: the Cloud API refused the message (HTTP {status}, code {code}): "
        f"{message.rstrip('.')}{hint}."
    )


# --- Green API ---------------------------------------------------------------------------


class GreenApiChannel:
    """The owner's WhatsApp chat through a Green API instance (see the module docstring)."""

    name: ClassVar[str] = "green-api"

    def __init__(
        self,
        instance_id: str | int,
        api_token: str,
        chat_id: str,
        *,
        base_url: str = "https://api.green-api.com",
        webhook_token: str | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 30,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        receive_timeout: int = 5,
        max_notifications: int = 20,
    ) -> None:
        if not api_token:
            raise ChannelError("green-api: the API token is empty; set GREEN_API_TOKEN.")
        self.instance_id = str(instance_id)
        self._token = api_token
        self.chat_id = chat_id if "@" in chat_id else re.sub(r"\D", "", chat_id) + "@c.us"
        self.base_url = base_url.rstrip("/")
        self._webhook_token = webhook_token or None
        self.receive_timeout = min(60, max(5, receive_timeout))
        self.max_notifications = max_notifications
        self._http = ChatHTTP(
            "green-api", secrets=[api_token, webhook_token or ""], transport=transport,
            timeout=max(timeout, self.receive_timeout + 10), retry=retry, sleep=sleep,
        )  # fmt: skip
        self._seen = SeenIds()

    def __repr__(self) -> str:
        return f"GreenApiChannel(instance_id={self.instance_id!r}, chat_id={self.chat_id!r})"

    def send(self, parts: Sequence[str]) -> list[str]:
        """Send each non-empty part as one message, in order; the ``idMessage`` ids."""
        texts = [part for part in parts if part.strip()]
        refuse_long("green-api", texts, GREEN_API_LIMIT)
        ids = []
        with self._http.client() as client:
            for text in texts:
                body = {"chatId": self.chat_id, "message": text, "linkPreview": False}
                answer = self._call(client, "POST", "sendMessage", body=body)
                message_id = answer.get("idMessage") if isinstance(answer, dict) else None
                ids.append(str(message_id or ""))
        return ids

    def poll(self) -> list[Reply]:
        """The owner's messages waiting in the instance's queue, each deleted from it."""
        replies: list[Reply] = []
        with self._http.client() as client:
            for _ in range(self.max_notifications):
                try:
                    done = self._take_one(client, replies)
                except ChannelError as exc:
                    if not replies:
                        raise
                    logger.warning("green-api: stopped polling early: %s", exc)
                    break
                if done:
                    break
        return replies

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[Reply]:
        """The reply in one webhook call, after checking its Authorization token."""
        if self._webhook_token is None:
            raise WebhookRejected(
                "green-api: no webhook token is configured, so no webhook call is trusted; "
                "set webhookUrlToken on the instance and pass the same webhook_token."
            )
        given = header(headers, "authorization").strip()
        scheme, _, credential = given.partition(" ")
        if scheme.lower() in ("bearer", "basic") and credential:
            given = credential.strip()
        if not matches(given, self._webhook_token):
            raise WebhookRejected("green-api: the Authorization token is missing or wrong.")
        reply = self._reply(json_object("green-api", body))
        if reply is None or not self._seen.first_time(reply.message_id):
            return []
        return [reply]

    # --- notifications -------------------------------------------------------------------

    def _take_one(self, client: httpx.Client, replies: list[Reply]) -> bool:
        """Read, delete and keep (when it is a reply) one notification; ``True`` when the
        queue is empty."""
        params = {"receiveTimeout": self.receive_timeout}
        notification = self._call(client, "GET", "receiveNotification", params=params)
        if not isinstance(notification, dict):
            return True
        receipt = notification.get("receiptId")
        if not isinstance(receipt, int) or isinstance(receipt, bool):
            raise ChannelError("green-api: receiveNotification answered without a receiptId.")
        body = notification.get("body")
        reply = self._reply(body) if isinstance(body, dict) else None
        self._call(client, "DELETE", "deleteNotification", f"/{receipt}")
        if reply is not None and self._seen.first_time(reply.message_id):
            replies.append(reply)
        return False

    def _reply(self, body: Mapping[str, Any]) -> Reply | None:
        """The reply in an incoming-message notification; ``None`` for anything else."""
        if body.get("typeWebhook") != "incomingMessageReceived":
            return None  # outgoing* (our own messages), statuses, state changes
        instance = str(_dict(body.get("instanceData")).get("idInstance", self.instance_id))
        sender = _dict(body.get("senderData"))
        if instance != self.instance_id or sender.get("chatId") != self.chat_id:
            logger.warning("green-api: dropped message %s from chat %s of instance %s (the "
                           "channel is for %s of %s)", body.get("idMessage"), sender.get("chatId"),
                           instance, self.chat_id, self.instance_id)  # fmt: skip
            return None
        text = _text_of(body.get("messageData"))
        if text is None:
            return None
        return Reply(
            channel=self.name,
            sender=str(sender.get("sender") or sender.get("chatId")),
            text=text,
            received_at=unix_time(body.get("timestamp")),
            message_id=str(body.get("idMessage")) if body.get("idMessage") else None,
            chat=self.chat_id,
        )

    # --- HTTP ----------------------------------------------------------------------------

    def _call(
        self, client: httpx.Client, verb: str, method: str, suffix: str = "", **request: Any
    ) -> Any:
        url = f"{self.base_url}/waInstance{self.instance_id}/{method}/{self._token}{suffix}"
        read = partial(_read_green, method)
        return self._http.call(client, verb, url, what=method, read=read, **request)


_TEXT_FIELDS = {  # typeMessage -> where its text is
    "textMessage": ("textMessageData", "textMessage"),
    "extendedTextMessage": ("extendedTextMessageData", "text"),
    "quotedMessage": ("extendedTextMessageData", "text"),
}


def _text_of(data: Any) -> str | None:
    """The text of a Green API ``messageData`` (plain, extended or quoting text)."""
    data = _dict(data)
    where = _TEXT_FIELDS.get(str(data.get("typeMessage")))
    text = _dict(data.get(where[0])).get(where[1]) if where else None
    return text if isinstance(text, str) else None


def _read_green(method: str, response: httpx.Response) -> Any:
    """A Green API answer (``None`` for an empty queue), or the failure it reports."""
    status = response.status_code
    said = one_line(response.text or response.reason_phrase or f"HTTP {status}", 120)
    retry_on_status(response, said)
    if status in (401, 403):
        raise ChannelError(
            f"green-api: {method}: HTTP {status}; check the instance id and GREEN_API_TOKEN "
            "(apiTokenInstance), and that the instance is authorized."
        )
    if status == 466:
        raise ChannelError(f"green-api: {method}: the instance's quota is used up ({said}).")
    if status >= 400:
        raise ChannelError(f"green-api: {method} refused: HTTP {status} ({said}).")
    return json_of(response)
