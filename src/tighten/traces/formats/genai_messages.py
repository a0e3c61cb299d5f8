"""The messages a span carries, as canonical transcript messages.

Read by the first convention that has any, newest first:

- OpenTelemetry GenAI: ``gen_ai.system_instructions`` and ``gen_ai.input.messages`` /
  ``gen_ai.output.messages`` (JSON: ``role``, typed ``parts`` — ``text``, ``tool_call``,
  ``tool_call_response``, ``reasoning``, ``blob``/``file``/``uri`` — and ``name``).
- OpenInference: ``llm.input_messages.{i}.message.*`` / ``llm.output_messages.{i}...``
  (``role``, ``content``, ``contents.{k}.message_content.*``,
  ``tool_calls.{j}.tool_call.{id,function.name,function.arguments}``, ``tool_call_id``).
- OpenLLMetry: ``gen_ai.prompt.{i}.*`` / ``gen_ai.completion.{i}.*`` (``role``,
  ``content``, ``tool_call_id``, ``tool_calls.{j}.{id,name,arguments}``).
- The GenAI span events before ``gen_ai.input.messages``:
  ``gen_ai.{system,user,assistant,tool}.message`` and ``gen_ai.choice``, their body
  flattened into the event attributes or JSON in ``gen_ai.event.content``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tighten.traces.formats.genai import MEDIA_PARTS, attrs, json_text, json_value, text_of

__all__ = ["indexed", "input_messages", "output_messages"]

ROLE_ALIASES = {
    "human": "user",
    "ai": "assistant",
    "model": "assistant",
    "bot": "assistant",
    "developer": "system",
    "function": "tool",
}
ROLES = frozenset({"system", "user", "assistant", "tool"})
EVENT_ROLES = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}


def input_messages(span: dict[str, Any]) -> list[dict[str, Any]]:
    """The messages the span sent to the model (its whole history), by the first
    convention that has any."""
    a = attrs(span)
    genai = _genai_list(a.get("gen_ai.input.messages"))
    system = _system_instructions(a.get("gen_ai.system_instructions"))
    if system and (not genai or genai[0]["role"] != "system"):
        genai.insert(0, system)
    if genai:
        return genai
    return (
        _indexed_messages(a, "llm.input_messages.", _oi_message, "user")
        or _indexed_messages(a, "gen_ai.prompt.", _openllmetry_message, "user")
        or _event_messages(span)[0]
    )


def output_messages(span: dict[str, Any]) -> list[dict[str, Any]]:
    """The message the model returned (the first choice when it returned several)."""
    a = attrs(span)
    found = (
        _genai_list(a.get("gen_ai.output.messages"))
        or _indexed_messages(a, "llm.output_messages.", _oi_message, "assistant")
        or _indexed_messages(a, "gen_ai.completion.", _openllmetry_message, "assistant")
        or _event_messages(span)[1]
    )
    return found[:1]


def _genai_list(value: Any) -> list[dict[str, Any]]:
    items = json_value(value)
    out: list[dict[str, Any]] = []
    if isinstance(items, list):
        for item in items:
            out.extend(_genai_message(item))
    return out


def _system_instructions(value: Any) -> dict[str, Any] | None:
    parts = json_value(value)
    if isinstance(value, str) and parts is None:
        parts = value  # plain text rather than JSON parts
    text = text_of(parts)
    return {"role": "system", "content": text} if text else None


@dataclass(slots=True)
class _Parts:
    text: list[str] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    responses: list[tuple[Any, Any]] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    media: list[str] = field(default_factory=list)


def _genai_message(raw: Any) -> list[dict[str, Any]]:
    """One GenAI ``{"role", "parts", "name"}`` message; a ``tool_call_response`` part
    becomes its own ``tool`` message, whatever role carried it."""
    if not isinstance(raw, dict):
        return []
    role = _role(raw.get("role"))
    if role is None:
        return []
    parts = raw.get("parts")
    if not isinstance(parts, list):
        parts = [{"type": "text", "content": raw.get("content")}]
    acc = _read_parts(parts)
    out = [_tool_message(text_of(result), call_id, None) for call_id, result in acc.responses]
    text = "\n".join(t for t in acc.text if t)
    if role == "tool":
        return out or [_tool_message(text, None, raw.get("name"))]
    if text or acc.calls or acc.reasoning or acc.media or not out:
        msg: dict[str, Any] = {"role": role, "content": text}
        _add_optional(msg, acc, raw.get("name"))
        out.append(msg)  # after the tool results it carries, as Anthropic orders them
    return out


def _read_parts(parts: list[Any]) -> _Parts:
    acc = _Parts()
    for part in parts:
        if isinstance(part, str):
            acc.text.append(part)
            continue
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "text":
            acc.text.append(text_of(part.get("content")))
        elif kind == "tool_call":
            call = _call(part.get("id"), part.get("name"), part.get("arguments"))
            if call:
                acc.calls.append(call)
        elif kind == "tool_call_response":
            acc.responses.append((part.get("id"), part.get("response", part.get("result"))))
        elif kind == "reasoning":
            acc.reasoning.append(text_of(part.get("content")))
        elif kind in MEDIA_PARTS:
            acc.media.append(str(part.get("mime_type") or part.get("modality") or kind)[:80])
    return acc


def _add_optional(msg: dict[str, Any], acc: _Parts, name: Any) -> None:
    if acc.calls:
        msg["tool_calls"] = acc.calls
    if any(acc.reasoning):
        msg["reasoning"] = "\n".join(r for r in acc.reasoning if r)
    if acc.media:
        msg["media"] = acc.media
    if isinstance(name, str) and name:
        msg["name"] = name


def _indexed_messages(
    a: dict[str, Any],
    prefix: str,
    convert: Callable[[dict[str, Any], str], list[dict[str, Any]]],
    default_role: str,
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for flat in indexed(a, prefix):
        out.extend(convert(flat, default_role))
    return out


def indexed(a: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    """Flattened lists: ``{prefix}{i}.{rest}`` keys grouped by ``i`` into ``{rest: value}``
    dicts, in index order."""
    groups: dict[int, dict[str, Any]] = {}
    for key in [k for k in a if k.startswith(prefix)]:  # most spans have none: scan fast
        head, _, rest = key[len(prefix) :].partition(".")
        if head.isdigit() and rest:
            groups.setdefault(int(head), {})[rest] = a[key]
    return [groups[i] for i in sorted(groups)]


def _oi_message(flat: dict[str, Any], default_role: str) -> list[dict[str, Any]]:
    """An OpenInference ``message.*`` group."""
    role = _role(flat.get("message.role")) or default_role
    acc = _Parts()
    for item in indexed(flat, "message.contents."):
        kind = item.get("message_content.type")
        if kind == "text":
            acc.text.append(text_of(item.get("message_content.text")))
        elif kind == "reasoning":
            acc.reasoning.append(text_of(item.get("message_content.text")))
        elif kind in MEDIA_PARTS:
            acc.media.append(str(kind))
    for item in indexed(flat, "message.tool_calls."):
        fn = ("tool_call.function.name", "tool_call.function.arguments")
        call = _call(item.get("tool_call.id"), item.get(fn[0]), item.get(fn[1]))
        if call:
            acc.calls.append(call)
    legacy = _call(
        None,
        flat.get("message.function_call_name"),
        flat.get("message.function_call_arguments_json"),
    )
    if legacy:
        acc.calls.append(legacy)
    content = flat.get("message.content")
    text = text_of(content) if content is not None else "\n".join(t for t in acc.text if t)
    if role == "tool":
        return [_tool_message(text, flat.get("message.tool_call_id"), flat.get("message.name"))]
    msg: dict[str, Any] = {"role": role, "content": text}
    _add_optional(msg, acc, flat.get("message.name"))
    return [msg]


def _openllmetry_message(flat: dict[str, Any], default_role: str) -> list[dict[str, Any]]:
    """An OpenLLMetry ``gen_ai.prompt.{i}`` / ``gen_ai.completion.{i}`` group."""
    role = _role(flat.get("role")) or default_role
    text = text_of(_json_parts(flat.get("content")))
    if role == "tool":
        return [_tool_message(text, flat.get("tool_call_id"), flat.get("name"))]
    acc = _Parts()
    for item in indexed(flat, "tool_calls."):
        call = _call(item.get("id"), item.get("name"), item.get("arguments"))
        if call:
            acc.calls.append(call)
    msg: dict[str, Any] = {"role": role, "content": text}
    _add_optional(msg, acc, None)
    return [msg]


def _event_messages(span: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Messages from the span events of GenAI conventions before ``gen_ai.input.messages``."""
    inputs: list[dict[str, Any]] = []
    outputs: list[dict[str, Any]] = []
    events = span.get("events")
    for event in events if isinstance(events, list) else []:
        if not isinstance(event, dict):
            continue
        name = event.get("name")
        body = _event_body(event.get("attributes"))
        if name in EVENT_ROLES:
            inputs.extend(_openai_message(body, EVENT_ROLES[str(name)]))
        elif name == "gen_ai.choice":
            message = body.get("message")
            outputs.extend(
                _openai_message(message if isinstance(message, dict) else body, "assistant")
            )
    return inputs, outputs


def _event_body(value: Any) -> dict[str, Any]:
    body = dict(value) if isinstance(value, dict) else {}
    content = json_value(body.pop("gen_ai.event.content", None))
    if isinstance(content, dict):
        body.update(content)
    return body


def _openai_message(body: Any, default_role: str) -> list[dict[str, Any]]:
    """A message in the OpenAI chat shape (the GenAI event bodies use it)."""
    if not isinstance(body, dict):
        return []
    role = _role(body.get("role")) or default_role
    text = text_of(body.get("content"))
    if role == "tool":
        call_id = body.get("tool_call_id", body.get("id"))
        return [_tool_message(text, call_id, body.get("name"))]
    acc = _Parts()
    for raw in _as_list(json_value(body.get("tool_calls"))):
        if isinstance(raw, dict):
            fn = raw["function"] if isinstance(raw.get("function"), dict) else raw
            call = _call(raw.get("id"), fn.get("name"), fn.get("arguments"))
            if call:
                acc.calls.append(call)
    msg: dict[str, Any] = {"role": role, "content": text}
    _add_optional(msg, acc, None)
    return [msg]


def _tool_message(content: str, call_id: Any, name: Any) -> dict[str, Any]:
    msg: dict[str, Any] = {"role": "tool", "content": content}
    if isinstance(call_id, str) and call_id.strip():
        msg["tool_call_id"] = call_id.strip()
    if isinstance(name, str) and name:
        msg["name"] = name
    return msg


def _call(call_id: Any, name: Any, arguments: Any) -> dict[str, Any] | None:
    if not isinstance(name, str) or not name:
        return None
    ident = call_id.strip() if isinstance(call_id, str) and call_id.strip() else None
    return {"id": ident, "name": name, "arguments": json_text(arguments)}


def _role(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    role = ROLE_ALIASES.get(value.lower(), value.lower())
    return role if role in ROLES else None


def _json_parts(value: Any) -> Any:
    """OpenLLMetry content that is a JSON list of content blocks, decoded; other text kept."""
    if isinstance(value, str) and value.lstrip().startswith("[{"):
        decoded = json_value(value)
        if isinstance(decoded, list) and all(isinstance(v, dict) for v in decoded):
            return decoded
    return value


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
