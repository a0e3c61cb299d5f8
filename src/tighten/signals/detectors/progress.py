"""Turns that make no progress: the same resource read again and again, the assistant
repeating itself, apologising or announcing yet another attempt.

``context_thrashing`` (target = the read-like tool): the same resource — a file path or
record id in the arguments, else the whole normalized argument list — read 3+ times by
read-like calls (``get_``/``read_``/``fetch_``/``list_``/``search_``/``view``… tools, an
editor's ``view`` command, ``cat``/``head``/``grep``/``sed -n`` in a shell) where at least
two of the reads returned content already seen for it. Reads that return something new
(another page of a file, the file after an edit) are navigation, not thrashing. Severity
0.4 + 0.1 per redundant read beyond two (max 0.8); confidence 0.8 when the calls were
identical, 0.6 when only the resource repeats.

``stagnation`` (target = what repeats):

* ``repeated_reply`` — two assistant texts of 8+ words with word-Jaccard ≥ 0.85 (each text
  compared with those of the four before it that open or close with the same 20
  characters: an agent repeating itself keeps its first or last line); severity 0.5 + 0.1
  per further pair (max 0.8), confidence 0.8.
* ``apology`` — apologies in 2+ assistant messages ("sorry", "I apologize", "my mistake";
  not the empathy of "sorry to hear"); severity 0.3 + 0.1 per further one (max 0.6),
  confidence 0.7. A single apology is manners, not stagnation.
* ``retry`` — "let me try again", "trying again", "one more time"; severity 0.3 for one,
  0.5 for more, confidence 0.6 / 0.8.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Iterable
from typing import Any, ClassVar

import orjson

from tighten.signals.detectors._conversation import (
    Attempt,
    conversation,
    program,
    shell_command,
)
from tighten.signals.detectors._cues import Cue
from tighten.signals.model import DetectContext, SessionData, Signal
from tighten.signals.text import jaccard, truncate

__all__ = ["DETECTORS", "ContextThrashing", "Stagnation"]

_READ_TOOL = re.compile(
    r"^(?i:get|read|fetch|load|open|list|search|view|cat|find|lookup|look_up|query|retrieve"
    r"|show|describe|browse|grep|egrep|rg|glob|ls|head|tail|less|more|nl|inspect|goto"
    r"|scroll)(?:[_.\-A-Z]|$)"
)
_SHELL_TOOL = re.compile(
    r"^(?:bash|sh|shell|terminal|run|exec|execute|cmd|command|run_command|execute_bash"
    r"|execute_command|run_shell_command|run_terminal_cmd|shell_exec|computer_terminal)$",
    re.IGNORECASE,
)
_READ_PROGRAMS = frozenset(
    {"cat", "head", "tail", "less", "more", "nl", "grep", "egrep", "rg", "ls", "find", "tree"}
)
_ID_KEY = re.compile(r"(?:^|_)(?:path|file|filename|filepath|url|uri|id)$|Id$|^(?:path|file)")
_PATH_TOKEN = re.compile(r"^['\"]?((?:[\w.\-~]*/)*[\w.\-]+\.[A-Za-z0-9]{1,8}|[\w.\-~]*/[\w./\-]+)")
_APOLOGY = Cue(
    r"\b(?:sorry(?! to hear| to learn| for your loss| about your loss| for the loss)"
    r"|i apologi[sz]e|apologies|my mistake|my bad|i made an? (?:mistake|error))\b",
    ("sorr", "apolog", "mistake", "my bad", "made a"),
)
_RETRY = Cue(
    r"\b(?:let me try (?:again|that again|once more)|let's try (?:again|that again)"
    r"|trying again|(?:try|trying|attempt) one more time|one more time|let me retry"
    r"|try(?:ing)? it again|attempt(?:ing)? (?:it |this |that )?again)\b",
    ("again", "one more time", "once more", "retry"),
)
_MIN_READS = 3
_MIN_APOLOGIES = 2
_MIN_REPLY_WORDS = 8
_MIN_REPLY_CHARS = 30
_REPLY_SIMILAR = 0.85
_LOOKBACK = 4
_LENGTH_RATIO = 0.75
_EDGE = 20
_MAX_SIGNALS = 5
_MAX_EVIDENCE = 20


@functools.lru_cache(maxsize=4096)
def _tool_kind(tool: str) -> str:
    """``shell``, ``sed``, ``read`` or ``other``: tool names repeat, so this is cached."""
    if _SHELL_TOOL.match(tool):
        return "shell"
    if tool == "sed":
        return "sed"
    return "read" if _READ_TOOL.match(tool) else "other"


def _read_text(attempt: Attempt) -> str | None:
    """What a read-like call names its resources in (its arguments, or a shell tool's
    command line); ``None`` when the call does not read."""
    kind, arguments = _tool_kind(attempt.tool), attempt.arguments
    if kind == "shell":
        command = shell_command(arguments)
        name = program(command) if command else ""
        if name in _READ_PROGRAMS or (name == "sed" and " -i" not in command):
            return command
        return None
    if kind == "sed":
        return arguments if " -i" not in arguments else None
    if kind == "read" or '"command":"view"' in arguments:
        return arguments
    return None


def _resources(arguments: str) -> list[str]:
    """File paths and record ids named in a call's arguments."""
    if arguments.startswith("{"):
        try:
            value: Any = orjson.loads(arguments)
        except orjson.JSONDecodeError:
            return []
        named = [str(v) for k, v in value.items() if _ID_KEY.search(k) and _is_name(v)]
        return [name for name in named if name]
    found = []
    for token in arguments.split():
        if not token.startswith("-"):
            match = _PATH_TOKEN.match(token)
            if match:
                found.append(match.group(1))
    return found


def _is_name(value: Any) -> bool:
    return isinstance(value, str | int) and not isinstance(value, bool) and len(str(value)) < 300


class ContextThrashing:
    """``context_thrashing``: the same resource read again and again for nothing new."""

    name: ClassVar[str] = "rules.context_thrashing"

    def detect(self, session: SessionData, context: DetectContext) -> Iterable[Signal]:
        attempts = conversation(session).attempts
        found = [(a, text) for a in attempts if (text := _read_text(a)) is not None]
        signals: list[Signal] = []
        if len(found) < _MIN_READS:
            return signals
        reads: dict[str, list[Attempt]] = {}
        for attempt, text in found:
            keys = _resources(text) or [f"{attempt.tool} {attempt.arguments}"]
            for key in dict.fromkeys(keys):
                reads.setdefault(key, []).append(attempt)
        seen: set[tuple[int, ...]] = set()
        for key, group in reads.items():
            redundant = len(group) - len({a.result for a in group})
            evidence = tuple(sorted({a.call_index for a in group}))
            if redundant < _MIN_READS - 1 or evidence in seen or len(signals) >= _MAX_SIGNALS:
                continue
            seen.add(evidence)
            signals.append(self._signal(key, group, redundant, evidence))
        return signals

    def _signal(
        self, key: str, group: list[Attempt], redundant: int, evidence: tuple[int, ...]
    ) -> Signal:
        tools = Counter(a.tool for a in group)
        tool = tools.most_common(1)[0][0]
        identical = len({(a.tool, a.arguments) for a in group}) == 1
        resource = truncate(key, 80)
        return Signal(
            type="context_thrashing",
            polarity="friction",
            severity=round(min(0.8, 0.4 + 0.1 * (redundant - 2)), 2),
            description=f'{tool} read "{resource}" {len(group)} times and got the same '
            f"content back {redundant} times",
            detector=self.name,
            evidence=evidence[:_MAX_EVIDENCE],
            confidence=0.8 if identical else 0.6,
            target=tool,
            quote=resource,
        )


class Stagnation:
    """``stagnation``: the assistant repeats itself, apologises, or tries again."""

    name: ClassVar[str] = "rules.stagnation"

    def detect(self, session: SessionData, context: DetectContext) -> Iterable[Signal]:
        view = conversation(session)
        signals = []
        pairs = _repeated_replies([(i, view.lowers[i]) for i in view.said])
        if pairs:
            where = sorted({i for pair in pairs for i in pair})
            severity = min(0.8, 0.5 + 0.1 * (len(pairs) - 1))
            quote = view.texts[pairs[0][1]]
            what = f"repeated itself {len(pairs)} time(s)"
            signals.append(self._signal("repeated_reply", what, quote, where, severity, 0.8))
        sorry = _APOLOGY.matching(view.assistant)
        if len(sorry) >= _MIN_APOLOGIES:
            severity = min(0.6, 0.3 + 0.1 * (len(sorry) - _MIN_APOLOGIES))
            what = f"apologised in {len(sorry)} messages"
            signals.append(
                self._signal("apology", what, view.texts[sorry[-1]], sorry, severity, 0.7)
            )
        retries = _RETRY.matching(view.assistant)
        if retries:
            many = len(retries) > 1
            what = f"announced another attempt {len(retries)} time(s)"
            signals.append(
                self._signal(
                    "retry",
                    what,
                    view.texts[retries[-1]],
                    retries,
                    0.5 if many else 0.3,
                    0.8 if many else 0.6,
                )
            )
        return signals

    def _signal(
        self,
        kind: str,
        what: str,
        quote: str,
        where: list[int],
        severity: float,
        confidence: float,
    ) -> Signal:
        return Signal(
            type="stagnation",
            polarity="friction",
            severity=round(severity, 2),
            description=f'the assistant {what}: "{truncate(quote, 100)}"',
            detector=self.name,
            evidence=tuple(where[:_MAX_EVIDENCE]),
            confidence=confidence,
            target=kind,
            quote=truncate(quote, 160),
        )


def _repeated_replies(said: list[tuple[int, str]]) -> list[tuple[int, int]]:
    """Pairs (earlier, later) of near-identical assistant texts among close neighbours.
    Word sets (split on whitespace, cheaper than a regex and as good for near-copies) are
    compared only for texts that open or close alike: an agent that repeats itself keeps
    its first or its last line."""
    pairs: list[tuple[int, int]] = []
    seen: dict[str, list[int]] = {}  # an opening or a closing -> positions in ``said``
    for pos, (index, text) in enumerate(said):
        if len(text) < _MIN_REPLY_CHARS:
            continue
        edges = ("<" + text[:_EDGE], ">" + text[-_EDGE:])
        close = {p for edge in edges for p in seen.get(edge, ()) if pos - p <= _LOOKBACK}
        for before in sorted(close, reverse=True):
            if _near_copy(text, said[before][1]):
                pairs.append((said[before][0], index))
                break
        for edge in edges:
            seen.setdefault(edge, []).append(pos)
    return pairs


def _near_copy(text: str, earlier: str) -> bool:
    size, other = len(text), len(earlier)
    if min(size, other) < _LENGTH_RATIO * max(size, other):
        return False
    mine, theirs = set(text.split()), set(earlier.split())
    return len(mine) >= _MIN_REPLY_WORDS and jaccard(mine, theirs) >= _REPLY_SIMILAR


DETECTORS = [ContextThrashing(), Stagnation()]
