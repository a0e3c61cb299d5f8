"""Text tests shared by detectors and metrics: cheap, deterministic, language-light.

All of them read trace text as data: they look for shapes, never follow what it says."""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["error_reason", "jaccard", "truncate", "words"]

_WORD = re.compile(r"[a-z0-9_']+")
_ERROR_PREFIX = re.compile(
    r"^\s*(?:\[?error\]?|exception|fatal|failed|failure|traceback)\b[\s:!-]", re.IGNORECASE
)
_TRACEBACK = re.compile(r"Traceback \(most recent call last\)|^\s+at [\w.$]+\(.*\)$", re.M)
_EXIT_CODE = re.compile(
    r"<returncode>\s*([1-9]\d*)\s*</returncode>|exit(?:ed with)?\s*(?:code|status)[\s:=]*([1-9]\d*)",
    re.IGNORECASE,
)
_HTTP_ERROR = re.compile(r"\b(?:HTTP(?:/\d(?:\.\d)?)?|status(?:_code)?)[\s:=]*([45]\d\d)\b", re.I)
_TIMEOUT = re.compile(r"\btim(?:ed|e)[ -]?out\b|\bdeadline exceeded\b", re.IGNORECASE)
_JSON_ERROR = re.compile(
    r'^\s*\{\s*"(?:error|errors|exception)"\s*:\s*+(?!null|false|\[\]|\{\}|"")'
)


def words(text: str) -> list[str]:
    """Lower-case word tokens."""
    return _WORD.findall(text.lower())


def jaccard(a: Iterable[str], b: Iterable[str]) -> float:
    """Overlap of two token collections in [0, 1]."""
    sa, sb = set(a), set(b)
    if not sa and not sb:
        return 1.0
    return len(sa & sb) / len(sa | sb)


def truncate(text: str, limit: int = 160) -> str:
    """One line of at most ``limit`` characters, for descriptions and quotes."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def error_reason(text: str) -> str | None:
    """Why a tool result looks like a failure (``"Error: prefix"``, ``"traceback"``,
    ``"exit code 2"``, ``"HTTP 503"``, ``"timeout"``, ``"JSON error field"``), or ``None``.
    Only the start of long results is examined, where tools put their errors."""
    head = text[:2000]
    if _TRACEBACK.search(head):
        return "traceback"
    if _ERROR_PREFIX.match(head):
        return "error message"
    if _JSON_ERROR.match(head):
        return "JSON error field"
    code = _EXIT_CODE.search(head)
    if code:
        return f"exit code {code.group(1) or code.group(2)}"
    http = _HTTP_ERROR.search(head[:300])
    if http:
        return f"HTTP {http.group(1)}"
    if len(head) < 300 and _TIMEOUT.search(head):
        return "timeout"
    return None
