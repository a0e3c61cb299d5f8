"""A fake service on a loopback port for tests: a threaded HTTP server whose handlers
reach the fake's state through ``self.server.fake``."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

__all__ = ["FakeHTTPServer", "LocalServer"]


class FakeHTTPServer(ThreadingHTTPServer):
    """A threaded HTTP server on 127.0.0.1 that points its handlers at ``fake``."""

    fake: Any

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up leaves a broken pipe; that is expected."""


class LocalServer:
    """A fake service on a free loopback port, served from a thread until ``close``."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.problems: list[str] = []
        self._httpd = FakeHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.fake = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
