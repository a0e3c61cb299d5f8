"""Checks that run before any label moves. Each failure says exactly what is wrong.

- size: at least ``min_chars`` for text artifacts (prompts and playbooks), at most
  ``max_bytes`` for any;
- required placeholders (``{{PLAYBOOKS}}``) present;
- structured artifacts (soul, config, tool) parse as JSON or YAML and match their JSON
  Schema (the artifact's own, else the built-in one for the kind);
- no credentials in the content;
- nothing deploys over an artifact marked human-only unless a human does it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml
from jsonschema import Draft202012Validator

from tighten.llm.redact import find_secrets
from tighten.registry.model import STRUCTURED, Artifact

__all__ = ["BUILTIN_SCHEMAS", "Limits", "check", "parse_structured"]


@dataclass(frozen=True, slots=True)
class Limits:
    min_chars: int = 100
    max_bytes: int = 200_000


BUILTIN_SCHEMAS: dict[str, dict[str, Any]] = {
    "soul": {
        "type": "object",
        "properties": {
            "always": {"type": "array", "items": {"type": "string"}},
            "never": {"type": "array", "items": {"type": "string"}},
            "faq": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["question", "answer"],
                    "properties": {"question": {"type": "string"}, "answer": {"type": "string"}},
                },
            },
            "style": {"type": ["string", "object"]},
            "escalation": {"type": ["array", "object", "string"]},
        },
    },
    "config": {
        "type": "object",
        "properties": {
            "model": {"type": "string", "minLength": 1},
            "temperature": {"type": "number", "minimum": 0, "maximum": 2},
            "max_tokens": {"type": "integer", "minimum": 1},
            "history_limit": {"type": "integer", "minimum": 0},
        },
    },
    "tool": {
        "type": "object",
        "required": ["name", "description"],
        "properties": {
            "name": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,64}$"},
            "description": {"type": "string", "minLength": 10},
            "parameters": {"type": "object"},
            "input_schema": {"type": "object"},
        },
    },
}


def parse_structured(content: str) -> Any:
    """JSON, else YAML; raise ValueError with the parser's message."""
    try:
        return json.loads(content)
    except json.JSONDecodeError as json_error:
        try:
            return yaml.safe_load(content)
        except yaml.YAMLError:
            raise ValueError(
                f"not valid JSON ({json_error.msg} at line {json_error.lineno})"
            ) from None


def _size(artifact: Artifact, content: str, limits: Limits) -> list[str]:
    failures = []
    size = len(content.encode())
    if size > limits.max_bytes:
        failures.append(f"too large: {size:,} bytes, the limit is {limits.max_bytes:,}")
    if artifact.kind in ("prompt", "playbook") and len(content.strip()) < limits.min_chars:
        failures.append(
            f"too short: {len(content.strip())} characters, at least {limits.min_chars} expected"
        )
    return failures


def _placeholders(artifact: Artifact, content: str, limits: Limits) -> list[str]:
    missing = [p for p in artifact.required_placeholders if p not in content]
    return [f"required placeholder {p} is missing" for p in missing]


def _structure(artifact: Artifact, content: str, limits: Limits) -> list[str]:
    if artifact.kind not in STRUCTURED:
        return []
    try:
        data = parse_structured(content)
    except ValueError as exc:
        return [f"{artifact.kind} is {exc}"]
    schema = artifact.json_schema or BUILTIN_SCHEMAS.get(artifact.kind)
    if schema is None:
        return []
    errors = sorted(Draft202012Validator(schema).iter_errors(data), key=lambda e: list(e.path))
    return [
        f"breaks its schema at {'/'.join(map(str, e.path)) or '(top)'}: {e.message}"
        for e in errors[:5]
    ]


def _secrets(artifact: Artifact, content: str, limits: Limits) -> list[str]:
    return [
        f"contains a credential ({kind}); keep secrets out of artifacts"
        for kind in find_secrets(content)
    ]


CHECKS: list[Callable[[Artifact, str, Limits], list[str]]] = [
    _size,
    _placeholders,
    _structure,
    _secrets,
]


def check(
    artifact: Artifact, content: str, *, actor_is_human: bool = True, limits: Limits | None = None
) -> list[str]:
    """Every failed check, in order; an empty list means the content may be deployed."""
    failures: list[str] = []
    if artifact.human_only and not actor_is_human:
        failures.append("this artifact is marked human-only: only a person may change it")
    for rule in CHECKS:
        failures.extend(rule(artifact, content, limits or Limits()))
    return failures
