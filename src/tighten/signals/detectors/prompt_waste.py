"""Prompt text that costs tokens on every turn for nothing: duplicated or unused blocks.

The system prompt (all ``system`` messages of a session: a master prompt, playbooks
injected as separate messages) is resent with every LLM call, so a wasted block costs its
tokens once per assistant turn. Tokens are estimated as ``ceil(characters / 4)``, the
usual rule of thumb for English text with BPE tokenizers (code and non-Latin scripts use
more tokens per character, so the estimate errs low).

``prompt_duplication``: the prompt is split into blocks at several grains — each system
message, its sections (markdown headings), paragraphs (blank lines) and list items. Blocks
of at least 40 words are compared after normalising case, whitespace and punctuation:
exact duplicates, and near-duplicates with a Jaccard similarity of at least 0.9 on word
3-shingles. A duplicate that lies inside a larger duplicate is reported once, as the
larger one. One signal per duplicated block, target a stable id made of its first six
words (``before-taking-any-actions-that-update``), evidence the system messages holding
the copies; confidence 0.95 for exact copies, 0.8 for near-duplicates.

``unused_prompt_block``: a section (or, in a prompt without headings, a paragraph) of at
least 150 tokens with at least 8 distinctive words — stemmed words of four letters or
more found nowhere else in the prompt — none of which appears in any user, assistant or
tool message or tool-call argument of the session: sent every turn, never used by the
task. The opening block of the prompt (who the agent is) is never reported. Conservative
on purpose; confidence ``0.5 + 0.01 * distinctive words``, at most
0.8. Target: the block's id, as above.

Severity of both grows with the tokens wasted over the session (per-turn waste times turns),
on a log scale: ``log10(tokens) / 5`` clipped to [0.1, 1] (100 tokens → 0.4, 1,000 → 0.6,
10,000 → 0.8, 100,000 → 1).

The block split, the duplicate search and the word statistics are computed once per
distinct prompt (an LRU cache keyed by the prompt texts; prompts that differ only in their
digits, such as an embedded date, share one analysis), so thousands of sessions sharing
one prompt pay for a dictionary lookup; a new prompt of 5,000 characters costs ~2 ms.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, ClassVar

from tighten.signals.model import DetectContext, SessionData, Signal
from tighten.signals.text import content_words, truncate, words

__all__ = ["DETECTORS", "PromptDuplication", "UnusedPromptBlock", "block_id", "estimate_tokens"]

MIN_DUPLICATE_WORDS = 40
NEAR_DUPLICATE = 0.9
MIN_UNUSED_TOKENS = 150
MIN_PROBES = 8
BLOCK_ID_WORDS = 6

_HEADING = re.compile(r"#{1,6}\s")
_LIST_ITEM = re.compile(r"(?:[-*+•]|\d{1,3}[.)])\s")
_DIGITS = str.maketrans("123456789", "000000000")


def estimate_tokens(text: str) -> int:
    """Tokens of ``text`` by the ``ceil(characters / 4)`` rule of thumb."""
    return math.ceil(len(text) / 4)


def block_id(text: str) -> str:
    """A short id of a prompt block that stays the same across sessions: its first six
    words (numbers left out), lower case, joined by hyphens."""
    kept: list[str] = []
    for word in words(text[:400]):  # ids come from the opening, wherever the block ends
        if not word.isdigit():
            kept.append(word.replace("'", ""))
            if len(kept) == BLOCK_ID_WORDS:
                break
    return "-".join(kept) or "block"


@dataclass(frozen=True, slots=True)
class Unit:
    """A block of one system message: ``text[start:end]`` of the ``message``-th one."""

    message: int
    start: int
    end: int
    key: str  # normalised words, space-separated
    size: int  # words

    def overlaps(self, other: Unit) -> bool:
        return self.message == other.message and self.start < other.end and other.start < self.end


@dataclass(frozen=True, slots=True)
class Duplicate:
    """A block found more than once in the prompt; the copies waste ``tokens`` a turn."""

    first: Unit
    copies: tuple[Unit, ...]
    tokens: int
    exact: bool


@dataclass(frozen=True, slots=True)
class Candidate:
    """A large block and the distinctive words that would show the task used it.

    ``order`` holds the probes in the order to try them: the probe that last found the
    block used moves to the front, so that sessions like the last one are told after one
    search. Only the speed depends on it, never the result."""

    unit: Unit
    tokens: int
    probes: tuple[str, ...]
    order: list[tuple[str, ...]] = field(compare=False, hash=False, repr=False)

    def touched(self, text: str) -> bool:
        """True when one of the probes occurs in ``text``."""
        order = self.order[0]
        for position, probe in enumerate(order):
            if probe in text:
                if position:  # a whole new tuple: concurrent readers see one or the other
                    self.order[0] = (probe, *order[:position], *order[position + 1 :])
                return True
        return False


# Below this size (two 40-word blocks, or one 150-token block at ~4 characters a token)
# neither detector can fire.
MIN_ANALYSED_CHARS = 480


@dataclass(frozen=True, slots=True)
class PromptAnalysis:
    duplicates: tuple[Duplicate, ...]
    candidates: tuple[Candidate, ...]


@lru_cache(maxsize=256)
def analyse(prompts: tuple[str, ...]) -> PromptAnalysis:
    """The analysis of a prompt (its system texts), cached. Replacing digits keeps every
    offset, so the spans found on the normalised text hold in the original one. A prompt
    too short to hold two duplicated blocks or one large unused block is not analysed."""
    if sum(len(p) for p in prompts) < MIN_ANALYSED_CHARS:
        return PromptAnalysis((), ())
    return _analyse_normalised(tuple(p.translate(_DIGITS) for p in prompts))


@lru_cache(maxsize=256)
def _analyse_normalised(prompts: tuple[str, ...]) -> PromptAnalysis:
    grains = [_split(i, text) for i, text in enumerate(prompts)]
    units = {u for grain in grains for kind in grain for u in kind}
    duplicates = _duplicates([u for u in units if u.size >= MIN_DUPLICATE_WORDS], prompts)
    partition = [u for grain in grains for u in (grain[1] if len(grain[1]) > 1 else grain[2])]
    candidates = _candidates(partition, prompts)
    if candidates and partition and candidates[0].unit == partition[0]:
        candidates = candidates[1:]  # the opening says who the agent is: always in use
    return PromptAnalysis(duplicates, candidates)


def _split(message: int, text: str) -> tuple[list[Unit], list[Unit], list[Unit], list[Unit]]:
    """The blocks of one system message: (whole, sections, paragraphs, list items)."""
    spans: tuple[list[tuple[int, int]], ...] = ([], [], [], [])
    open_at: list[int | None] = [None, None, None, None]  # start of the current span
    last_end = 0
    offset = 0
    for line in text.splitlines(keepends=True):
        start, stripped = offset, line.strip()
        offset += len(line)
        if not stripped:
            _close(spans, open_at, (2, 3), last_end)
            continue
        body = line.lstrip()
        heading = _HEADING.match(body) is not None
        if heading:
            _close(spans, open_at, (1, 2, 3), last_end)
        elif _LIST_ITEM.match(body):
            _close(spans, open_at, (3,), last_end)
        for grain in (0, 1) if heading else (0, 1, 2, 3):
            if open_at[grain] is None:
                open_at[grain] = start + len(line) - len(body)
        last_end = start + len(line.rstrip())
    _close(spans, open_at, (0, 1, 2, 3), last_end)
    whole, sections, paragraphs, items = (
        [_unit(message, text, s, e) for s, e in dict.fromkeys(kind)] for kind in spans
    )
    return whole, sections, paragraphs, items


def _close(spans: tuple[list[tuple[int, int]], ...], open_at: list[int | None],
           grains: Sequence[int], end: int) -> None:  # fmt: skip
    for grain in grains:
        start = open_at[grain]
        if start is not None and end > start:
            spans[grain].append((start, end))
        open_at[grain] = None


def _unit(message: int, text: str, start: int, end: int) -> Unit:
    found = words(text[start:end])
    return Unit(message, start, end, " ".join(found), len(found))


def _duplicates(units: list[Unit], prompts: tuple[str, ...]) -> tuple[Duplicate, ...]:
    by_key: dict[str, list[Unit]] = {}
    for unit in sorted(units, key=lambda u: (u.message, u.start, -u.end)):
        by_key.setdefault(unit.key, []).append(unit)
    exact = sorted(([k] for k, us in by_key.items() if len(us) > 1), key=lambda g: -len(g[0]))
    near = [g for g in _near_groups(list(by_key)) if len(g) > 1]
    near.sort(key=lambda keys: -max(len(k) for k in keys))
    found: list[Duplicate] = []
    wasted: list[Unit] = []
    # Exact copies first, then near ones; larger first within each. A block that overlaps
    # a copy already counted is not counted again.
    for keys in exact + near:
        members = _distinct([u for k in keys for u in by_key[k]])
        members = [u for u in members if not any(u.overlaps(w) for w in wasted)]
        if len(members) < 2:
            continue
        members.sort(key=lambda u: (u.message, u.start))
        copies = tuple(members[1:])
        wasted.extend(copies)
        tokens = sum(estimate_tokens(prompts[u.message][u.start : u.end]) for u in copies)
        found.append(Duplicate(members[0], copies, tokens, exact=len(keys) == 1))
    return tuple(found)


def _near_groups(keys: list[str]) -> list[list[str]]:
    """Keys grouped by near-duplication (Jaccard of word 3-shingles ≥ 0.9). Candidate
    pairs come from prefix filtering: with shingles in one global order (their hash), two
    sets that similar share one of the first ``len - ceil(0.9 * len) + 1`` shingles of
    each, so only pairs sharing such a shingle are compared."""
    shingles = [_shingles(k) for k in keys]
    sizes = [k.count(" ") + 1 for k in keys]  # words: sets forget that a text repeats
    parent = list(range(len(keys)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    index: dict[int, list[int]] = {}
    for i, current in enumerate(shingles):
        ordered = sorted(current)
        prefix = ordered[: len(ordered) - math.ceil(NEAR_DUPLICATE * len(ordered)) + 1]
        seen: set[int] = set()
        for shingle in prefix:
            for j in index.get(shingle, ()):
                if j not in seen and _similar(current, shingles[j], sizes[i], sizes[j]):
                    parent[root(j)] = root(i)
                seen.add(j)
            index.setdefault(shingle, []).append(i)
    groups: dict[int, list[str]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(root(i), []).append(key)
    return list(groups.values())


def _similar(a: frozenset[int], b: frozenset[int], size_a: int, size_b: int) -> bool:
    if min(size_a, size_b) < NEAR_DUPLICATE * max(size_a, size_b):
        return False  # also a quick way out before the set operations
    return len(a & b) >= NEAR_DUPLICATE * len(a | b)


def _shingles(key: str) -> frozenset[int]:
    """Hashes of the word 3-shingles of ``key``."""
    ws = key.split()
    return frozenset(map(hash, zip(ws, ws[1:], ws[2:], strict=False)))


def _distinct(units: list[Unit]) -> list[Unit]:
    """The largest units that do not overlap each other (the same text found at several
    grains, or a block nested in its own near-duplicate, counts once)."""
    picked: list[Unit] = []
    for unit in sorted(units, key=lambda u: -(u.end - u.start)):
        if not any(unit.overlaps(p) for p in picked):
            picked.append(unit)
    return picked


def _candidates(partition: list[Unit], prompts: tuple[str, ...]) -> tuple[Candidate, ...]:
    vocab = [
        {w for w in content_words(prompts[u.message][u.start : u.end]) if len(w) >= 4}
        for u in partition
    ]
    frequency: Counter[str] = Counter(w for ws in vocab for w in ws)
    found = []
    for unit, ws in zip(partition, vocab, strict=True):
        tokens = estimate_tokens(prompts[unit.message][unit.start : unit.end])
        # Short words first: they are the common ones, so a used block is told early.
        probes = sorted((w for w in ws if frequency[w] == 1), key=lambda w: (len(w), w))
        if tokens >= MIN_UNUSED_TOKENS and len(probes) >= MIN_PROBES:
            found.append(Candidate(unit, tokens, tuple(probes), [tuple(probes)]))
    return tuple(found)


def system_prompts(session: SessionData) -> tuple[list[int], tuple[str, ...]]:
    """The indexes and texts of the session's non-empty system messages."""
    indexes = [i for i, m in enumerate(session.messages) if m["role"] == "system" and m["content"]]
    return indexes, tuple(session.messages[i]["content"] for i in indexes)


def _turns(messages: list[dict[str, Any]]) -> int:
    """LLM calls of the session, each of which resent the prompt (at least one)."""
    return max(1, sum(1 for m in messages if m["role"] == "assistant"))


def _severity(tokens: int) -> float:
    return round(min(1.0, max(0.1, math.log10(max(tokens, 1)) / 5)), 3)


class PromptDuplication:
    """Blocks of the system prompt that are sent more than once on every turn."""

    name: ClassVar[str] = "rules.prompt_duplication"

    def detect(self, session: SessionData, context: DetectContext) -> Iterable[Signal]:
        indexes, prompts = system_prompts(session)
        duplicates = analyse(prompts).duplicates if prompts else ()
        if not duplicates:
            return []
        turns = _turns(session.messages)
        return [self._signal(d, prompts, indexes, turns) for d in duplicates]

    def _signal(
        self, dup: Duplicate, prompts: tuple[str, ...], indexes: list[int], turns: int
    ) -> Signal:
        text = prompts[dup.first.message][dup.first.start : dup.first.end][:400]
        where = sorted({indexes[u.message] for u in (dup.first, *dup.copies)})
        kind = "" if dup.exact else "near-"
        total = dup.tokens * turns
        return Signal(
            type="prompt_duplication",
            polarity="friction",
            severity=_severity(total),
            description=f'a {dup.first.size}-word block "{truncate(text, 60)}" appears '
            f"{len(dup.copies) + 1} times ({kind}duplicate) in the system prompt, wasting "
            f"~{dup.tokens:,} tokens per turn (~{total:,} over {turns} turns)",
            detector=self.name,
            evidence=tuple(where),
            confidence=0.95 if dup.exact else 0.8,
            target=block_id(dup.first.key),
            quote=truncate(text),
        )


class UnusedPromptBlock:
    """Large blocks of the system prompt that the session never touched."""

    name: ClassVar[str] = "rules.unused_prompt_block"

    def detect(self, session: SessionData, context: DetectContext) -> Iterable[Signal]:
        indexes, prompts = system_prompts(session)
        candidates = analyse(prompts).candidates if prompts else ()
        if not candidates:
            return []
        said, results = _conversation_text(session.messages)
        unused = [c for c in candidates if not c.touched(said)]
        if unused:  # tool results are long: read only for blocks the talk never touched
            told = results.lower()
            unused = [c for c in unused if not c.touched(told)]
        if not unused:
            return []
        turns = _turns(session.messages)
        return [self._signal(c, prompts, indexes, turns) for c in unused]

    def _signal(
        self, candidate: Candidate, prompts: tuple[str, ...], indexes: list[int], turns: int
    ) -> Signal:
        unit = candidate.unit
        text = prompts[unit.message][unit.start : unit.end][:400]
        total = candidate.tokens * turns
        sample = ", ".join(candidate.probes[:5])
        return Signal(
            type="unused_prompt_block",
            polarity="friction",
            severity=_severity(total),
            description=f'the ~{candidate.tokens:,}-token prompt block "{truncate(text, 60)}" '
            f"was sent on {turns} turns (~{total:,} tokens) but none of its "
            f"{len(candidate.probes)} distinctive words ({sample}, ...) came up",
            detector=self.name,
            evidence=(indexes[unit.message],),
            confidence=round(min(0.8, 0.5 + 0.01 * len(candidate.probes)), 3),
            target=block_id(unit.key),
            quote=truncate(text),
        )


def _conversation_text(messages: list[dict[str, Any]]) -> tuple[str, str]:
    """Everything but the system prompt: what user and assistant said and the tool-call
    arguments (lower case), and the tool results (as they are)."""
    said: list[str] = []
    results: list[str] = []
    for msg in messages:
        role = msg["role"]
        if role == "tool":
            results.append(msg["content"])
        elif role != "system":
            said.append(msg["content"])
            for call in msg.get("tool_calls") or ():
                said.append(call.get("arguments") or "")
    return "\n".join(said).lower(), "\n".join(results)


DETECTORS = [PromptDuplication(), UnusedPromptBlock()]
