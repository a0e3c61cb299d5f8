"""JSON Lines sessions: one session object per line.

Accepts the normalized format of the bundled example (``session_id``, ``messages`` with
flat ``tool_calls``), plain OpenAI chat-completions message lists (``tool_calls`` with a
``function`` object, content as a list of parts) and Anthropic Messages content blocks
(``text``, ``tool_use``, ``tool_result``, ``image``, ``thinking``; ``system`` at the top).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, BinaryIO, ClassVar

import orjson

from tighten.traces.formats.base import (
    ReadContext,
    Record,
    RecordError,
    SessionRecord,
    iter_lines,
    make_reject,
)
from tighten.traces.model import ROLES, Session

__all__ = ["JsonlSessions", "parse_session"]

ROLE_ALIASES = {
    "human": "user",
    "ai": "assistant",
    "model": "assistant",
    "bot": "assistant",
    "developer": "system",
    "function": "tool",
    "tool_result": "tool",
}
CANONICAL_KEYS = frozenset(
    {"role", "content", "name", "tool_call_id", "is_error", "error", "latency_ms", "timestamp"}
)
FAST_KEYS = frozenset({"role", "content", "name", "tool_call_id", "tool_calls"})
FLAT_CALL_KEYS = frozenset({"id", "name", "arguments"})
TOP_LEVEL = frozenset(
    {
        "session_id", "id", "agent", "source", "channel", "task_category", "model",
        "started_at", "ended_at", "messages", "outcome", "usage", "prompt_version",
        "artifact_versions", "system", "metadata",
    }
)  # fmt: skip
MAX_ID = 200


class JsonlSessions:
    """Sessions as JSON Lines (the default format)."""

    name: ClassVar[str] = "jsonl"
    priority: ClassVar[int] = 100

    def sniff(self, head: bytes) -> bool:
        return head.lstrip()[:1] == b"{"

    def read(self, stream: BinaryIO, context: ReadContext) -> Iterator[Record]:
        for number, line, reject in iter_lines(stream, context.max_record_bytes):
            if reject is not None:
                yield reject
                continue
            assert line is not None
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                reason = "invalid UTF-8" if "utf-8" in str(exc).lower() else f"invalid JSON: {exc}"
                yield make_reject(reason, number, line)
                continue
            try:
                yield SessionRecord(parse_session(obj, context), number)
            except RecordError as exc:
                yield make_reject(str(exc), number, line)


def parse_session(obj: Any, context: ReadContext) -> Session:
    """Normalize one session object; raise :class:`RecordError` with the reason when it
    cannot be used."""
    if not isinstance(obj, dict):
        raise RecordError(f"expected a JSON object, got {_kind(obj)}")
    session_id = obj.get("session_id", obj.get("id"))
    if isinstance(session_id, int) and not isinstance(session_id, bool):
        session_id = str(session_id)
    if not isinstance(session_id, str) or not session_id.strip():
        raise RecordError("missing session_id (a non-empty string)")
    if len(session_id) > MAX_ID:
        raise RecordError(f"session_id is longer than {MAX_ID} characters")
    raw_messages = obj.get("messages")
    if not isinstance(raw_messages, list):
        raise RecordError(f"messages must be a list, got {_kind(raw_messages)}")
    messages = _system_prefix(obj.get("system"), context)
    limit = context.max_field_chars
    if not messages and _all_canonical(raw_messages, limit):
        messages = raw_messages  # the common case: already canonical, kept as is
    else:
        for index, raw in enumerate(raw_messages):
            _add_message(messages, raw, index, limit)
    usage = _dict(obj, "usage")
    outcome = obj.get("outcome")
    if outcome is not None and not isinstance(outcome, dict):
        raise RecordError(f"outcome must be an object, got {_kind(outcome)}")
    versions = _dict(obj, "artifact_versions")
    if obj.get("prompt_version") is not None:
        versions.setdefault("prompt", str(obj["prompt_version"]))
    agent = context.agent or _text(obj, "agent") or "default"
    extra = {k: v for k, v in obj.items() if k not in TOP_LEVEL}
    extra.update(_dict(obj, "metadata"))
    return Session(
        session_id=session_id,
        messages=messages,
        agent=agent[:MAX_ID],
        origin="jsonl",
        source=_text(obj, "source"),
        channel=_text(obj, "channel"),
        task_category=_text(obj, "task_category"),
        model=_text(obj, "model"),
        started_at=_time(obj.get("started_at"), "started_at"),
        ended_at=_time(obj.get("ended_at"), "ended_at"),
        input_tokens=_int(usage, "input_tokens", "prompt_tokens"),
        output_tokens=_int(usage, "output_tokens", "completion_tokens"),
        total_tokens=_total(usage),
        cost_usd=_float(usage, "cost_usd", "cost"),
        outcome=outcome,
        artifact_versions={str(k): str(v) for k, v in versions.items()},
        attributes=extra,
    ).finalize()


def _all_canonical(raw_messages: list[Any], limit: int) -> bool:
    """True when every message is already in the canonical shape with text content and
    flat tool calls, so nothing needs to be rebuilt. Any doubt returns False and the
    message goes through the full normalizer, which explains what is wrong."""
    roles, fast_keys, str_ = ROLES, FAST_KEYS, str
    for raw in raw_messages:
        if type(raw) is not dict or raw.get("role") not in roles:
            return False
        content = raw.get("content")
        if type(content) is not str_ or len(content) > limit or not raw.keys() <= fast_keys:
            return False
        if len(raw) > 2:
            for key in ("name", "tool_call_id"):
                if key in raw and type(raw[key]) is not str_:
                    return False
            if "tool_calls" in raw and not _flat_calls(raw["tool_calls"]):
                return False
    return True


def _flat_calls(calls: Any) -> bool:
    if type(calls) is not list:
        return False
    for call in calls:
        if type(call) is not dict or call.keys() != FLAT_CALL_KEYS:
            return False
        if type(call["name"]) is not str or not call["name"]:
            return False
        if type(call["arguments"]) is not str or type(call["id"]) not in (str, type(None)):
            return False
    return True


def _add_message(out: list[dict[str, Any]], raw: Any, index: int, limit: int) -> None:
    if not isinstance(raw, dict):
        raise RecordError(f"messages[{index}] must be an object, got {_kind(raw)}")
    role = raw.get("role")
    if not isinstance(role, str):
        raise RecordError(f"messages[{index}].role is missing")
    role = ROLE_ALIASES.get(role, role)
    if role not in ROLES:
        raise RecordError(f"messages[{index}].role {role[:40]!r} is not a known role")
    content = raw.get("content")
    if isinstance(content, str) and raw.keys() <= CANONICAL_KEYS and "tool_calls" not in raw:
        # Fast path: already canonical.
        if len(content) > limit:
            raise RecordError(_too_long(f"messages[{index}].content", len(content), limit))
        msg = dict(raw)
        msg["role"] = role
        _check_optional(msg, index)
        out.append(msg)
        return
    msg = {"role": role, "content": ""}
    for key in ("name", "tool_call_id", "timestamp"):
        if isinstance(raw.get(key), str):
            msg[key] = raw[key]
    if raw.get("is_error") is True:
        msg["is_error"] = True
    calls = [_tool_call(tc, index, i) for i, tc in enumerate(_list(raw, "tool_calls", index))]
    if isinstance(raw.get("function_call"), dict):  # legacy OpenAI
        calls.append(_tool_call(raw["function_call"], index, len(calls)))
    tool_results = _content(msg, content, calls, index, limit)
    if calls:
        msg["tool_calls"] = calls
    if msg["content"] or calls or not tool_results or role != "user":
        out.append(msg)
    out.extend(tool_results)


def _content(
    msg: dict[str, Any],
    content: Any,
    calls: list[dict[str, Any]],
    index: int,
    limit: int,
) -> list[dict[str, Any]]:
    """Fill ``msg`` from string or block content; return tool-result messages split out of
    Anthropic ``tool_result`` blocks."""
    if content is None:
        return []
    if isinstance(content, str):
        if len(content) > limit:
            raise RecordError(_too_long(f"messages[{index}].content", len(content), limit))
        msg["content"] = content
        return []
    if not isinstance(content, list):
        raise RecordError(f"messages[{index}].content must be text or a list, got {_kind(content)}")
    texts: list[str] = []
    media: list[str] = []
    results: list[dict[str, Any]] = []
    thoughts: list[str] = []
    for block in content:
        _block(block, texts, media, calls, results, thoughts, index)
    text = "\n".join(texts)
    if len(text) > limit:
        raise RecordError(_too_long(f"messages[{index}].content", len(text), limit))
    msg["content"] = text
    if media:
        msg["media"] = media
    if thoughts:
        msg["reasoning"] = "\n".join(thoughts)[:limit]
    for block in content:
        if isinstance(block, dict) and block.get("type") == "tool_result":
            results.append(_tool_result(block, index, limit))
    return results


def _block(
    block: Any,
    texts: list[str],
    media: list[str],
    calls: list[dict[str, Any]],
    results: list[dict[str, Any]],
    thoughts: list[str],
    index: int,
) -> None:
    if isinstance(block, str):
        texts.append(block)
        return
    if not isinstance(block, dict):
        raise RecordError(f"messages[{index}].content has a {_kind(block)} block")
    kind = block.get("type")
    if kind in ("text", "input_text", "output_text"):
        texts.append(str(block.get("text", "")))
    elif kind == "tool_use":
        calls.append(_tool_call(block, index, len(calls)))
    elif kind == "tool_result":
        pass  # split out into a tool message by the caller
    elif kind == "thinking":
        thoughts.append(str(block.get("thinking", "")))
    elif kind == "redacted_thinking":
        pass
    elif kind in ("image", "image_url", "input_image"):
        source = block.get("source")
        media_type = source.get("media_type") if isinstance(source, dict) else None
        media.append(str(media_type or "image"))
    elif kind in ("input_audio", "audio"):
        media.append("audio")
    elif kind in ("document", "file", "input_file"):
        media.append("file")
    else:
        media.append(str(kind)[:40])


def _tool_call(raw: Any, index: int, position: int) -> dict[str, Any]:
    where = f"messages[{index}].tool_calls[{position}]"
    if not isinstance(raw, dict):
        raise RecordError(f"{where} must be an object, got {_kind(raw)}")
    inner = raw.get("function")
    fn: dict[str, Any] = inner if isinstance(inner, dict) else raw
    name = fn.get("name")
    if not isinstance(name, str) or not name:
        raise RecordError(f"{where} has no name")
    args = fn.get("arguments", fn.get("input", raw.get("input")))
    if not isinstance(args, str):
        args = orjson.dumps(args).decode() if args is not None else ""
    call_id = raw.get("id")
    return {"id": call_id if isinstance(call_id, str) else None, "name": name, "arguments": args}


def _tool_result(block: dict[str, Any], index: int, limit: int) -> dict[str, Any]:
    content = block.get("content")
    if isinstance(content, list):
        content = "\n".join(
            str(b.get("text", "")) if isinstance(b, dict) else str(b) for b in content
        )
    text = "" if content is None else content if isinstance(content, str) else str(content)
    if len(text) > limit:
        raise RecordError(_too_long(f"messages[{index}] tool_result", len(text), limit))
    msg: dict[str, Any] = {"role": "tool", "content": text}
    if isinstance(block.get("tool_use_id"), str):
        msg["tool_call_id"] = block["tool_use_id"]
    if block.get("is_error") is True:
        msg["is_error"] = True
    return msg


def _system_prefix(system: Any, context: ReadContext) -> list[dict[str, Any]]:
    if system is None:
        return []
    if isinstance(system, list):
        system = "\n".join(
            str(b.get("text", "")) if isinstance(b, dict) else str(b) for b in system
        )
    if not isinstance(system, str):
        raise RecordError(f"system must be text or a list of blocks, got {_kind(system)}")
    if len(system) > context.max_field_chars:
        raise RecordError(_too_long("system", len(system), context.max_field_chars))
    return [{"role": "system", "content": system}]


def _check_optional(msg: dict[str, Any], index: int) -> None:
    for key in ("name", "tool_call_id", "timestamp", "error"):
        if key in msg and msg[key] is not None and not isinstance(msg[key], str):
            raise RecordError(f"messages[{index}].{key} must be text, got {_kind(msg[key])}")
        if key in msg and msg[key] is None:
            del msg[key]
    if "latency_ms" in msg and not isinstance(msg["latency_ms"], int | float):
        raise RecordError(f"messages[{index}].latency_ms must be a number")
    if "is_error" in msg and not isinstance(msg["is_error"], bool):
        raise RecordError(f"messages[{index}].is_error must be true or false")


def _too_long(field: str, size: int, limit: int) -> str:
    return f"{field} is {size:,} characters, over the limit of {limit:,} (max_field_chars)"


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string"}.get(
        type(value), "a list" if isinstance(value, list) else "an object"
    )


def _text(obj: dict[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise RecordError(f"{key} must be text, got {_kind(value)}")
    return value[:1000]


def _dict(obj: dict[str, Any], key: str) -> dict[str, Any]:
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RecordError(f"{key} must be an object, got {_kind(value)}")
    return dict(value)


def _list(obj: dict[str, Any], key: str, index: int) -> list[Any]:
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise RecordError(f"messages[{index}].{key} must be a list, got {_kind(value)}")
    return value


def _int(obj: dict[str, Any], *keys: str) -> int | None:
    for key in keys:
        value = obj.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if value is not None:
            raise RecordError(f"usage.{key} must be a whole number, got {_kind(value)}")
    return None


def _total(usage: dict[str, Any]) -> int | None:
    """``total_tokens``, or input + output when only those are given."""
    total = _int(usage, "total_tokens")
    if total is not None:
        return total
    parts = (
        _int(usage, "input_tokens", "prompt_tokens"),
        _int(usage, "output_tokens", "completion_tokens"),
    )
    return None if parts[0] is None and parts[1] is None else sum(p or 0 for p in parts)


def _float(obj: dict[str, Any], *keys: str) -> float | None:
    for key in keys:
        value = obj.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if value is not None:
            raise RecordError(f"usage.{key} must be a number, got {_kind(value)}")
    return None


def _time(value: Any, field: str) -> datetime | None:
    """ISO 8601 text or Unix seconds to an aware UTC datetime."""
    if value is None:
        return None
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.fromtimestamp(value, UTC)
        if isinstance(value, str):
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError, OSError):
        pass
    raise RecordError(f"{field} must be an ISO 8601 time or Unix seconds, got {str(value)[:40]!r}")
