"""The console: the digest printed to a terminal, a reply typed on one line.

The sender is always ``cli`` (whoever runs the command). Without an input stream
``poll`` returns nothing, so ``tighten review poll`` on the console is a no-op; there
are no webhooks.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import ClassVar, TextIO

from tighten.review.channels.base import Reply, WebhookRejected

__all__ = ["ConsoleChannel"]


class ConsoleChannel:
    """Prints to ``stream_out`` (default: standard output); reads replies from
    ``stream_in`` when one is given."""

    name: ClassVar[str] = "console"
    sender: ClassVar[str] = "cli"

    def __init__(self, stream_out: TextIO | None = None, stream_in: TextIO | None = None) -> None:
        self._out = stream_out
        self._in = stream_in
        self._printed = 0

    def send(self, parts: Sequence[str]) -> list[str]:
        """Print each non-empty part, a blank line between parts; their numbers."""
        out = self._out or sys.stdout  # resolved late, so a redirected stdout is honoured
        ids: list[str] = []
        for part in parts:
            if not part.strip():
                continue
            if ids:
                out.write("\n")
            out.write(part.rstrip("\n") + "\n")
            self._printed += 1
            ids.append(str(self._printed))
        out.flush()
        return ids

    def poll(self) -> list[Reply]:
        """One line from ``stream_in`` as the reply; nothing at its end or without one."""
        if self._in is None:
            return []
        line = self._in.readline().strip()
        if not line:
            return []
        return [Reply(self.name, self.sender, line, datetime.now(UTC))]

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[Reply]:
        """The console has no webhooks: every call is rejected."""
        raise WebhookRejected("console: the console channel does not take webhook calls.")
