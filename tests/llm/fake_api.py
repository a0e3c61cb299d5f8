"""A local HTTP server that speaks OpenAI chat completions and Anthropic Messages.

It checks each request the way the real APIs do (headers, required and allowed body
fields, roles, structured-output shapes) and answers with scripted :class:`Reply` objects
in the real response shapes, so the providers are tested over real HTTP with nothing of
tighten's own replaced.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.local_server import FakeHTTPServer, LocalServer

OPENAI_KEY = "sk-test-openai-key"
ANTHROPIC_KEY = "sk-ant-test-key"
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_OPENAI_FIELDS = {
    "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p",
    "response_format", "stop", "n", "seed", "stream", "user", "tools", "tool_choice",
}  # fmt: skip
_ANTHROPIC_FIELDS = {
    "model", "messages", "max_tokens", "system", "temperature", "top_p", "top_k",
    "stop_sequences", "stream", "metadata", "tools", "tool_choice",
}  # fmt: skip
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    429: "rate_limit_error",
    500: "api_error",
    503: "api_error",
    529: "overloaded_error",
}


@dataclass
class Reply:
    """One scripted answer: the assistant's text (for Anthropic tool use, the JSON of the
    tool input), or an HTTP error ``status`` with ``message``; after ``delay_s``."""

    content: str = "ok"
    status: int = 200
    message: str = "scripted error"
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    usage: tuple[int, int] = (100, 20)
    model: str | None = None


@dataclass
class Seen:
    """A request as the server received it."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float


class FakeLLMServer(LocalServer):
    """``with FakeLLMServer() as server: ...`` — ``server.url`` is ``http://127.0.0.1:PORT``;
    queue replies with :meth:`queue` (``default`` answers when the queue is empty); the
    requests it saw are in ``requests``, the protocol violations in ``problems``."""

    def __init__(self, openai_key: str | None = OPENAI_KEY) -> None:
        self.openai_key = openai_key
        self.default = Reply()
        self.requests: list[Seen] = []
        self.problems: list[str] = []
        self._replies: deque[Reply] = deque()
        self._closing = threading.Event()
        super().__init__(_Handler)

    def queue(self, *replies: Reply) -> None:
        self._replies.extend(replies)

    def next_reply(self) -> Reply:
        return self._replies.popleft() if self._replies else self.default

    def pause(self, seconds: float) -> None:
        """Wait, but stop waiting when the server closes."""
        self._closing.wait(seconds)

    def close(self) -> None:
        self._closing.set()  # wake requests that pause, so the server can stop
        super().close()


class _Handler(BaseHTTPRequestHandler):
    server: FakeHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        fake = self.server.fake
        raw = self.rfile.read(int(self.headers.get("content-length", "0")))
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        dialect = "anthropic" if self.path == "/v1/messages" else "openai"
        if not isinstance(body, dict):
            return self._error(dialect, 400, "the body is not a JSON object")
        fake.requests.append(Seen(self.path, headers, body, time.monotonic()))
        if self.path == "/v1/chat/completions":
            problems = _check_openai(headers, body, fake.openai_key)
        elif self.path == "/v1/messages":
            problems = _check_anthropic(headers, body)
        else:
            return self._error(dialect, 404, f"no route {self.path}")
        if problems:
            fake.problems += problems
            return self._error(dialect, 400, "; ".join(problems))
        reply = fake.next_reply()
        fake.pause(reply.delay_s)
        if reply.status != 200:
            return self._error(dialect, reply.status, reply.message, reply.headers)
        answer = _openai_answer if dialect == "openai" else _anthropic_answer
        self._send(200, answer(body, reply), reply.headers)

    def _error(
        self, dialect: str, status: int, message: str, headers: dict[str, str] | None = None
    ) -> None:
        kind = _ERROR_TYPES.get(status, "api_error")
        error = {"type": kind, "message": message}
        if dialect == "openai":
            self._send(status, {"error": {**error, "param": None, "code": None}}, headers)
        else:
            self._send(status, {"type": "error", "error": error}, headers)

    def _send(self, status: int, doc: dict[str, Any], headers: dict[str, str] | None) -> None:
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


def _check_openai(headers: dict[str, str], body: dict[str, Any], key: str | None) -> list[str]:
    problems = _check_common(headers, body, _OPENAI_FIELDS, 2.0)
    if key is not None and headers.get("authorization") != f"Bearer {key}":
        problems.append("Incorrect API key provided (Authorization: Bearer ...)")
    if "max_tokens" in body and "max_completion_tokens" in body:
        problems.append("max_tokens and max_completion_tokens are mutually exclusive")
    roles = {"system", "developer", "user", "assistant", "tool"}
    problems += _check_messages(body.get("messages"), roles)
    response_format = body.get("response_format")
    if response_format is not None:
        problems += _check_response_format(response_format)
    return problems


def _check_anthropic(headers: dict[str, str], body: dict[str, Any]) -> list[str]:
    problems = _check_common(headers, body, _ANTHROPIC_FIELDS, 1.0)
    if headers.get("x-api-key") != ANTHROPIC_KEY:
        problems.append("x-api-key header is missing or invalid")
    if headers.get("anthropic-version") != "2023-06-01":
        problems.append("anthropic-version header is missing or unsupported")
    if not isinstance(body.get("max_tokens"), int):
        problems.append("max_tokens: Field required")
    if "system" in body and not isinstance(body["system"], str | list):
        problems.append("system: must be a string or a list of text blocks")
    problems += _check_messages(body.get("messages"), {"user", "assistant"})
    tools = body.get("tools") or []
    for tool in tools:
        if not _NAME.match(str(tool.get("name"))) or not _is_object_schema(
            tool.get("input_schema")
        ):
            problems.append("tools: each needs a valid name and an object input_schema")
    choice = body.get("tool_choice")
    names = {t.get("name") for t in tools}
    if choice is not None and choice.get("type") == "tool" and choice.get("name") not in names:
        problems.append("tool_choice names a tool that is not in tools")
    return problems


def _check_common(
    headers: dict[str, str], body: dict[str, Any], allowed: set[str], max_temperature: float
) -> list[str]:
    problems = [f"Unrecognized request argument supplied: {k}" for k in body if k not in allowed]
    if not headers.get("content-type", "").startswith("application/json"):
        problems.append("content-type must be application/json")
    if not isinstance(body.get("model"), str) or not body["model"]:
        problems.append("model: Field required")
    for name in ("max_tokens", "max_completion_tokens"):
        if name in body and not (isinstance(body[name], int) and body[name] > 0):
            problems.append(f"{name}: must be a positive integer")
    temperature = body.get("temperature", 0)
    if not isinstance(temperature, int | float) or not 0 <= temperature <= max_temperature:
        problems.append(f"temperature: must be between 0 and {max_temperature}")
    return problems


def _check_messages(messages: object, roles: set[str]) -> list[str]:
    if not isinstance(messages, list) or not messages:
        return ["messages: must be a non-empty list"]
    problems = []
    for k, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in roles:
            problems.append(f"messages.{k}.role: must be one of {sorted(roles)}")
        elif not isinstance(message.get("content"), str | list):
            problems.append(f"messages.{k}.content: must be a string or a list of parts")
    return problems


def _check_response_format(response_format: dict[str, Any]) -> list[str]:
    if response_format.get("type") != "json_schema":
        return [] if response_format.get("type") in ("text", "json_object") else ["bad type"]
    spec = response_format.get("json_schema") or {}
    if not _NAME.match(str(spec.get("name"))):
        return ["response_format.json_schema.name must match ^[a-zA-Z0-9_-]{1,64}$"]
    if spec.get("strict") and not _strict_ok(spec.get("schema")):
        return ["strict schemas need additionalProperties false and every property required"]
    return [] if _is_object_schema(spec.get("schema")) else ["schema must be an object"]


def _is_object_schema(schema: object) -> bool:
    return isinstance(schema, dict) and schema.get("type") == "object"


def _strict_ok(schema: object) -> bool:
    """OpenAI's strict mode: every object closed and with all its properties required."""
    if not isinstance(schema, dict):
        return True
    if schema.get("type") == "object":
        props = schema.get("properties", {})
        if schema.get("additionalProperties") is not False:
            return False
        if set(schema.get("required", [])) != set(props):
            return False
        return all(_strict_ok(p) for p in props.values())
    if schema.get("type") == "array":
        return _strict_ok(schema.get("items"))
    return True


def _openai_answer(body: dict[str, Any], reply: Reply) -> dict[str, Any]:
    prompt, completion = reply.usage
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": reply.model or body["model"],
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply.content, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }


def _anthropic_answer(body: dict[str, Any], reply: Reply) -> dict[str, Any]:
    choice = body.get("tool_choice") or {}
    if choice.get("type") == "tool":
        block = {
            "type": "tool_use",
            "id": "toolu_test",
            "name": choice["name"],
            "input": json.loads(reply.content),
        }
        content, stop = [block], "tool_use"
    else:
        content, stop = [{"type": "text", "text": reply.content}], "end_turn"
    return {
        "id": "msg_test",
        "type": "message",
        "role": "assistant",
        "model": reply.model or body["model"],
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": reply.usage[0], "output_tokens": reply.usage[1]},
    }
