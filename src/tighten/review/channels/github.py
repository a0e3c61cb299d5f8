"""GitHub: the digest as an issue in one repository, replies as comments on it.

``send`` opens an issue for a cycle's digest and comments on it for everything else (the
answers to the owner's replies). A call opens a new issue when no issue is stored yet,
or when its first part starts with a digest header (``## … (cycle N)``) of a cycle other
than the stored issue's; any other call comments on the stored issue. The issue's title
is the first line of the first part (heading marks removed), its body the parts joined
(markdown), labelled ``label``; parts that do not fit one body (65,536 characters) follow
as comments. The issue's number and where polling stopped live in a small JSON file
(``state_path``), so every channel object sharing that file sees the same issue.

``poll`` lists the comments on the stored issue newer than the last one seen (``since``
the newest seen comment's ``created_at``, then by comment id), and returns each once.
Comments by the token's own user (``GET /user``, resolved once) and by bots
(``user.type == "Bot"``) are skipped, so tighten never reads its own answers: post with
a machine user's or a GitHub App's token, not the owner's own (the owner's comments
would be skipped as tighten's). The cursor is saved only when the whole poll succeeded.

``parse_webhook`` takes ``issue_comment`` deliveries: ``X-Hub-Signature-256`` must be
``sha256=<hex HMAC-SHA256 of the raw body keyed with the webhook secret>`` (no secret
configured: every call is rejected); a ``X-GitHub-Delivery`` seen before is rejected as
a replay. A ``created`` comment on the stored issue of this repository, not by tighten
itself or a bot, becomes a reply; other events (``ping`` included) and actions give none.

Errors are one line, never with the token: 401 says to check the token, 404 the
repository name and the token's access, 403/429 rate limits are waited out when GitHub
asks for at most ``retry.max_wait_s`` and reported otherwise. The token needs Issues
read and write on the repository (fine-grained) or ``repo``/``public_repo`` (classic).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

from tighten.http import RetryPolicy, retry_after_s
from tighten.review.channels._chat_http import (
    ChatHTTP,
    RetryLater,
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

__all__ = ["BODY_LIMIT", "GitHubChannel", "GitHubError", "sign"]

BODY_LIMIT = 65_536
TITLE_LIMIT = 256
API_VERSION = "2022-11-28"
_PAGE = 100
_MAX_PAGES = 10
_SECONDARY_WAIT_S = 60.0
_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*/[A-Za-z0-9._-]+$")
_DIGEST_HEADER = re.compile(r"^#{1,6}\s.*\(cycle (\d+)\)\s*$")

logger = logging.getLogger(__name__)


class GitHubError(ChannelError):
    """GitHub refused a call; ``status`` is the HTTP status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def sign(secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` of a delivery: ``sha256=`` and the hex HMAC-SHA256 of
    the raw body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _title(text: str) -> str:
    """An issue title: the first non-empty line, heading marks and emphasis removed."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    line = line.lstrip("#").strip().replace("**", "") or "tighten digest"
    return line if len(line) <= TITLE_LIMIT else line[: TITLE_LIMIT - 1] + "…"


def _digest_cycle(text: str) -> int | None:
    """The cycle number of a digest's header line, ``None`` if ``text`` is no digest."""
    first = text.lstrip().split("\n", 1)[0] if text.strip() else ""
    found = _DIGEST_HEADER.match(first)
    return int(found.group(1)) if found else None


def _bodies(texts: Sequence[str]) -> list[str]:
    """The parts joined by blank lines into as few bodies of at most BODY_LIMIT as they
    fill, in order."""
    bodies: list[str] = []
    for text in texts:
        if bodies and len(bodies[-1]) + 2 + len(text) <= BODY_LIMIT:
            bodies[-1] += "\n\n" + text
        else:
            bodies.append(text)
    return bodies


def _when(value: Any) -> datetime | None:
    """A GitHub timestamp (``2024-01-02T03:04:05Z``) as a UTC datetime."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class GitHubChannel:
    """Issues and issue comments in one repository (see the module docstring). ``now``
    gives the time in Unix seconds (for rate-limit resets; tests pass a fixed clock)."""

    name: ClassVar[str] = "github"

    def __init__(
        self,
        token: str,
        repo: str,
        *,
        state_path: Path,
        webhook_secret: str | None = None,
        base_url: str = "https://api.github.com",
        label: str | None = "tighten",
        transport: httpx.BaseTransport | None = None,
        timeout: float = 30,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], float] = time.time,
    ) -> None:
        if not token:
            raise ChannelError("github: the token is empty; set GITHUB_TOKEN.")
        if not _REPO.match(repo or ""):
            raise ChannelError(
                f"github: repo {one_line(repo, 80)!r} is not owner/name "
                "(for example acme/agent-reviews)."
            )
        self._token = token
        self.repo = repo
        self.state_path = Path(state_path)
        self._webhook_secret = webhook_secret or None
        self.base_url = base_url.rstrip("/")
        self.label = label or None
        self._now = now
        self._http = ChatHTTP(
            "github", secrets=[token, webhook_secret or ""], transport=transport,
            timeout=timeout, retry=retry, sleep=sleep,
        )  # fmt: skip
        self._login: str | None = None
        self._seen_deliveries = SeenIds()
        self._seen_comments = SeenIds()

    def __repr__(self) -> str:
        return f"GitHubChannel(repo={self.repo!r}, base_url={self.base_url!r})"

    # --- the Channel protocol ------------------------------------------------------------

    def send(self, parts: Sequence[str]) -> list[str]:
        """Open an issue for a new digest, or comment on the stored issue; the
        ``html_url`` (or id) of every issue and comment created, in order."""
        texts = [part for part in parts if part.strip()]
        refuse_long("github", texts, BODY_LIMIT)
        if not texts:
            return []
        state = load_state("github", self.state_path)
        issue = state.get("issue")
        cycle = _digest_cycle(texts[0])
        bodies = _bodies(texts)
        ids: list[str] = []
        with self._http.client() as client:
            if not isinstance(issue, int) or (cycle is not None and cycle != state.get("cycle")):
                issue = self._open_issue(client, texts[0], bodies.pop(0), cycle, ids)
            for body in bodies:
                answer = self._api(
                    client, "POST", f"/issues/{issue}/comments", what="create a comment",
                    body={"body": body},
                )  # fmt: skip
                ids.append(_id_of(answer, "comment"))
        return ids

    def poll(self) -> list[Reply]:
        """The people's comments on the stored issue since the last poll, oldest first."""
        state = load_state("github", self.state_path)
        issue = state.get("issue")
        if not isinstance(issue, int):
            return []
        last_id = state.get("last_comment_id")
        last_id = last_id if isinstance(last_id, int) else 0
        since = state.get("since")
        with self._http.client() as client:
            comments = self._comments(client, issue, since if isinstance(since, str) else None)
            fresh = [c for c in comments if isinstance(c.get("id"), int) and c["id"] > last_id]
            own = self._own_login(client) if fresh else None
        replies = [r for c in fresh if (r := self._reply(c, issue, own)) is not None]
        if fresh:
            newest = max(fresh, key=lambda c: int(c["id"]))
            self._save_cursor(issue, int(newest["id"]), newest.get("created_at"))
        return replies

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[Reply]:
        """The reply in one ``issue_comment`` delivery, after checking its signature and
        novelty; none for other events and actions."""
        self._verify(headers, body)
        delivery = header(headers, "x-github-delivery") or None
        if not self._seen_deliveries.first_time(delivery):
            raise WebhookRejected(f"github: delivery {delivery!r} was already received (replay).")
        payload = json_object("github", body)
        if header(headers, "x-github-event") != "issue_comment":
            return []
        if payload.get("action") != "created":
            return []
        repository, issue, comment = (
            payload.get("repository"), payload.get("issue"), payload.get("comment"),
        )  # fmt: skip
        if not (isinstance(issue, dict) and isinstance(comment, dict)):
            return []
        full_name = repository.get("full_name") if isinstance(repository, dict) else None
        stored = load_state("github", self.state_path).get("issue")
        if (
            str(full_name).lower() != self.repo.lower()
            or not isinstance(stored, int)
            or issue.get("number") != stored
        ):
            logger.warning(
                "github: dropped a comment on %s#%s (the channel watches %s#%s)",
                full_name, issue.get("number"), self.repo, stored,
            )  # fmt: skip
            return []
        own = self._login or load_state("github", self.state_path).get("login")
        reply = self._reply(comment, stored, own if isinstance(own, str) else None)
        return [reply] if reply else []

    # --- issues and comments -------------------------------------------------------------

    def _open_issue(
        self, client: httpx.Client, first: str, body: str, cycle: int | None, ids: list[str]
    ) -> int:
        request: dict[str, Any] = {"title": _title(first), "body": body}
        if self.label:
            request["labels"] = [self.label]
        answer = self._api(client, "POST", "/issues", what="open an issue", body=request)
        number = answer.get("number")
        if not isinstance(number, int):
            raise ChannelError("github: creating the issue answered without an issue number.")
        ids.append(_id_of(answer, "issue"))
        state = load_state("github", self.state_path)
        state.update(issue=number, cycle=cycle, last_comment_id=0,
                     since=answer.get("created_at"), url=answer.get("html_url"))  # fmt: skip
        save_state(self.state_path, state)
        return number

    def _comments(
        self, client: httpx.Client, issue: int, since: str | None
    ) -> list[dict[str, Any]]:
        comments: list[dict[str, Any]] = []
        for page in range(1, _MAX_PAGES + 1):
            params: dict[str, Any] = {"per_page": _PAGE, "page": page}
            if since:
                params["since"] = since
            answer = self._api(
                client, "GET", f"/issues/{issue}/comments", what="list comments", params=params
            )
            batch = [c for c in answer if isinstance(c, dict)] if isinstance(answer, list) else []
            comments += batch
            if len(batch) < _PAGE:
                break
        return comments

    def _own_login(self, client: httpx.Client) -> str | None:
        """The token's user login (cached here and in the state file); ``None`` for a
        GitHub App installation token, whose comments are a bot's anyway."""
        if self._login is None:
            cached = load_state("github", self.state_path).get("login")
            if isinstance(cached, str) and cached:
                self._login = cached
                return cached
            try:
                answer = self._api(client, "GET", "/user", what="read the token's user", repo=False)
            except GitHubError as exc:
                if exc.status != 403:
                    raise
                return None  # an installation token cannot read /user
            login = answer.get("login")
            if not isinstance(login, str) or not login:
                return None
            self._login = login
            state = load_state("github", self.state_path)
            state["login"] = login
            save_state(self.state_path, state)
        return self._login

    def _reply(self, comment: Mapping[str, Any], issue: int, own: str | None) -> Reply | None:
        """The reply in a comment, or ``None`` (tighten's own, a bot's, no text, seen)."""
        user = comment.get("user")
        if not isinstance(user, dict):
            return None
        login = user.get("login")
        text, cid = comment.get("body"), comment.get("id")
        if not isinstance(login, str) or not isinstance(text, str) or not text.strip():
            return None
        if user.get("type") == "Bot" or (own is not None and login.lower() == own.lower()):
            return None
        if not self._seen_comments.first_time(str(cid)):
            return None
        return Reply(
            channel=self.name,
            sender=login,
            text=text,
            received_at=_when(comment.get("created_at")) or datetime.now(UTC),
            message_id=str(cid),
            chat=f"{self.repo}#{issue}",
        )

    def _save_cursor(self, issue: int, last_id: int, created_at: Any) -> None:
        """Move the cursor forward, unless a ``send`` opened another issue meanwhile."""
        state = load_state("github", self.state_path)
        if state.get("issue") != issue:
            return
        previous = state.get("last_comment_id")
        if isinstance(previous, int) and previous >= last_id:
            return
        state["last_comment_id"] = last_id
        if isinstance(created_at, str):
            state["since"] = created_at
        save_state(self.state_path, state)

    # --- webhooks ------------------------------------------------------------------------

    def _verify(self, headers: Mapping[str, str], body: bytes) -> None:
        if self._webhook_secret is None:
            raise WebhookRejected(
                "github: no webhook secret is configured, so no webhook call is trusted; "
                "set GITHUB_WEBHOOK_SECRET (the webhook's Secret)."
            )
        signature = header(headers, "x-hub-signature-256")
        if not signature.startswith("sha256="):
            raise WebhookRejected("github: the X-Hub-Signature-256 header is missing or malformed.")
        if not matches(signature, sign(self._webhook_secret, body)):
            raise WebhookRejected("github: the signature is wrong (forged or altered delivery).")

    # --- HTTP ----------------------------------------------------------------------------

    def _api(
        self,
        client: httpx.Client,
        verb: str,
        path: str,
        *,
        what: str,
        repo: bool = True,
        **request: Any,
    ) -> Any:
        """Call the REST API: ``path`` under the repository (``repo``) or the root."""
        prefix = f"/repos/{quote(self.repo, safe='/')}" if repo else ""
        headers = {
            "authorization": f"Bearer {self._token}",
            "accept": "application/vnd.github+json",
            "x-github-api-version": API_VERSION,
            "user-agent": "tighten",
        }
        return self._http.call(
            client, verb, f"{self.base_url}{prefix}{path}", what=what,
            read=partial(_read, what, self.repo, self._now), headers=headers, **request,
        )  # fmt: skip


def _id_of(answer: Any, kind: str) -> str:
    url, number = answer.get("html_url"), answer.get("id")
    if isinstance(url, str) and url:
        return url
    if number is None:
        raise ChannelError(f"github: creating the {kind} answered without its id.")
    return str(number)


def _read(what: str, repo: str, now: Callable[[], float], response: httpx.Response) -> Any:
    """The JSON of a 2xx answer; :class:`RetryLater` for limits and 5xx;
    :class:`GitHubError` otherwise."""
    status = response.status_code
    doc = json_of(response)
    message = doc.get("message") if isinstance(doc, dict) else None
    said = one_line(str(message or response.reason_phrase or f"HTTP {status}"), 120)
    if 200 <= status < 300:
        return doc
    if status in (403, 429):
        _rate_limited(response, said, now)
    retry_on_status(response, said)
    raise GitHubError(f"github: {what}: HTTP {status} ({said}){_hint(status, repo)}", status)


def _rate_limited(response: httpx.Response, said: str, now: Callable[[], float]) -> None:
    """Raise :class:`RetryLater` when a 403/429 is a primary or secondary rate limit."""
    headers = response.headers
    wait = retry_after_s(headers)
    if wait is not None:
        raise RetryLater(f"rate limited ({said})", wait)
    if headers.get("x-ratelimit-remaining") == "0":
        reset = headers.get("x-ratelimit-reset", "")
        wait = max(0.0, float(reset) - now()) if reset.isdigit() else _SECONDARY_WAIT_S
        raise RetryLater(f"rate limit used up ({said})", wait)
    if response.status_code == 429 or "rate limit" in said.lower():
        raise RetryLater(f"secondary rate limit ({said})", _SECONDARY_WAIT_S)


def _hint(status: int, repo: str) -> str:
    if status == 401:
        return "; check the token (GITHUB_TOKEN): it may be wrong, expired or revoked."
    if status == 404:
        return (
            f"; check the repository name ({repo}) and the token's access to it "
            "(Issues: read and write)."
        )
    if status == 403:
        return "; the token lacks a permission: give it Issues read and write on the repository."
    if status == 410:
        return "; issues are disabled on the repository: enable them in its settings."
    return "."
