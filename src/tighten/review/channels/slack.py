"""Slack: the digest as a thread in one channel, replies by polling or the Events API.

``send`` posts each part with ``chat.postMessage`` as standard markdown (the
``markdown_text`` argument: the digest for Slack is rendered as markdown; link unfurling
off). The first part starts a thread and the others reply in it. Slack takes at most
12,000 characters of markdown a message; a longer part is refused before anything is
sent. Slack reports most errors with HTTP 200 and ``{"ok": false, "error": ...}``, so
every answer's ``ok`` is checked.

``poll`` reads what is newer than cursors kept in a small JSON file (``state_path``): the
replies in the threads tighten started in the last 7 days (the 10 newest; every ``send``
starts one, answers to the owner included) with ``conversations.replies``, and the
channel's top-level messages with ``conversations.history``. Messages from bots
(tighten's own included) and system messages (joins, edits) are skipped. A first poll
before anything was sent starts the cursor at "now": older history is never taken for
replies. Cursors are saved only when the whole poll succeeded, so a failed poll loses
nothing and a reply is returned once. The app needs the ``chat:write`` and
``channels:history`` (private channels: ``groups:history``) bot scopes.

``parse_webhook`` takes Events API calls. Each must carry ``X-Slack-Request-Timestamp``
within 5 minutes of now and ``X-Slack-Signature: v0=<hex HMAC-SHA256 of
"v0:{timestamp}:{raw body}" keyed with the signing secret>``; an ``event_id`` seen before
is rejected as a replay (Slack's own retries of a call answered late are rejected too,
harmlessly). A ``message`` event in the channel becomes a reply. A ``url_verification``
call gives no reply: once ``parse_webhook`` has accepted it, the caller answers Slack with
its challenge (:func:`url_verification_challenge`).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from tighten.http import RetryPolicy
from tighten.review.channels._chat_http import (
    ChatHTTP,
    SeenIds,
    header,
    json_object,
    json_of,
    load_state,
    matches,
    one_line,
    refuse_long,
    retry_on_status,
    save_state,
)
from tighten.review.channels.base import ChannelError, Reply, WebhookRejected

if TYPE_CHECKING:
    import httpx

__all__ = ["MESSAGE_LIMIT", "SlackChannel", "SlackError", "sign", "url_verification_challenge"]

MESSAGE_LIMIT = 12_000
TOLERANCE_S = 300
_PAGE = 100
_MAX_PAGES = 10
_MAX_THREADS = 10
_THREAD_AGE_S = 7 * 24 * 3600
_USER_SUBTYPES = frozenset({None, "thread_broadcast", "file_share"})
_AUTH_ERRORS = frozenset(
    {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"}
)

logger = logging.getLogger(__name__)


class SlackError(ChannelError):
    """Slack refused a call (``ok: false``); ``error`` is Slack's error code."""

    def __init__(self, message: str, error: str) -> None:
        super().__init__(message)
        self.error = error


def sign(signing_secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Slack-Signature`` of a call: ``v0=`` and the hex HMAC-SHA256 of
    ``v0:{timestamp}:{body}``."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()


def url_verification_challenge(body: bytes) -> str | None:
    """The ``challenge`` of a ``url_verification`` call (answer it as the response body),
    ``None`` for any other body. Call it only after ``parse_webhook`` accepted ``body``."""
    try:
        payload = json_object("slack", body)
    except WebhookRejected:
        return None
    challenge = payload.get("challenge") if payload.get("type") == "url_verification" else None
    return challenge if isinstance(challenge, str) else None


def _ts(value: Any) -> Decimal | None:
    """A Slack ``ts`` ("1700000000.000100") as a number, ``None`` if it is not one."""
    try:
        number = Decimal(value) if isinstance(value, str) else None
    except InvalidOperation:
        return None
    return number if number is not None and number.is_finite() else None


def _unescape(text: str) -> str:
    """Message text as typed: Slack sends ``&``, ``<`` and ``>`` as entities."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


@dataclass(slots=True)
class _Thread:
    ts: str
    cursor: str


@dataclass(slots=True)
class _State:
    channel_cursor: str | None = None
    threads: list[_Thread] = field(default_factory=list)


class SlackChannel:
    """One Slack channel, the digest threaded in it (see the module docstring). ``now``
    gives the time in Unix seconds (tests pass a fixed clock)."""

    name: ClassVar[str] = "slack"

    def __init__(
        self,
        bot_token: str,
        channel_id: str,
        *,
        signing_secret: str | None = None,
        base_url: str = "https://slack.com/api",
        state_path: Path,
        transport: httpx.BaseTransport | None = None,
        now: Callable[[], float] = time.time,
        timeout: float = 30,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not bot_token:
            raise ChannelError("slack: the bot token is empty; set SLACK_BOT_TOKEN (xoxb-…).")
        self._token = bot_token
        self.channel_id = channel_id
        self.base_url = base_url.rstrip("/")
        self.state_path = Path(state_path)
        self._signing_secret = signing_secret or None
        self._now = now
        self._http = ChatHTTP(
            "slack", secrets=[bot_token, signing_secret or ""], transport=transport,
            timeout=timeout, retry=retry, sleep=sleep,
        )  # fmt: skip
        self._seen_events = SeenIds()

    def __repr__(self) -> str:
        return f"SlackChannel(channel_id={self.channel_id!r}, base_url={self.base_url!r})"

    # --- the Channel protocol ------------------------------------------------------------

    def send(self, parts: Sequence[str]) -> list[str]:
        """Post the non-empty parts in order, as one thread; their ``ts`` (message ids)."""
        texts = [part for part in parts if part.strip()]
        refuse_long("slack", texts, MESSAGE_LIMIT)
        ids: list[str] = []
        with self._http.client() as client:
            for text in texts:
                body: dict[str, Any] = {
                    "channel": self.channel_id,
                    "markdown_text": text,
                    "unfurl_links": False,
                    "unfurl_media": False,
                }
                if ids:
                    body["thread_ts"] = ids[0]
                answer = self._api(client, "chat.postMessage", body=body)
                ts = answer.get("ts")
                if not isinstance(ts, str) or _ts(ts) is None:
                    raise ChannelError("slack: chat.postMessage answered without a message ts.")
                ids.append(ts)
                if len(ids) == 1:
                    self._start_thread(ts)
        return ids

    def poll(self) -> list[Reply]:
        """The people's messages in the tracked threads and the channel since the last
        poll, oldest first."""
        state = self._load()
        if state.channel_cursor is None:
            state.channel_cursor = f"{self._now():.6f}"
            self._merge_save(state, dropped=set())
            return []
        found: dict[str, Reply] = {}
        dropped: set[str] = set()
        with self._http.client() as client:
            for thread in state.threads:
                try:
                    messages = self._fetch(client, "conversations.replies", {"ts": thread.ts},
                                           thread.cursor)  # fmt: skip
                except SlackError as exc:
                    if exc.error != "thread_not_found":
                        raise
                    dropped.add(thread.ts)
                    continue
                thread.cursor = self._take(messages, thread.cursor, found)
            tracked = {t.ts for t in state.threads}
            messages = self._fetch(client, "conversations.history", {}, state.channel_cursor)
            top_level = [m for m in messages if m.get("thread_ts") in (None, m.get("ts"))
                         or m.get("thread_ts") not in tracked]  # fmt: skip
            state.channel_cursor = self._take(top_level, state.channel_cursor, found)
        self._merge_save(state, dropped)
        return sorted(found.values(), key=lambda r: _ts(r.message_id) or Decimal(0))

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[Reply]:
        """The reply in one Events API call, after checking its signature, age and
        novelty; none for ``url_verification`` and events that are not messages."""
        self._verify(headers, body)
        payload = json_object("slack", body)
        if payload.get("type") != "event_callback":
            return []  # url_verification: the caller answers the challenge
        event_id = payload.get("event_id")
        if not isinstance(event_id, str) or not event_id:
            raise WebhookRejected("slack: an event_callback without an event_id.")
        if not self._seen_events.first_time(event_id):
            raise WebhookRejected(f"slack: event {event_id!r} was already received (replay).")
        event = payload.get("event")
        if not isinstance(event, dict) or event.get("type") != "message":
            return []
        if event.get("channel") != self.channel_id:
            logger.warning(
                "slack: dropped event %s from channel %s (the channel is %s)",
                event_id, event.get("channel"), self.channel_id,
            )  # fmt: skip
            return []
        reply = self._reply(event)
        return [reply] if reply else []

    # --- messages ------------------------------------------------------------------------

    def _fetch(
        self, client: httpx.Client, method: str, params: Mapping[str, str], oldest: str
    ) -> list[dict[str, Any]]:
        """The messages of every page of ``method`` newer than ``oldest``."""
        messages: list[dict[str, Any]] = []
        cursor = ""
        for _ in range(_MAX_PAGES):
            query = {"channel": self.channel_id, "oldest": oldest, "limit": _PAGE, **params}
            if cursor:
                query["cursor"] = cursor
            answer = self._api(client, method, params=query)
            page = answer.get("messages")
            messages += [m for m in page if isinstance(m, dict)] if isinstance(page, list) else []
            meta = answer.get("response_metadata")
            cursor = meta.get("next_cursor", "") if isinstance(meta, dict) else ""
            if not answer.get("has_more") or not cursor:
                break
        return messages

    def _take(self, messages: list[dict[str, Any]], cursor: str, found: dict[str, Reply]) -> str:
        """Add the replies among ``messages`` newer than ``cursor`` to ``found`` (by
        ``ts``); the new cursor: the newest ``ts`` seen."""
        fresh = [m for m in messages if (_ts(m.get("ts")) or 0) > _sort_key(cursor)]
        for message in fresh:
            reply = self._reply(message)
            if reply is not None:
                found.setdefault(message["ts"], reply)
        return max((str(m["ts"]) for m in fresh), key=_sort_key, default=cursor)

    def _reply(self, message: Mapping[str, Any]) -> Reply | None:
        """The reply in a message, or ``None`` (a bot's, a system message, no text)."""
        if message.get("bot_id") or message.get("subtype") not in _USER_SUBTYPES:
            return None
        user, text, ts = message.get("user"), message.get("text"), message.get("ts")
        number = _ts(ts)
        if not isinstance(user, str) or not isinstance(text, str) or number is None:
            return None
        return Reply(
            channel=self.name,
            sender=user,
            text=_unescape(text),
            received_at=datetime.fromtimestamp(float(number), UTC),
            message_id=str(ts),
            chat=self.channel_id,
        )

    # --- webhooks ------------------------------------------------------------------------

    def _verify(self, headers: Mapping[str, str], body: bytes) -> None:
        if self._signing_secret is None:
            raise WebhookRejected(
                "slack: no signing secret is configured, so no webhook call is trusted; "
                "set SLACK_SIGNING_SECRET (Basic Information → Signing Secret)."
            )
        stamp = header(headers, "x-slack-request-timestamp")
        signature = header(headers, "x-slack-signature")
        if not signature or not (stamp.isascii() and stamp.isdigit()):
            raise WebhookRejected(
                "slack: the X-Slack-Signature or -Request-Timestamp is missing or malformed."
            )
        if abs(self._now() - int(stamp)) > TOLERANCE_S:
            raise WebhookRejected(
                f"slack: the request timestamp is more than {TOLERANCE_S} s from now "
                "(a replay, or a clock out of sync)."
            )
        if not matches(signature, sign(self._signing_secret, stamp, body)):
            raise WebhookRejected("slack: the v0 signature is wrong (forged or altered call).")

    # --- the state file ------------------------------------------------------------------

    def _start_thread(self, ts: str) -> None:
        state = self._load()
        state.threads.insert(0, _Thread(ts, ts))
        if state.channel_cursor is None:
            state.channel_cursor = ts
        self._save(state)

    def _merge_save(self, polled: _State, dropped: set[str]) -> None:
        """Save the cursors a poll moved into the state as it is now (a ``send`` may have
        started a thread meanwhile); a cursor never moves back."""
        state = self._load()
        cursors = {t.ts: t.cursor for t in polled.threads}
        state.threads = [t for t in state.threads if t.ts not in dropped]
        for thread in state.threads:
            thread.cursor = max(thread.cursor, cursors.get(thread.ts, ""), key=_sort_key)
        if polled.channel_cursor is not None:
            state.channel_cursor = max(
                state.channel_cursor or "", polled.channel_cursor, key=_sort_key
            )
        self._save(state)

    def _load(self) -> _State:
        doc = load_state("slack", self.state_path)
        cursor = doc.get("channel_cursor")
        threads = [
            _Thread(t["ts"], t.get("cursor") or t["ts"])
            for t in doc.get("threads") or []
            if isinstance(t, dict) and _ts(t.get("ts")) is not None
        ]
        return _State(cursor if _ts(cursor) is not None else None, threads)

    def _save(self, state: _State) -> None:
        """Write the state, keeping the newest threads started within the last week."""
        horizon = Decimal(int(self._now()) - _THREAD_AGE_S)
        threads = [t for t in state.threads if _sort_key(t.ts) >= horizon][:_MAX_THREADS]
        save_state(self.state_path, {
            "channel_cursor": state.channel_cursor,
            "threads": [{"ts": t.ts, "cursor": t.cursor} for t in threads],
        })  # fmt: skip

    # --- HTTP ----------------------------------------------------------------------------

    def _api(self, client: httpx.Client, method: str, **request: Any) -> dict[str, Any]:
        """Call a Web API method: GET with ``params=``, JSON POST with ``body=``."""
        verb = "POST" if "body" in request else "GET"
        headers = {"authorization": f"Bearer {self._token}"}
        if verb == "POST":  # Slack warns about JSON without a charset
            headers["content-type"] = "application/json; charset=utf-8"
        answer: dict[str, Any] = self._http.call(
            client, verb, f"{self.base_url}/{method}", what=method, read=partial(_read, method),
            headers=headers, **request,
        )  # fmt: skip
        return answer


def _sort_key(ts: str) -> Decimal:
    return _ts(ts) or Decimal(0)


def _read(method: str, response: httpx.Response) -> dict[str, Any]:
    """The answer of a Web API call when ``ok``; :class:`SlackError` otherwise."""
    doc = json_of(response)
    answer: dict[str, Any] = doc if isinstance(doc, dict) else {}
    status = response.status_code
    said = one_line(str(answer.get("error") or response.reason_phrase or f"HTTP {status}"))
    retry_on_status(response, said)
    if answer.get("ok") is True:
        return answer
    error = str(answer.get("error") or f"HTTP {status}")
    raise SlackError(f"slack: {method} refused: {one_line(error)}{_hint(error, answer)}", error)


def _hint(error: str, answer: Mapping[str, Any]) -> str:
    if error in _AUTH_ERRORS or error == "HTTP 401":
        return "; check the bot token (SLACK_BOT_TOKEN, xoxb-…) and that the app is installed."
    if error in ("channel_not_found", "not_in_channel"):
        return "; check channel_id (C…) and invite the app to the channel (/invite @app)."
    if error == "missing_scope":
        needed = answer.get("needed") or "a missing"
        return f"; add the {needed} scope to the app and reinstall it."
    return "."
