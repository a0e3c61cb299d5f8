"""What an input format is, and the bounded line reader formats share."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, ClassVar, Protocol

from tighten.traces.model import Reject, Session

__all__ = [
    "ReadContext",
    "RecordError",
    "SessionRecord",
    "SpanRecord",
    "TraceFormat",
    "excerpt",
    "iter_lines",
    "make_reject",
]


class RecordError(ValueError):
    """One input record is unusable; the message is the reason stored with the reject."""


@dataclass(slots=True, frozen=True)
class ReadContext:
    """What a format needs to know while reading one input."""

    source: str
    agent: str | None = None
    max_record_bytes: int = 16 * 1024 * 1024
    max_field_chars: int = 1_000_000


@dataclass(slots=True)
class SessionRecord:
    """A whole session read from the input."""

    session: Session
    line: int | None = None


@dataclass(slots=True)
class SpanRecord:
    """Raw spans read from the input (one OTLP export request); sessions are assembled from
    every stored span of the sessions they touch."""

    spans: list[dict[str, object]]
    line: int | None = None


Record = SessionRecord | SpanRecord | Reject


class TraceFormat(Protocol):
    """An input format.

    ``sniff`` gets the first bytes of the (decompressed) input and says whether this format
    reads it. ``read`` streams records from the input: a :class:`SessionRecord`, a
    :class:`SpanRecord`, or a :class:`~tighten.traces.model.Reject` for a record it could
    not use. It must never raise for one bad record, and must read in bounded memory.
    """

    name: ClassVar[str]
    priority: ClassVar[int]

    def sniff(self, head: bytes) -> bool: ...

    def read(self, stream: BinaryIO, context: ReadContext) -> Iterator[Record]: ...


def excerpt(raw: bytes | str, limit: int = 200) -> str:
    """The first characters of a record, for a human reading the rejects."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    text = text[: limit + 1].replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + "…"


def make_reject(reason: str, line: int | None, raw: bytes | str) -> Reject:
    data = raw.encode("utf-8", "replace") if isinstance(raw, str) else raw
    return Reject(reason, line, excerpt(data), hashlib.sha256(data).hexdigest())


def iter_lines(
    stream: BinaryIO, max_bytes: int
) -> Iterator[tuple[int, bytes | None, Reject | None]]:
    """Yield ``(line_number, line, None)`` for each non-blank line, or
    ``(line_number, None, reject)`` for a line over ``max_bytes``, which is skipped without
    ever being held in memory whole."""
    number = 0
    while True:
        line = stream.readline(max_bytes + 1)
        if not line:
            return
        number += 1
        if len(line) > max_bytes and not line.endswith(b"\n"):
            head = line[:200]
            size = len(line)
            while True:
                chunk = stream.readline(1 << 20)
                size += len(chunk)
                if not chunk or chunk.endswith(b"\n"):
                    break
            reason = f"record is {size:,} bytes, over the limit of {max_bytes:,} (max_record_bytes)"
            yield number, None, make_reject(reason, number, head)
            continue
        if line.strip():
            yield number, line, None
