"""Artifacts as Langfuse prompts (Langfuse prompt management, public API v2).

An artifact is the text prompt named ``{agent}/{artifact}`` (a Langfuse folder per agent;
``name_template`` changes it), a version is Langfuse's integer version, and labels are
Langfuse labels: ``production`` is Langfuse's own production label, so agents that read
their prompt with the Langfuse SDK pick up what tighten deploys. ``latest`` is Langfuse's
and cannot be moved.

Endpoints (Basic auth, public key : secret key):

- ``GET /api/public/v2/prompts/{name}?label=|version=`` reads a version (404 when the
  prompt, label or version is unknown — no fallback);
- ``POST /api/public/v2/prompts`` creates a version: ``type`` ``text``, no labels, the
  previous version's ``config`` carried over, and a ``commitMessage`` naming the author and
  the reason;
- ``PATCH /api/public/v2/prompts/{name}/versions/{version}`` with ``newLabels`` moves a
  label (labels are unique per prompt: Langfuse takes it off the version that had it);
- ``GET /api/public/v2/prompts?name=`` lists the version numbers; each version is then read
  for its commit message and time (one request per version).

Names with a ``/`` are URL-encoded in paths, as Langfuse requires for folders. Publishing
is retried like every other call: if an answer is lost after Langfuse stored the version,
a retry may add a duplicate version, unlabelled and so never served.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, ClassVar, Self
from urllib.parse import quote

import httpx

from tighten.errors import InputError, StoreError
from tighten.registry.backends._http import (
    JSONClient,
    RetryPolicy,
    commit_message,
    parse_commit_message,
    parse_time,
)
from tighten.registry.base import Fetched, RegistryVersion

__all__ = ["LangfuseRegistry"]

_PROMPTS = "/api/public/v2/prompts"
_RESERVED_LABEL = "latest"


class LangfuseRegistry:
    """Artifacts, versions and labels in a Langfuse project."""

    name: ClassVar[str] = "langfuse"

    def __init__(
        self,
        base_url: str,
        public_key: str,
        secret_key: str,
        *,
        timeout: float = 30,
        transport: httpx.BaseTransport | None = None,
        name_template: str = "{agent}/{artifact}",
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        token = base64.b64encode(f"{public_key}:{secret_key}".encode()).decode("ascii")
        self.name_template = name_template
        self._api = JSONClient(
            "Langfuse",
            base_url,
            headers={"Authorization": f"Basic {token}", "Accept": "application/json"},
            secrets=(secret_key, token),
            timeout=timeout,
            transport=transport,
            retry=retry,
            sleep=sleep,
        )

    def __repr__(self) -> str:
        return f"LangfuseRegistry(base_url={self._api.base_url!r})"

    def prompt_name(self, agent: str, artifact: str) -> str:
        """The Langfuse prompt name of an artifact."""
        return self.name_template.format(agent=agent, artifact=artifact)

    def fetch(self, agent: str, artifact: str, label: str = "production") -> Fetched:
        name = self.prompt_name(agent, artifact)
        prompt = self._get(name, label=label)
        return Fetched(artifact, label, str(prompt["version"]), _text(prompt, name))

    def publish(
        self, agent: str, artifact: str, content: str, *, author: str, reason: str | None
    ) -> str:
        name = self.prompt_name(agent, artifact)
        body: dict[str, Any] = {
            "type": "text",
            "name": name,
            "prompt": content,
            "labels": [],
            "commitMessage": commit_message(author, reason),
        }
        config = self._latest_config(name)
        if config:
            body["config"] = config
        created = self._api.request(
            "POST", _PROMPTS, body=body, not_found="the prompts API is not there; check the URL."
        )
        return _version_of(created, name)

    def move_label(
        self, agent: str, artifact: str, version: str, label: str, *, actor: str, reason: str | None
    ) -> None:
        # Langfuse keeps no note with a label move: tighten's own move log records the
        # actor and the reason.
        name = self.prompt_name(agent, artifact)
        if label == _RESERVED_LABEL:
            raise InputError(
                f"Langfuse: the label {_RESERVED_LABEL!r} always points at the newest "
                "version and cannot be moved; use another label."
            )
        number = _version_number(version)
        self._api.request(
            "PATCH",
            f"{_path(name)}/versions/{number}",
            body={"newLabels": [label]},
            not_found=f"prompt {name!r} has no version {number}. Check the version number.",
        )

    def versions(self, agent: str, artifact: str) -> list[RegistryVersion]:
        name = self.prompt_name(agent, artifact)
        numbers = self._version_numbers(name)
        found = []
        for number in sorted(numbers, reverse=True):
            try:
                prompt = self._get(name, version=number)
            except InputError:  # deleted between the list and the read
                continue
            author, why = parse_commit_message(prompt.get("commitMessage"))
            created = parse_time(prompt.get("createdAt"))
            found.append(RegistryVersion(str(number), author, why, created))
        return found

    def _get(
        self, name: str, *, label: str | None = None, version: int | None = None
    ) -> dict[str, Any]:
        params: dict[str, str | int]
        if version is not None:
            params, which = {"version": version}, f"version {version}"
        else:
            params, which = {"label": label or "production"}, f"label {label!r}"
        prompt = self._api.request(
            "GET",
            _path(name),
            params=params,
            not_found=f"no prompt {name!r} with {which}. Check the name, or "
            "publish and deploy it first.",
        )
        if not isinstance(prompt, dict) or not isinstance(prompt.get("version"), int):
            raise StoreError(f"Langfuse: the answer for prompt {name!r} is not a prompt.")
        return prompt

    def _latest_config(self, name: str) -> Any:
        """The config of the newest version (kept on the next one), ``None`` for a new
        prompt; refuses a chat prompt, which tighten cannot replace with text."""
        try:
            latest = self._get(name, label=_RESERVED_LABEL)
        except InputError:
            return None
        _text(latest, name)
        return latest.get("config")

    def _version_numbers(self, name: str) -> list[int]:
        listing = self._api.request(
            "GET",
            _PROMPTS,
            params={"name": name, "limit": 50},
            not_found=f"no prompt {name!r}.",
        )
        data = listing.get("data") if isinstance(listing, dict) else None
        for meta in data if isinstance(data, list) else []:
            if isinstance(meta, dict) and meta.get("name") == name:
                return [v for v in meta.get("versions", []) if isinstance(v, int)]
        raise InputError(f"Langfuse: no prompt {name!r}. Check the name, or publish it first.")

    def close(self) -> None:
        """Close the HTTP connections."""
        self._api.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _path(name: str) -> str:
    return f"{_PROMPTS}/{quote(name, safe='')}"


def _text(prompt: dict[str, Any], name: str) -> str:
    text = prompt.get("prompt")
    if not isinstance(text, str):
        raise InputError(
            f"Langfuse: prompt {name!r} is a {prompt.get('type', 'chat')} prompt; tighten "
            "deploys text prompts only. Give the artifact its own text prompt."
        )
    return text


def _version_number(version: str) -> int:
    try:
        number = int(version)
    except ValueError:
        number = 0
    if number < 1:
        raise InputError(f"Langfuse: versions are positive whole numbers, not {version!r}.")
    return number


def _version_of(created: Any, name: str) -> str:
    if not isinstance(created, dict) or not isinstance(created.get("version"), int):
        raise StoreError(f"Langfuse: creating prompt {name!r} answered without a version.")
    return str(created["version"])
