"""The GitHub channel over real HTTP to a local server that speaks the REST shapes it
uses (issues, issue comments, ``/user``), and its webhook verification."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.review.channels.fakes import FakeHTTPServer, LocalServer
from tighten.http import RetryPolicy
from tighten.review.channels.base import ChannelError, WebhookRejected
from tighten.review.channels.github import GitHubChannel, sign

TOKEN = "ghp_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"
SECRET = "whsec-github-test-secret-0123456789"
REPO = "acme/agent-reviews"
BOT = "tighten-bot"
OWNER = "alice"
START = datetime(2025, 1, 1, tzinfo=UTC)
NOW = START.timestamp()
FAST = RetryPolicy(max_retries=2, backoff_s=0.001, max_backoff_s=0.002, max_wait_s=10)
DIGEST = "## Support bot — 2 proposed changes (cycle 7)\n\n- **1.** Shorter greeting"


# --- a local GitHub REST API ------------------------------------------------------------


class FakeGitHub(LocalServer):
    """Issues and their comments in one repository, ``GET /user`` for the token's user.
    Comments come in ascending id; ``since`` keeps those updated at or after it.
    ``errors`` (status, body, headers) are answered first."""

    def __init__(self) -> None:
        self.issues: dict[int, dict[str, Any]] = {}
        self.comments: list[dict[str, Any]] = []
        self.calls: list[str] = []
        self.queries: list[dict[str, str]] = []
        self.errors: deque[tuple[int, dict[str, Any], dict[str, str]]] = deque()
        self._clock = 0
        self._next_id = 1000
        self._lock = threading.Lock()
        super().__init__(_Handler)

    def _stamp(self) -> str:
        self._clock += 1
        return (START + timedelta(seconds=self._clock)).strftime("%Y-%m-%dT%H:%M:%SZ")

    def comment(
        self, number: int, body: str, login: str = OWNER, kind: str = "User"
    ) -> dict[str, Any]:
        """A comment someone wrote on issue ``number``."""
        with self._lock:
            return self._add_comment(number, body, {"login": login, "type": kind})

    def _add_comment(self, number: int, body: str, user: dict[str, str]) -> dict[str, Any]:
        self._next_id += 1
        stamp = self._stamp()
        comment = {
            "id": self._next_id,
            "issue": number,
            "body": body,
            "user": user,
            "created_at": stamp,
            "updated_at": stamp,
            "html_url": f"https://github.com/{REPO}/issues/{number}#issuecomment-{self._next_id}",
        }
        self.comments.append(comment)
        return comment

    def call(
        self, verb: str, path: str, query: dict[str, str], body: Any, headers: dict[str, str]
    ) -> tuple[int, Any, dict[str, str]]:
        with self._lock:
            self.calls.append(f"{verb} {path}")
            self.queries.append(query)
            if self.errors:
                return self.errors.popleft()
            if (
                headers.get("authorization") != f"Bearer {TOKEN}"
                or headers.get("accept") != "application/vnd.github+json"
                or headers.get("x-github-api-version") != "2022-11-28"
            ):
                return 401, {"message": "Bad credentials"}, {}
            if path == "/user" and verb == "GET":
                return 200, {"login": BOT, "id": 1, "type": "User"}, {}
            prefix = f"/repos/{REPO}/issues"
            if not path.startswith(prefix):
                return 404, {"message": "Not Found"}, {}
            rest = path.removeprefix(prefix).strip("/").split("/")
            if rest == [""] and verb == "POST":
                return self._open(body)
            if len(rest) == 2 and rest[1] == "comments" and rest[0].isdigit():
                number = int(rest[0])
                if number not in self.issues:
                    return 404, {"message": "Not Found"}, {}
                if verb == "POST":
                    if not isinstance(body.get("body"), str):
                        return 422, {"message": "Validation Failed"}, {}
                    made = self._add_comment(number, body["body"], {"login": BOT, "type": "User"})
                    return 201, made, {}
                return 200, self._list(number, query), {}
            return 404, {"message": "Not Found"}, {}

    def _open(self, body: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        if not isinstance(body.get("title"), str) or not body["title"]:
            return 422, {"message": "Validation Failed"}, {}
        number = len(self.issues) + 1
        issue = {
            "id": 500 + number,
            "number": number,
            "title": body["title"],
            "body": body.get("body"),
            "labels": [{"name": n} for n in body.get("labels", [])],
            "user": {"login": BOT, "type": "User"},
            "created_at": self._stamp(),
            "html_url": f"https://github.com/{REPO}/issues/{number}",
        }
        self.issues[number] = issue
        return 201, issue, {}

    def _list(self, number: int, query: dict[str, str]) -> list[dict[str, Any]]:
        found = [c for c in self.comments if c["issue"] == number]
        if "since" in query:
            found = [c for c in found if c["updated_at"] >= query["since"]]
        size, page = int(query.get("per_page", 30)), int(query.get("page", 1))
        return found[(page - 1) * size : page * size]


class _Handler(BaseHTTPRequestHandler):
    server: FakeHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._answer(None)

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("content-length", "0")))
        self._answer(json.loads(raw or b"{}"))

    def _answer(self, body: Any) -> None:
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, doc, extra = self.server.fake.call(self.command, parts.path, query, body, headers)
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json; charset=utf-8")
        self.send_header("content-length", str(len(data)))
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


# --- fixtures ---------------------------------------------------------------------------


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    with FakeGitHub() as server:
        yield server


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "channels" / "github.json"


def channel(fake: FakeGitHub, state: Path, **kwargs: Any) -> GitHubChannel:
    options: dict[str, Any] = {
        "state_path": state, "webhook_secret": SECRET, "base_url": fake.url, "retry": FAST,
        "sleep": lambda s: None, "now": lambda: NOW, "timeout": 5,
    }  # fmt: skip
    options.update(kwargs)
    token = options.pop("token", TOKEN)
    return GitHubChannel(token, options.pop("repo", REPO), **options)


def delivery(
    payload: dict[str, Any], *, event: str = "issue_comment", guid: str = "g-1"
) -> tuple[dict[str, str], bytes]:
    body = json.dumps(payload).encode()
    headers = {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": guid,
        "X-Hub-Signature-256": sign(SECRET, body),
        "Content-Type": "application/json",
    }
    return headers, body


def comment_event(number: int, text: str, login: str = OWNER, kind: str = "User",
                  action: str = "created", repo: str = REPO) -> dict[str, Any]:  # fmt: skip
    return {
        "action": action,
        "issue": {"number": number, "title": "digest"},
        "comment": {
            "id": 9001,
            "body": text,
            "user": {"login": login, "type": kind},
            "created_at": "2025-01-01T00:05:00Z",
        },
        "repository": {"full_name": repo},
        "sender": {"login": login, "type": kind},
    }


# --- sending ----------------------------------------------------------------------------


def test_first_send_opens_an_issue_and_later_sends_comment_on_it(
    fake: FakeGitHub, state: Path
) -> None:
    gh = channel(fake, state)
    ids = gh.send([DIGEST, "### Last time\n- nothing yet"])
    assert ids == [f"https://github.com/{REPO}/issues/1"]
    issue = fake.issues[1]
    assert issue["title"] == "Support bot — 2 proposed changes (cycle 7)"
    assert issue["body"] == DIGEST + "\n\n### Last time\n- nothing yet"
    assert issue["labels"] == [{"name": "tighten"}]

    answer = gh.send(["Deployed 1 and 2."])
    assert len(answer) == 1
    assert answer[0].startswith(f"https://github.com/{REPO}/issues/1#issuecomment-")
    assert [c["body"] for c in fake.comments] == ["Deployed 1 and 2."]
    assert len(fake.issues) == 1
    assert json.loads(state.read_text())["issue"] == 1


def test_a_digest_of_another_cycle_opens_a_new_issue(fake: FakeGitHub, state: Path) -> None:
    gh = channel(fake, state)
    gh.send([DIGEST])
    gh.send([DIGEST.replace("(cycle 7)", "(cycle 8)")])
    assert sorted(fake.issues) == [1, 2]
    fake.comment(1, "deploy all")  # on the old issue: no longer watched
    fake.comment(2, "skip")
    assert [r.text for r in gh.poll()] == ["skip"]


# --- polling ----------------------------------------------------------------------------


def test_poll_returns_the_owners_comment_once_and_never_the_bots(
    fake: FakeGitHub, state: Path
) -> None:
    gh = channel(fake, state)
    assert gh.poll() == []  # nothing sent yet
    gh.send([DIGEST])
    fake.comment(1, "remove 2, deploy")
    gh.send(["Deploying 1."])  # tighten's own answer, by the token's user
    fake.comment(1, "CI passed", login="github-actions[bot]", kind="Bot")

    replies = gh.poll()
    assert [(r.sender, r.text, r.channel) for r in replies] == [
        (OWNER, "remove 2, deploy", "github")
    ]
    assert replies[0].chat == f"{REPO}#1"
    assert replies[0].received_at.tzinfo is not None
    assert gh.poll() == []
    assert channel(fake, state).poll() == []  # a new object sharing the state file

    fake.comment(1, "skip")
    again = channel(fake, state)
    assert [r.text for r in again.poll()] == ["skip"]
    assert again.poll() == []
    assert fake.calls.count("GET /user") == 1  # resolved once, cached in the state
    assert fake.queries[-1]["since"] >= "2025-01-01T00:00:04Z"  # asks only for newer ones


def test_poll_pages_through_many_comments(fake: FakeGitHub, state: Path) -> None:
    gh = channel(fake, state)
    gh.send([DIGEST])
    for n in range(130):
        fake.comment(1, f"note {n}")
    assert len(gh.poll()) == 130
    assert gh.poll() == []


# --- webhooks ---------------------------------------------------------------------------


def test_signature_matches_githubs_test_vector() -> None:
    expected = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert sign("It's a Secret to Everybody", b"Hello, World!") == f"sha256={expected}"


def test_a_valid_issue_comment_webhook_returns_the_reply(fake: FakeGitHub, state: Path) -> None:
    gh = channel(fake, state)
    gh.send([DIGEST])
    headers, body = delivery(comment_event(1, "deploy all"))
    [reply] = gh.parse_webhook(headers, body)
    assert (reply.sender, reply.text, reply.message_id) == (OWNER, "deploy all", "9001")
    with pytest.raises(WebhookRejected, match="replay"):
        gh.parse_webhook(headers, body)


@pytest.mark.parametrize(
    ("payload", "event"),
    [
        (comment_event(1, "deploy all", action="edited"), "issue_comment"),
        (comment_event(2, "deploy all"), "issue_comment"),
        (comment_event(1, "deploy all", repo="evil/other"), "issue_comment"),
        (comment_event(1, "Deploying.", login=BOT), "issue_comment"),
        (comment_event(1, "beep", login="ci[bot]", kind="Bot"), "issue_comment"),
        ({"zen": "Keep it logically awesome.", "hook_id": 1}, "ping"),
    ],
)
def test_other_webhook_events_give_no_reply(
    fake: FakeGitHub, state: Path, payload: dict[str, Any], event: str
) -> None:
    gh = channel(fake, state)
    gh.send([DIGEST])
    gh._login = BOT
    assert gh.parse_webhook(*delivery(payload, event=event)) == []


def test_a_forged_or_unsigned_webhook_is_rejected(fake: FakeGitHub, state: Path) -> None:
    gh = channel(fake, state)
    gh.send([DIGEST])
    headers, body = delivery(comment_event(1, "deploy all"))
    forged = dict(headers)
    forged["X-Hub-Signature-256"] = (
        "sha256=" + hmac.new(b"wrong secret", body, hashlib.sha256).hexdigest()
    )
    with pytest.raises(WebhookRejected, match="signature is wrong"):
        gh.parse_webhook(forged, body)
    with pytest.raises(WebhookRejected, match="signature is wrong"):
        gh.parse_webhook(headers, body.replace(b"deploy all", b"skip      "))
    unsigned = {k: v for k, v in headers.items() if k != "X-Hub-Signature-256"}
    with pytest.raises(WebhookRejected, match="missing"):
        gh.parse_webhook(unsigned, body)
    with pytest.raises(WebhookRejected, match="no webhook secret"):
        channel(fake, state, webhook_secret=None).parse_webhook(headers, body)


# --- errors -----------------------------------------------------------------------------


def test_a_wrong_token_says_so_without_showing_it(fake: FakeGitHub, state: Path) -> None:
    with pytest.raises(ChannelError) as caught:
        channel(fake, state, token=TOKEN + "x").send([DIGEST])
    text = str(caught.value)
    assert "check the token" in text
    assert TOKEN not in text
    assert "HTTP 401" in text


def test_a_wrong_repository_says_so(fake: FakeGitHub, state: Path) -> None:
    with pytest.raises(ChannelError, match="check the repository name") as caught:
        channel(fake, state, repo="acme/nope").send([DIGEST])
    assert TOKEN not in str(caught.value)
    with pytest.raises(ChannelError, match="owner/name"):
        channel(fake, state, repo="not a repo")


def test_rate_limits_are_waited_out_or_reported(fake: FakeGitHub, state: Path) -> None:
    waits: list[float] = []
    gh = channel(fake, state, sleep=waits.append)
    limited = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) + 3)}
    fake.errors.append((403, {"message": "API rate limit exceeded"}, limited))
    assert gh.send([DIGEST]) == [f"https://github.com/{REPO}/issues/1"]
    assert waits == [3.0]

    far = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) + 3600)}
    fake.errors.append((403, {"message": f"API rate limit exceeded for {TOKEN}"}, far))
    with pytest.raises(ChannelError, match="Try again later") as caught:
        gh.poll()
    assert TOKEN not in str(caught.value)

    fake.errors.append((403, {"message": "Resource not accessible by personal access token"}, {}))
    with pytest.raises(ChannelError, match="permission"):
        gh.send(["hello"])


def test_server_errors_are_retried(fake: FakeGitHub, state: Path) -> None:
    gh = channel(fake, state)
    fake.errors.append((502, {"message": "Bad Gateway"}, {}))
    assert gh.send([DIGEST]) == [f"https://github.com/{REPO}/issues/1"]
    assert fake.calls.count(f"POST /repos/{REPO}/issues") == 2


def test_the_token_is_not_in_the_repr() -> None:
    gh = GitHubChannel(TOKEN, REPO, state_path=Path("unused.json"))
    assert TOKEN not in repr(gh)
