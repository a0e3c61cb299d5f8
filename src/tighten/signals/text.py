"""Text tests shared by detectors and metrics: cheap, deterministic, language-light.

All of them read trace text as data: they look for shapes, never follow what it says."""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

from tighten.http import one_line

__all__ = [
    "STOPWORDS",
    "content_words",
    "error_excerpt",
    "error_reason",
    "failure_reason",
    "jaccard",
    "looks_like_observation",
    "stem",
    "strip_control",
    "truncate",
    "words",
]

_WORD = re.compile(r"[a-z0-9_']+")
_ERROR_PREFIX = re.compile(
    r"^\s*(?:\[?error\]?|exception|fatal|failed|failure|traceback)\b[\s:!-]", re.IGNORECASE
)
_TRACEBACK = re.compile(r"Traceback \(most recent call last\)|^\s+at [\w.$]+\(.*\)$", re.M)
_EXIT_CODE = re.compile(
    r"<returncode>\s*([1-9]\d*)\s*</returncode>"
    r"|exit(?:ed with)?\s*(?:code|status)[\s:=]*([1-9]\d*)",
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
    return one_line(text, limit)


@lru_cache(maxsize=8192)
def error_reason(text: str) -> str | None:
    """Why a tool result looks like a failure (``"Error: prefix"``, ``"traceback"``,
    ``"exit code 2"``, ``"HTTP 503"``, ``"timeout"``, ``"JSON error field"``), or ``None``.
    Only the start of long results is examined, where tools put their errors."""
    head = text[:2000]
    if head.isascii():  # lower() keeps every offset: the gated checks are the same
        return _gated_error_reason(head, head.lower())
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


# --- additions for the conversation detectors -------------------------------------------

_CONTROL = re.compile(r"#{3}[A-Z][A-Z_ -]*#{3}|<\|[a-z_]+\|>")
_OBSERVATION = re.compile(
    r"^\s*(?:<returncode>|<output>|<observation>|observation:|exit (?:code|status):"
    r"|\[?tool (?:output|result)\]?:|your command ran successfully|\[file: )",
    re.IGNORECASE,
)
_EXTRA_FAILURE = re.compile(
    r"(?P<notfound>: command not found\b|^(?:bash|sh|zsh): [^\n]*not found)"
    r"|(?P<nofile>No such file or directory)"
    r"|(?P<exception>^[A-Z]\w*(?:Error|Exception): )"
    r"|(?P<tests>^(?:FAILED |ERROR collecting ))"
    r"|(?P<edit>No replacement was performed|did not appear verbatim"
    r"|introduced new syntax error)",
    re.MULTILINE,
)
_TEST_SUMMARY = re.compile(r"^=+ .*\b\d+ (?:failed|errors?)\b.* =+\s*$", re.MULTILINE)
_EXCEPTION_LINE = re.compile(
    r"^[A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Failure)\b[^\n]*$", re.M
)
_REGION = 600
# Literal-prefix forms of _HTTP_ERROR for lower-cased text: far faster to scan for.
_STATUS_GATE = re.compile(r"status(?:_code)?[\s:=]*[45]\d\d")
_HTTP_GATE = re.compile(r"http(?:/\d(?:\.\d)?)?[\s:=]*[45]\d\d")
_EXTRA_HINTS = (
    "not found",
    "no such file",
    "error",
    "exception",
    "failed",
    "replacement",
    "verbatim",
)


def strip_control(text: str) -> str:
    """``text`` without conversation control markers (``###STOP###`` of user simulators,
    ``<|endoftext|>``), which are never content."""
    if "###" not in text and "<|" not in text:
        return text
    return _CONTROL.sub(" ", text).strip()


def looks_like_observation(text: str) -> bool:
    """True when a ``user`` message is really a tool observation fed back to a text-protocol
    agent (``<returncode>1</returncode><output>…``, ``OBSERVATION:``), not a person."""
    return _OBSERVATION.match(text) is not None


def failure_reason(text: str) -> str | None:
    """Why a tool result looks like a failure: the shapes of :func:`error_reason` plus
    those of shells and test runners (``"command not found"``, ``"missing file"``,
    ``"exception"`` for a Python exception line, ``"test failures"`` for pytest's failure
    lines and summary, ``"edit rejected"``), or ``None``.

    Built for speed on long results: only the first and the last 600 characters are
    examined (errors announce themselves at the start, tracebacks and test summaries end
    the output), each regex runs only when a substring it needs is present, and JSON
    results are not searched for the shell shapes."""
    region = text if len(text) <= _REGION * 2 else f"{text[:_REGION]}\n{text[-_REGION:]}"
    low = region.lower()
    reason = _gated_error_reason(region, low)
    if reason:
        return reason
    if region.lstrip()[:1] not in ("{", "[") and any(hint in low for hint in _EXTRA_HINTS):
        found = _EXTRA_FAILURE.search(region)
        if found:
            return _EXTRA_REASONS[found.lastgroup or ""]
        summary = _TEST_SUMMARY.search(region)
        if summary:
            return "test failures"
    return None


def _gated_error_reason(head: str, low: str) -> str | None:
    """:func:`error_reason` on a short ``head`` (``low`` is its lower-case form), each
    regex run only when a substring it cannot match without is present."""
    if ("Traceback (" in head or ("at " in head and "(" in head)) and _TRACEBACK.search(head):
        return "traceback"
    if _ERROR_PREFIX.match(head):
        return "error message"
    if _JSON_ERROR.match(head):
        return "JSON error field"
    if "returncode" in low or "exit" in low:
        code = _EXIT_CODE.search(head)
        if code:
            return f"exit code {code.group(1) or code.group(2)}"
    start = low[:300]
    if ("status" in start and _STATUS_GATE.search(start)) or (
        "http" in start and _HTTP_GATE.search(start)
    ):
        http = _HTTP_ERROR.search(head[:300])
        if http:
            return f"HTTP {http.group(1)}"
    if len(head) < 300 and ("tim" in low or "deadline" in low) and _TIMEOUT.search(head):
        return "timeout"
    return None


_EXTRA_REASONS = {
    "notfound": "command not found",
    "nofile": "missing file",
    "exception": "exception",
    "tests": "test failures",
    "edit": "edit rejected",
}


def error_excerpt(text: str, limit: int = 120) -> str:
    """The most telling line of an error text, truncated: the exception line of a
    traceback when there is one, else the first non-empty line."""
    head = text[:4000]
    if "Traceback" in head or "Error" in head or "Exception" in head:
        lines = _EXCEPTION_LINE.findall(head)
        if lines:
            return truncate(lines[-1], limit)
    for line in head.splitlines():
        if line.strip():
            return truncate(line, limit)
    return ""


# --- additions for the baseline, prompt and capability detectors ----------------------

_STOPWORD_TEXT = """
    a about above after again all also am an and any are as at be been before being below
    between both but by can could did do does doing down during each either else etc even
    ever every few for from further had has have having he her here hers him his how i if
    in into is it its itself just may me might more most must my no nor not now of off on
    once only or other our ours out over own per please same shall she should so some such
    than that the their them then there these they this those through to too under until
    up upon us very via was we were what when where whether which while who whom whose why
    will with within without would yes yet you your yours
    able already always another anything because get gets getting give given gives go
    going got just know let like make makes many much need needs new one ones really see
    something still sure thank thanks thing things use used uses using want wants way well
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_ES_PLURAL = ("sses", "ches", "shes", "xes", "zes")
_NOT_PLURAL = ("ss", "us", "is")


def stem(word: str) -> str:
    """A crude, fast stem that maps common word forms together (``links`` → ``link``,
    ``booked``/``bookings`` → ``book``, ``update``/``updated``/``updating`` → ``updat``).
    Only for matching words against each other, never for display."""
    w = word
    if len(w) > 4 and w.endswith("ies"):
        w = w[:-3] + "y"
    elif w.endswith(_ES_PLURAL):
        w = w[:-2]
    elif len(w) > 3 and w.endswith("s") and not w.endswith(_NOT_PLURAL):
        w = w[:-1]
    if len(w) > 5 and w.endswith("ing"):
        w = w[:-3]
    elif len(w) > 4 and w.endswith("ed"):
        w = w[:-2]
    if len(w) >= 5 and w.endswith("e"):
        w = w[:-1]
    return w


def content_words(text: str) -> set[str]:
    """Stemmed words of ``text`` that carry meaning: at least three characters, not a
    number, not a stop word."""
    unique = set(words(text))
    return {stem(w) for w in unique if len(w) >= 3 and w not in STOPWORDS and not w.isdigit()}
