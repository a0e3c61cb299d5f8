"""Rendering helpers shared by the commands: JSON for machines, Rich for people."""

from __future__ import annotations

import sys
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson
from rich.console import Console

__all__ = ["console", "err_console", "fmt_time", "print_json"]

console = Console(highlight=False, soft_wrap=False)
err_console = Console(stderr=True, highlight=False)


def print_json(data: Any) -> None:
    """Write ``data`` as indented JSON to standard output (datetimes as ISO 8601)."""
    sys.stdout.write(
        orjson.dumps(
            data, default=_default, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS
        ).decode()
        + "\n"
    )
    sys.stdout.flush()


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def fmt_time(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "—"
