"""Differences between two versions: a unified diff for text, a structural one for JSON."""

from __future__ import annotations

import difflib
from typing import Any

from tighten.registry.guardrails import parse_structured

__all__ = ["structural_diff", "unified_diff"]


def unified_diff(before: str, after: str, name: str, a: int, b: int) -> str:
    return "".join(
        difflib.unified_diff(
            before.splitlines(keepends=True),
            after.splitlines(keepends=True),
            fromfile=f"{name}@v{a}",
            tofile=f"{name}@v{b}",
        )
    )


def structural_diff(before: str, after: str) -> list[dict[str, Any]]:
    """Changes between two JSON/YAML documents: ``{"op": "add"|"remove"|"change",
    "path": "/a/0/b", "before": …, "after": …}``, in path order."""
    changes: list[dict[str, Any]] = []
    _walk(parse_structured(before), parse_structured(after), "", changes)
    return changes


def _walk(a: Any, b: Any, path: str, out: list[dict[str, Any]]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            child = f"{path}/{key}"
            if key not in a:
                out.append({"op": "add", "path": child, "after": b[key]})
            elif key not in b:
                out.append({"op": "remove", "path": child, "before": a[key]})
            else:
                _walk(a[key], b[key], child, out)
    elif isinstance(a, list) and isinstance(b, list):
        for i in range(max(len(a), len(b))):
            child = f"{path}/{i}"
            if i >= len(a):
                out.append({"op": "add", "path": child, "after": b[i]})
            elif i >= len(b):
                out.append({"op": "remove", "path": child, "before": a[i]})
            else:
                _walk(a[i], b[i], child, out)
    elif a != b:
        out.append({"op": "change", "path": path or "/", "before": a, "after": b})
