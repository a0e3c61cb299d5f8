"""Local servers that speak Langfuse's and PromptLayer's prompt APIs.

Each fake keeps state the way its service does (prompts or templates, versions, labels),
checks the service's auth header, and answers in the service's shapes. Queue a
:class:`Failure` to have the next request answered with an error (or slowly) instead;
every request is recorded in ``seen`` as (method, raw path, JSON body). A rejected
credential is echoed in the 401 message, so tests can check that it is scrubbed.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

LANGFUSE_PUBLIC_KEY = "pk-lf-test-public"
LANGFUSE_SECRET_KEY = "sk-lf-test-secret-4f9a"
LANGFUSE_PREFIX = "/api/public/v2/prompts"
PROMPTLAYER_KEY = "pl_test_secret_key_7c1e"
_NOT_FOUND = (404, {"success": False, "message": "Prompt template not found."})


@dataclass
class Failure:
    """A scripted answer given instead of serving the next request."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass
class FakeService:
    """What every fake has: the failure script, the requests seen, a lock on the state."""

    failures: deque[Failure] = field(default_factory=deque)
    seen: list[tuple[str, str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, method: str, raw_path: str, headers: Any, body: Any) -> tuple[int, Any]:
        raise NotImplementedError


@contextmanager
def serve(fake: FakeService) -> Iterator[str]:
    """Run ``fake`` on 127.0.0.1 in a thread; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    server.block_on_close = True  # server_close waits for every request thread
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _handler(fake: FakeService) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            if fake.failures:
                failure = fake.failures.popleft()
                time.sleep(failure.delay_s)
                self._send(failure.status, {"message": "scripted failure"}, failure.headers)
                return
            status, answer = fake.handle(self.command, self.path, self.headers, body)
            self._send(status, answer, {})

        def _send(self, status: int, answer: Any, headers: dict[str, str]) -> None:
            data = json.dumps(answer).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)
            except OSError:  # the client gave up waiting (the timeout tests)
                self.close_connection = True

        do_GET = do_POST = do_PATCH = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@dataclass
class FakeLangfuse(FakeService):
    """Langfuse's prompt store: name → versions (each a Langfuse prompt object). Labels
    are unique per prompt, ``latest`` is on the newest version and reserved, an unknown
    prompt, label or version is a 404, and a name is one URL-encoded path segment."""

    prompts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def handle(self, method: str, raw_path: str, headers: Any, body: Any) -> tuple[int, Any]:
        url = urlsplit(raw_path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        self.seen.append((method, raw_path, body))
        if headers.get("Authorization") != "Basic " + basic_auth(
            LANGFUSE_PUBLIC_KEY, LANGFUSE_SECRET_KEY
        ):
            return 401, {"error": "Unauthorized", "message": f"bad auth {_decoded(headers)}"}
        if not url.path.startswith(LANGFUSE_PREFIX):
            return 404, {"message": "no such route"}
        parts = [unquote(p) for p in url.path[len(LANGFUSE_PREFIX) :].split("/") if p]
        with self.lock:
            return self._route(method, parts, query, body)

    def _route(
        self, method: str, parts: list[str], query: dict[str, str], body: Any
    ) -> tuple[int, Any]:
        if method == "GET" and not parts:
            return 200, self._list(query)
        if method == "POST" and not parts:
            return self._create(body)
        if method == "GET" and len(parts) == 1:
            return self._get(parts[0], query)
        if method == "PATCH" and len(parts) == 3 and parts[1] == "versions":
            return self._set_labels(parts[0], int(parts[2]), body)
        return 404, {"message": "no such route"}

    def _list(self, query: dict[str, str]) -> dict[str, Any]:
        data = [
            {
                "name": name,
                "type": versions[-1]["type"],
                "versions": [v["version"] for v in versions],
                "labels": sorted({lb for v in versions for lb in v["labels"]}),
                "tags": [],
                "lastUpdatedAt": versions[-1]["createdAt"],
                "lastConfig": versions[-1]["config"],
            }
            for name, versions in self.prompts.items()
            if query.get("name") in (None, name)
        ]
        return {"data": data, "meta": {"page": 1, "limit": 50, "totalItems": len(data)}}

    def _get(self, name: str, query: dict[str, str]) -> tuple[int, Any]:
        versions = self.prompts.get(name, [])
        if "version" in query:
            found = [v for v in versions if v["version"] == int(query["version"])]
        else:
            label = query.get("label", "production")
            found = [v for v in versions if label in v["labels"]]
        if not found:
            return 404, {"error": "LangfuseNotFoundError", "message": "Prompt not found"}
        return 200, found[0]

    def _create(self, body: Any) -> tuple[int, Any]:
        if body.get("type") not in ("text", "chat") or not isinstance(body.get("name"), str):
            return 400, {"message": "Invalid request data"}
        versions = self.prompts.setdefault(body["name"], [])
        labels = list(body.get("labels") or [])
        self._take_labels(versions, [*labels, "latest"])
        prompt = {
            "name": body["name"],
            "version": len(versions) + 1,
            "type": body["type"],
            "prompt": body["prompt"],
            "config": body.get("config") or {},
            "labels": [*labels, "latest"],
            "tags": [],
            "commitMessage": body.get("commitMessage"),
            "createdAt": f"2025-06-0{len(versions) + 1}T12:00:00.000Z",
        }
        versions.append(prompt)
        return 201, prompt

    def _set_labels(self, name: str, number: int, body: Any) -> tuple[int, Any]:
        new = body.get("newLabels")
        if not isinstance(new, list) or "latest" in new:
            return 400, {"message": "newLabels must be a list without 'latest'"}
        versions = self.prompts.get(name, [])
        target = [v for v in versions if v["version"] == number]
        if not target:
            return 404, {"error": "LangfuseNotFoundError", "message": "Prompt not found"}
        self._take_labels(versions, new)
        target[0]["labels"] = sorted({*target[0]["labels"], *new})
        return 200, target[0]

    @staticmethod
    def _take_labels(versions: list[dict[str, Any]], labels: list[str]) -> None:
        for version in versions:
            version["labels"] = [lb for lb in version["labels"] if lb not in labels]


def basic_auth(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def _decoded(headers: Any) -> str:
    value = str(headers.get("Authorization", ""))
    try:
        return base64.b64decode(value.removeprefix("Basic ")).decode()
    except ValueError:
        return value


@dataclass
class Template:
    template_id: int
    name: str
    tags: list[str]
    versions: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class FakePromptLayer(FakeService):
    """PromptLayer's registry: templates (found by name or id) with versions, and release
    labels, each with its own id and on one version of a template; an unknown template,
    version or label is a 404."""

    templates: dict[str, Template] = field(default_factory=dict)
    labels: dict[int, dict[str, Any]] = field(default_factory=dict)

    def handle(self, method: str, raw_path: str, headers: Any, body: Any) -> tuple[int, Any]:
        url = urlsplit(raw_path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        self.seen.append((method, raw_path, body))
        if headers.get("X-API-KEY") != PROMPTLAYER_KEY:
            received = headers.get("X-API-KEY")
            return 401, {"success": False, "message": f"Invalid API key {received}"}
        parts = [unquote(p) for p in url.path.split("/") if p]
        with self.lock:
            return self._route(method, parts, query, body)

    def _route(
        self, method: str, parts: list[str], query: dict[str, str], body: Any
    ) -> tuple[int, Any]:
        match method, parts:
            case "GET", ["prompt-templates", identifier]:
                return self._get(identifier, query)
            case "GET", ["prompt-templates", identifier, "labels"]:
                return self._list_labels(identifier)
            case "POST", ["rest", "prompt-templates"]:
                return self._publish(body)
            case "PATCH", ["prompt-labels", label_id]:
                return self._move_label(int(label_id), body)
            case "POST", ["prompts", template_id, "label"]:
                return self._create_label(int(template_id), body)
        return 404, {"detail": "Not Found"}

    def _find(self, identifier: str) -> Template | None:
        for template in self.templates.values():
            if identifier in (template.name, str(template.template_id)):
                return template
        return None

    def _labelled(self, template: Template, number: int) -> list[str]:
        return [
            lb["release_label"]
            for lb in self.labels.values()
            if lb["template_id"] == template.template_id and lb["prompt_version_number"] == number
        ]

    def _get(self, identifier: str, query: dict[str, str]) -> tuple[int, Any]:
        template = self._find(identifier)
        if "version" in query and "label" in query:
            return 400, {"success": False, "message": "version and label are exclusive"}
        if template is None or not template.versions:
            return _NOT_FOUND
        number = template.versions[-1]["version"]
        if "version" in query:
            number = int(query["version"])
        elif "label" in query:
            found = [
                lb["prompt_version_number"]
                for lb in self.labels.values()
                if lb["template_id"] == template.template_id
                and lb["release_label"] == query["label"]
            ]
            if not found:
                return _NOT_FOUND
            number = found[0]
        versions = [v for v in template.versions if v["version"] == number]
        if not versions:
            return _NOT_FOUND
        return 200, {"success": True, "id": template.template_id, "prompt_name": template.name,
                     "tags": template.tags, "workspace_id": 1, "snippets": [],
                     "llm_kwargs": None, **versions[0]}  # fmt: skip

    def _list_labels(self, identifier: str) -> tuple[int, Any]:
        template = self._find(identifier)
        if template is None:
            return _NOT_FOUND
        labels = [
            {k: v for k, v in lb.items() if k != "template_id"}
            for lb in self.labels.values()
            if lb["template_id"] == template.template_id
        ]
        return 200, {"release_labels": labels}

    def _publish(self, body: Any) -> tuple[int, Any]:
        head, version = body.get("prompt_template"), body.get("prompt_version")
        inner = version.get("prompt_template") if isinstance(version, dict) else None
        if not isinstance(head, dict) or not isinstance(inner, dict):
            return 422, {"detail": [{"msg": "field required"}]}
        if inner.get("type") not in ("completion", "chat"):
            return 422, {"detail": [{"msg": "unknown template type"}]}
        name = head["prompt_name"]
        template = self.templates.setdefault(
            name, Template(len(self.templates) + 1, name, list(head.get("tags") or []))
        )
        template.tags = list(head.get("tags") or [])
        number = len(template.versions) + 1
        template.versions.append({
            "version": number,
            "prompt_template": inner,
            "metadata": version.get("metadata"),
            "commit_message": version.get("commit_message"),
            "created_at": f"2025-06-0{number}T09:30:00",
        })  # fmt: skip
        for label in body.get("release_labels") or []:
            self._put_label(template, label, number)
        return 200, {"id": template.template_id, "prompt_name": name,
                     "prompt_version_id": 100 + number, "version_number": number,
                     "tags": template.tags, "prompt_template": inner,
                     "release_labels": self._labelled(template, number),
                     "metadata": version.get("metadata"),
                     "commit_message": version.get("commit_message")}  # fmt: skip

    def _put_label(self, template: Template, name: str, number: int) -> dict[str, Any]:
        for label in self.labels.values():
            if label["template_id"] == template.template_id and label["release_label"] == name:
                label.update(prompt_version_number=number, prompt_version_id=100 + number)
                return label
        label_id = 500 + len(self.labels)
        self.labels[label_id] = {"template_id": template.template_id, "release_label": name,
                                 "release_label_id": label_id, "prompt_version_number": number,
                                 "prompt_version_id": 100 + number}  # fmt: skip
        return self.labels[label_id]

    def _move_label(self, label_id: int, body: Any) -> tuple[int, Any]:
        label = self.labels.get(label_id)
        if label is None:
            return 404, {"success": False, "message": "Label not found"}
        template = self._find(str(label["template_id"]))
        number = body.get("prompt_version_number")
        if template is None or number not in [v["version"] for v in template.versions]:
            return 400, {"success": False, "message": "Prompt version not found"}
        self._put_label(template, label["release_label"], number)
        return 200, self._label_answer(label)

    def _create_label(self, template_id: int, body: Any) -> tuple[int, Any]:
        template = self._find(str(template_id))
        if template is None:
            return _NOT_FOUND
        number, name = body.get("prompt_version_number"), body.get("name")
        if number not in [v["version"] for v in template.versions]:
            return 400, {"success": False, "message": "Prompt version not found"}
        if any(
            lb["template_id"] == template_id and lb["release_label"] == name
            for lb in self.labels.values()
        ):
            return 400, {"success": False, "message": "Label already exists"}
        return 200, self._label_answer(self._put_label(template, name, number))

    @staticmethod
    def _label_answer(label: dict[str, Any]) -> dict[str, Any]:
        return {"created_at": "2025-06-01T10:00:00Z", "id": label["release_label_id"],
                "name": label["release_label"], "prompt_id": label["template_id"],
                "prompt_version_id": label["prompt_version_id"]}  # fmt: skip
