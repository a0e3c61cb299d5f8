"""The normalized session, the unit every step of the loop reads.

A session's transcript is a list of message dicts in one canonical shape, whatever the
input format was (tau-bench/OpenAI/Anthropic JSONL, OTLP GenAI or OpenInference spans):

=================  =========================================================================
key                meaning
=================  =========================================================================
``role``           ``system``, ``user``, ``assistant`` or ``tool`` (always present)
``content``        the text, ``""`` when the message only calls tools (always present)
``name``           the speaking agent (multi-agent transcripts) or, on ``tool``, the tool
``tool_calls``     on ``assistant``: ``[{"id": str | None, "name": str, "arguments": str}]``
``tool_call_id``   on ``tool``: the id of the call this message answers
``is_error``       on ``tool``: the source marked the result as an error (status, is_error)
``error``          on ``tool``: the structured error text, when the source gave one
``latency_ms``     on ``tool``: how long the call took, when known
``timestamp``      ISO 8601 UTC time of the message, when known
``media``          media types the message carried (``image/png``, ``audio``, ``file``)
``reasoning``      hidden reasoning text the source recorded (Anthropic ``thinking``)
=================  =========================================================================

Absent optional keys are omitted, not ``null``, which keeps transcripts small.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

__all__ = ["ROLES", "Reject", "Session", "ToolCall", "link_tool_calls"]

ROLES = frozenset({"system", "user", "assistant", "tool"})


@dataclass(slots=True)
class ToolCall:
    """One call of a tool, joined with its result."""

    name: str
    arguments: str
    message_index: int
    call_id: str | None = None
    result: str | None = None
    error: str | None = None
    status: str = "unknown"  # ok | error | unknown (no result seen)
    latency_ms: float | None = None
    started_at: datetime | None = None


@dataclass(slots=True)
class Session:
    """One conversation or task run, normalized."""

    session_id: str
    messages: list[dict[str, Any]]
    agent: str = "default"
    origin: str = "jsonl"
    source: str | None = None
    channel: str | None = None
    task_category: str | None = None
    model: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    cost_usd: float | None = None
    outcome: dict[str, Any] | None = None
    artifact_versions: dict[str, str] = field(default_factory=dict)
    attributes: dict[str, Any] = field(default_factory=dict)
    span_count: int = 0
    tool_calls: list[ToolCall] = field(default_factory=list)
    _body: bytes | None = field(default=None, repr=False, compare=False)

    def finalize(self) -> Session:
        """Derive the tool calls from the transcript (when the format did not)."""
        if not self.tool_calls:
            self.tool_calls = link_tool_calls(self.messages)
        return self

    @property
    def outcome_success(self) -> bool | None:
        value = (self.outcome or {}).get("success")
        return value if isinstance(value, bool) else None

    @property
    def outcome_reward(self) -> float | None:
        value = (self.outcome or {}).get("reward")
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        return float(value) if is_number and value is not None else None

    def body_json(self) -> bytes:
        """The transcript as JSON, serialized once and shared by the hash and the store."""
        if self._body is None:
            self._body = orjson.dumps(self.messages, option=orjson.OPT_NON_STR_KEYS)
        return self._body

    def content_hash(self) -> str:
        """A hash of everything that was ingested, so a re-ingest of the same data is
        recognised as unchanged and a fuller copy as an update."""
        doc = (
            self.session_id,
            self.agent,
            self.origin,
            self.source,
            self.channel,
            self.task_category,
            self.model,
            self.started_at,
            self.ended_at,
            self.input_tokens,
            self.output_tokens,
            self.total_tokens,
            self.cost_usd,
            self.outcome,
            self.artifact_versions,
            self.attributes,
            self.span_count,
        )
        digest = hashlib.sha256(
            orjson.dumps(doc, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
        )
        digest.update(self.body_json())
        return digest.hexdigest()


@dataclass(slots=True, frozen=True)
class Reject:
    """An input record that could not be used, with where it was and why."""

    reason: str
    line: int | None = None
    excerpt: str = ""
    record_hash: str = ""


def link_tool_calls(messages: list[dict[str, Any]]) -> list[ToolCall]:
    """Join each assistant tool call with the tool message that answers it: by
    ``tool_call_id`` where given, else the next unanswered call of the same name."""
    calls: list[ToolCall] = []
    by_id: dict[str, ToolCall] = {}
    pending: list[ToolCall] = []
    for index, msg in enumerate(messages):
        role = msg["role"]
        if role == "assistant" and msg.get("tool_calls"):
            for tc in msg["tool_calls"]:
                call = ToolCall(tc["name"], tc["arguments"], index, tc.get("id"))
                calls.append(call)
                pending.append(call)
                if call.call_id:
                    by_id[call.call_id] = call
        elif role == "tool":
            matched = _match(msg, by_id, pending)
            if matched is None:
                continue
            call = matched
            pending.remove(call)
            call.result = msg["content"]
            call.error = msg.get("error")
            call.latency_ms = msg.get("latency_ms")
            call.status = "error" if (msg.get("is_error") or call.error) else "ok"
    return calls


def _match(
    msg: dict[str, Any], by_id: dict[str, ToolCall], pending: list[ToolCall]
) -> ToolCall | None:
    call_id = msg.get("tool_call_id")
    if call_id and call_id in by_id and by_id[call_id] in pending:
        return by_id[call_id]
    name = msg.get("name")
    for call in pending:
        if name is None or call.name == name:
            return call
    return None
