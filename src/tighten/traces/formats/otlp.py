"""OpenTelemetry traces as input: OTLP export requests, as JSON or protobuf.

``OtlpJson`` reads the OTLP JSON encoding (hex ids, camelCase keys) as JSON Lines, one
``ExportTraceServiceRequest`` a line (what the Collector's file exporter writes), or as one
document over many lines; ids in base64 (what protobuf's ``json_format`` writes) are
accepted too. ``OtlpProtobuf`` reads one binary ``ExportTraceServiceRequest``.

Each request becomes one :class:`~tighten.traces.formats.base.SpanRecord` of flat span
dicts, plus a reject for each span that could not be used. A span's session is its
``gen_ai.conversation.id`` (or another well-known session attribute), else that of another
span of its trace in the same request, else its trace id. :func:`assemble_session` builds
the normalized session from every stored span of one session.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterator
from itertools import chain
from math import isfinite
from typing import Any, BinaryIO, ClassVar

import orjson

from tighten.traces.formats.assemble import assemble_session
from tighten.traces.formats.base import (
    ReadContext,
    Record,
    RecordError,
    SpanRecord,
    iter_lines,
    make_reject,
)

__all__ = ["OtlpJson", "OtlpProtobuf", "assemble_session", "request_records"]

SPAN_KINDS = ("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")
STATUS_CODES = ("UNSET", "OK", "ERROR")
SESSION_KEYS = (
    "gen_ai.conversation.id",  # OpenTelemetry GenAI
    "session.id",  # OpenInference, Langfuse
    "langfuse.session.id",  # Langfuse
    "traceloop.association.properties.session_id",  # OpenLLMetry
    "ai.telemetry.metadata.sessionId",  # Vercel AI SDK
)
MAX_SESSION_ID = 200
HEX = re.compile(r"[0-9a-fA-F]+")
JSON_KEY = re.compile(rb'(?<!\\)"(resourceSpans|resource_spans|messages|session_id)"\s*:')


class OtlpJson:
    """OTLP JSON: export requests as JSON Lines or as one document."""

    name: ClassVar[str] = "otlp-json"
    priority: ClassVar[int] = 20

    def sniff(self, head: bytes) -> bool:
        text = head.lstrip()
        if text[:1] not in (b"{", b"["):
            return False
        first = JSON_KEY.search(text)  # the first key that tells the formats apart
        return first is not None and first.group(1).startswith(b"resource")

    def read(self, stream: BinaryIO, context: ReadContext) -> Iterator[Record]:
        lines = iter_lines(stream, context.max_record_bytes)
        pending: list[tuple[int, bytes | None, Any]] = []
        for number, line, reject in lines:
            pending.append((number, line, reject))
            if (line is None and len(pending) == 1) or (line is not None and _is_json(line)):
                break  # a whole request on a line (or a first line too long): JSON Lines
            if len(pending) == 2:  # two lines that are not JSON alone: one document
                yield from _document(pending, stream, context)
                return
        for number, line, reject in chain(pending, lines):
            if reject is not None:
                yield reject
            elif line is not None:
                yield from _line_records(number, line, context)


class OtlpProtobuf:
    """One binary OTLP ``ExportTraceServiceRequest``."""

    name: ClassVar[str] = "otlp-protobuf"
    priority: ClassVar[int] = 10

    def sniff(self, head: bytes) -> bool:
        """Field 1 (``resource_spans``, length-delimited) holding a ``ResourceSpans``
        field, in bytes that are not text."""
        if len(head) < 3 or head[0] != 0x0A or _is_text(head):
            return False
        length, pos = _varint(head, 1)
        if not length or pos >= len(head):
            return False
        return head[pos] in (0x0A, 0x12, 0x1A)

    def read(self, stream: BinaryIO, context: ReadContext) -> Iterator[Record]:
        from google.protobuf.json_format import MessageToDict
        from google.protobuf.message import DecodeError
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        limit = context.max_record_bytes
        data = _read_at_most(stream, limit + 1)
        if len(data) > limit:
            reason = f"protobuf request is over the limit of {limit:,} bytes (max_record_bytes)"
            yield make_reject(reason, None, data[:200])
            return
        if not data:
            return
        request = ExportTraceServiceRequest()
        try:
            request.ParseFromString(data)
        except DecodeError as exc:
            yield make_reject(f"not an OTLP protobuf ExportTraceServiceRequest: {exc}", None, data)
            return
        yield from request_records(MessageToDict(request), None, data, context)


def request_records(
    obj: Any, line: int | None, raw: bytes, context: ReadContext
) -> Iterator[Record]:
    """The records of one decoded ``ExportTraceServiceRequest``: a span record with the
    good spans, and a reject for each bad one."""
    resource_spans = _get(obj, "resourceSpans", "resource_spans") if isinstance(obj, dict) else None
    if not isinstance(resource_spans, list):
        yield make_reject("not an OTLP export request: no resourceSpans list", line, raw)
        return
    spans: list[dict[str, Any]] = []
    rejects = []
    for index, (resource, scope, raw_span) in enumerate(_walk(resource_spans)):
        try:
            spans.append(_span(raw_span, resource, scope, context))
        except RecordError as exc:
            rejects.append(make_reject(f"span {index}: {exc}", line, _dump(raw_span)))
    _inherit_sessions(spans)
    if spans:
        yield SpanRecord(list(spans), line)
    yield from rejects


def _document(
    pending: list[tuple[int, bytes | None, Any]], stream: BinaryIO, context: ReadContext
) -> Iterator[Record]:
    """One request (or a list of them) pretty-printed over many lines."""
    limit = context.max_record_bytes
    head = b"".join(line or b"" for _, line, _ in pending)
    data = head + _read_at_most(stream, limit + 1 - len(head))
    if len(data) > limit or any(line is None for _, line, _ in pending):
        reason = f"JSON document is over the limit of {limit:,} bytes (max_record_bytes)"
        yield make_reject(reason, 1, data[:200])
        return
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        yield make_reject(f"invalid JSON: {exc}", 1, data)
        return
    yield from _requests(obj, None, data, context)


def _line_records(number: int, line: bytes, context: ReadContext) -> Iterator[Record]:
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        reason = "invalid UTF-8" if "utf-8" in str(exc).lower() else f"invalid JSON: {exc}"
        yield make_reject(reason, number, line)
        return
    yield from _requests(obj, number, line, context)


def _requests(obj: Any, line: int | None, raw: bytes, context: ReadContext) -> Iterator[Record]:
    """One export request, or a JSON list of them."""
    for item in obj if isinstance(obj, list) else [obj]:
        yield from request_records(item, line, raw, context)


def _walk(resource_spans: list[Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any], Any]]:
    """``(resource attributes, scope, raw span)`` for every span of a request."""
    for entry in resource_spans:
        if not isinstance(entry, dict):
            continue
        resource = _attributes(_dict(entry.get("resource")).get("attributes"))
        scopes = _get(entry, "scopeSpans", "scope_spans", "instrumentationLibrarySpans")
        for scope_spans in scopes if isinstance(scopes, list) else []:
            if not isinstance(scope_spans, dict):
                continue
            raw_scope = _dict(scope_spans.get("scope") or scope_spans.get("instrumentationLibrary"))
            scope = {"name": _str(raw_scope.get("name")), "version": _str(raw_scope.get("version"))}
            found = scope_spans.get("spans")
            yield from (
                (resource, scope, raw) for raw in (found if isinstance(found, list) else [])
            )


def _span(
    raw: Any, resource: dict[str, Any], scope: dict[str, Any], context: ReadContext
) -> dict[str, Any]:
    """One span as the flat dict stored in the ``spans`` table."""
    if not isinstance(raw, dict):
        raise RecordError("a span must be an object")
    parent = _get(raw, "parentSpanId", "parent_span_id")
    status = _dict(raw.get("status"))
    message = status.get("message")
    span: dict[str, Any] = {
        "trace_id": _id(_get(raw, "traceId", "trace_id"), 16, "traceId"),
        "span_id": _id(_get(raw, "spanId", "span_id"), 8, "spanId"),
        "parent_span_id": _id(parent, 8, "parentSpanId", root=True) if parent else None,
        "name": _str(raw.get("name")) or "",
        "kind": _enum(raw.get("kind"), SPAN_KINDS, "SPAN_KIND_"),
        "start_time_unix_nano": _nanos(raw, "startTimeUnixNano", "start_time_unix_nano"),
        "end_time_unix_nano": _nanos(raw, "endTimeUnixNano", "end_time_unix_nano"),
        "status_code": _enum(status.get("code"), STATUS_CODES, "STATUS_CODE_"),
        "status_message": message if isinstance(message, str) and message else None,
        "attributes": _attributes(raw.get("attributes")),
        "events": _events(raw.get("events")),
        "resource": resource,
        "scope": scope,
        "session_id": "",
    }
    _check_sizes(span, context.max_field_chars)
    span["session_id"] = _own_session(span["attributes"], resource)
    return span


def _own_session(attributes: dict[str, Any], resource: dict[str, Any]) -> str:
    for source in (attributes, resource):
        for key in SESSION_KEYS:
            value = source.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                value = str(value)
            if isinstance(value, str) and value.strip():
                if len(value) > MAX_SESSION_ID:
                    raise RecordError(f"{key} is longer than {MAX_SESSION_ID} characters")
                return value.strip()
    return ""


def _inherit_sessions(spans: list[dict[str, Any]]) -> None:
    """A span without a session of its own takes that of its trace, else the trace id."""
    by_trace: dict[str, str] = {}
    for span in spans:
        if span["session_id"]:
            by_trace.setdefault(span["trace_id"], span["session_id"])
    for span in spans:
        if not span["session_id"]:
            span["session_id"] = by_trace.get(span["trace_id"], span["trace_id"])


def _id(value: Any, size: int, field: str, root: bool = False) -> str | None:
    """A trace or span id as lowercase hex, from hex (the OTLP JSON encoding) or base64;
    an all-zero parent id (``root``) means no parent."""
    if not isinstance(value, str) or not value.strip():
        raise RecordError(f"{field} is missing")
    text = value.strip()
    if len(text) == size * 2 and HEX.fullmatch(text):
        ident = text.lower()
    else:
        try:
            decoded = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            decoded = b""
        if len(decoded) != size:
            raise RecordError(
                f"{field} {text[:40]!r} is neither {size * 2} hex digits nor base64 of {size} bytes"
            )
        ident = decoded.hex()
    if not ident.strip("0"):
        if root:
            return None
        raise RecordError(f"{field} is all zeros")
    return ident


def _nanos(raw: dict[str, Any], *keys: str) -> int:
    value = _get(raw, *keys)
    if value is None:
        return 0
    if isinstance(value, str) and value.isdigit():
        return int(value)
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if is_number and value >= 0 and float(value).is_integer():
        return int(value)
    raise RecordError(f"{keys[0]} {str(value)[:40]!r} is not a whole number of nanoseconds")


def _enum(value: Any, names: tuple[str, ...], prefix: str) -> str:
    """An OTLP enum given as its number, its full name or its short name."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(names):
        return names[value]
    if isinstance(value, str):
        short = value.upper().removeprefix(prefix)
        if short in names:
            return short
        if short.isdigit() and int(short) < len(names):
            return names[int(short)]
    return names[0]


def _attributes(raw: Any) -> dict[str, Any]:
    """OTLP ``KeyValue`` list to a flat dict of plain values."""
    out: dict[str, Any] = {}
    for item in raw if isinstance(raw, list) else []:
        if isinstance(item, dict) and isinstance(key := item.get("key"), str):
            value = item.get("value")
            # the common case first: a string, spelled as the JSON encoding does
            text = value.get("stringValue") if type(value) is dict and len(value) == 1 else None
            out[key] = text if type(text) is str else _any_value(value)
    return out


def _any_value(value: Any) -> Any:
    """An OTLP ``AnyValue`` (JSON or ``json_format`` spelling) as a Python value."""
    if not isinstance(value, dict):
        return value if isinstance(value, str | int | float | bool) else None
    for key, item in value.items():
        read = VALUE_READERS.get(key) or VALUE_READERS.get(key.replace("_", "").lower())
        if read is not None:
            return read(item)
    return None


def _text_value(item: Any) -> str:
    return item if isinstance(item, str) else str(item)


def _bool_value(item: Any) -> bool:
    return item if isinstance(item, bool) else str(item).lower() == "true"


def _array_value(item: Any) -> list[Any]:
    values = _dict(item).get("values")
    return [_any_value(v) for v in values] if isinstance(values, list) else []


def _number(value: Any, kind: type[int] | type[float]) -> int | float | None:
    """A number, or ``None`` when malformed. NaN and infinities (``"NaN"``, ``"Infinity"``
    in the JSON encoding) are ``None`` too: JSON has no such values, so that is how they
    are stored and read back."""
    try:
        number = kind(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if kind is int or isfinite(number) else None


# ``AnyValue`` fields by their name lowercased without underscores, and as spelled by the
# JSON encoding and by protobuf field names (looked up first, to skip normalizing).
VALUE_READERS: dict[str, Callable[[Any], Any]] = {
    "stringvalue": _text_value,
    "bytesvalue": _text_value,
    "boolvalue": _bool_value,
    "intvalue": lambda item: _number(item, int),
    "doublevalue": lambda item: _number(item, float),
    "arrayvalue": _array_value,
    "kvlistvalue": lambda item: _attributes(_dict(item).get("values")),
}
VALUE_READERS.update(
    {
        spelling: VALUE_READERS[kind]
        for kind in list(VALUE_READERS)
        for spelling in (kind.replace("value", "Value"), kind.replace("value", "_value"))
    }
)


def _events(value: Any) -> list[dict[str, Any]]:
    return [_event(e) for e in value if isinstance(e, dict)] if isinstance(value, list) else []


def _event(raw: dict[str, Any]) -> dict[str, Any]:
    try:
        time = _nanos(raw, "timeUnixNano", "time_unix_nano")
    except RecordError:
        time = 0
    return {
        "name": _str(raw.get("name")) or "",
        "time_unix_nano": time,
        "attributes": _attributes(raw.get("attributes")),
    }


def _check_sizes(span: dict[str, Any], limit: int) -> None:
    _check_size("name", span["name"], limit)
    _check_size("status message", span["status_message"], limit)
    for key, value in span["attributes"].items():
        if (len(value) if type(value) is str else _longest(value)) > limit:
            _check_size(f"attribute {key!r}", value, limit)
    for event in span["events"]:
        for key, value in event["attributes"].items():
            if _longest(value) > limit:
                _check_size(f"event {event['name'][:40]!r} attribute {key!r}", value, limit)


def _check_size(where: str, value: Any, limit: int) -> None:
    size = _longest(value)
    if size > limit:
        raise RecordError(
            f"{where} is {size:,} characters, over the limit of {limit:,} (max_field_chars)"
        )


def _longest(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        return max((_longest(v) for v in value), default=0)
    if isinstance(value, dict):
        return max((_longest(v) for v in value.values()), default=0)
    return 0


def _is_json(line: bytes) -> bool:
    try:
        return isinstance(orjson.loads(line), dict | list)
    except orjson.JSONDecodeError:
        return False


def _is_text(head: bytes) -> bool:
    """UTF-8 without control characters (a cut multi-byte character at the end allowed)."""
    for cut in range(4):
        try:
            text = head[: len(head) - cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
        return all(ch >= " " or ch in "\t\n\r" for ch in text)
    return False


def _varint(data: bytes, pos: int) -> tuple[int | None, int]:
    value = shift = 0
    while pos < len(data) and shift < 64:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
    return None, pos


def _read_at_most(stream: BinaryIO, size: int) -> bytes:
    chunks: list[bytes] = []
    while size > 0:
        chunk = stream.read(min(size, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _get(obj: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if key in obj:
            return obj[key]
    return None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _dump(raw: Any) -> bytes:
    try:
        return orjson.dumps(raw, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:
        return str(raw).encode("utf-8", "replace")
