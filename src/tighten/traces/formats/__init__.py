"""Built-in input formats, registered through the plugin hook like any other."""

from __future__ import annotations

from tighten.hookspecs import hookimpl
from tighten.traces.formats.base import TraceFormat

__all__ = ["register_trace_formats"]


@hookimpl
def register_trace_formats() -> list[TraceFormat]:
    from tighten.traces.formats.jsonl import JsonlSessions
    from tighten.traces.formats.otlp import OtlpJson, OtlpProtobuf

    return [OtlpProtobuf(), OtlpJson(), JsonlSessions()]
