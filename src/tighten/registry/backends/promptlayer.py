"""Artifacts as PromptLayer prompt templates (PromptLayer's prompt registry REST API).

An artifact is the completion-type template named ``{agent}-{artifact}``
(``name_template`` changes it; a ``/`` cannot be used: PromptLayer takes the name as one
path segment), a version is PromptLayer's version number, and labels are PromptLayer
release labels, one version each.

Endpoints (header ``X-API-KEY``):

- ``GET /prompt-templates/{name}?label=|version=`` reads a version (the raw template, as
  stored; 404 when the template, label or version is unknown);
- ``POST /rest/prompt-templates`` publishes a version with no release labels, the previous
  version's tags and model metadata carried over, and a commit message naming the author
  and the reason (kept to 72 characters, the reason shortened if needed);
- ``GET /prompt-templates/{name}/labels`` lists the release labels, then
  ``PATCH /prompt-labels/{release_label_id}`` moves one, or
  ``POST /prompts/{prompt_id}/label`` creates it the first time;
- versions: PromptLayer has no list of versions, so the newest is read and then each
  older one by number (one request per version; deleted ones are skipped).

Publishing is retried like every other call: if an answer is lost after PromptLayer stored
the version, a retry may add a duplicate version, unlabelled and so never served.
"""

from __future__ import annotations

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

__all__ = ["PromptLayerRegistry"]

_COMMIT_LIMIT = 72


class PromptLayerRegistry:
    """Artifacts, versions and release labels in a PromptLayer workspace."""

    name: ClassVar[str] = "promptlayer"

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = "https://api.promptlayer.com",
        timeout: float = 30,
        transport: httpx.BaseTransport | None = None,
        name_template: str = "{agent}-{artifact}",
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.name_template = name_template
        self._api = JSONClient(
            "PromptLayer",
            base_url,
            headers={"X-API-KEY": api_key, "Accept": "application/json"},
            secrets=(api_key,),
            timeout=timeout,
            transport=transport,
            retry=retry,
            sleep=sleep,
        )

    def __repr__(self) -> str:
        return f"PromptLayerRegistry(base_url={self._api.base_url!r})"

    def template_name(self, agent: str, artifact: str) -> str:
        """The PromptLayer template name of an artifact."""
        return self.name_template.format(agent=agent, artifact=artifact)

    def fetch(self, agent: str, artifact: str, label: str = "production") -> Fetched:
        name = self.template_name(agent, artifact)
        template = self._get(name, label=label)
        return Fetched(artifact, label, str(template["version"]), _text(template, name))

    def publish(
        self, agent: str, artifact: str, content: str, *, author: str, reason: str | None
    ) -> str:
        name = self.template_name(agent, artifact)
        latest = self._latest(name)
        version: dict[str, Any] = {
            "prompt_template": {
                "type": "completion",
                "content": [{"type": "text", "text": content}],
                "input_variables": [],
                "template_format": "f-string",
            },
            "commit_message": commit_message(author, reason, limit=_COMMIT_LIMIT),
        }
        if latest is not None and isinstance(latest.get("metadata"), dict):
            version["metadata"] = latest["metadata"]
        tags = latest.get("tags") if latest is not None else None
        body = {
            "prompt_template": {"prompt_name": name, "tags": tags or []},
            "prompt_version": version,
            "release_labels": [],
        }
        created = self._api.request(
            "POST",
            "/rest/prompt-templates",
            body=body,
            not_found="the prompt-templates API is not there; check the URL.",
        )
        number = created.get("version_number") if isinstance(created, dict) else None
        if isinstance(number, int):
            return str(number)
        # Older answers carry no version number: the newest version is the one just made.
        newest = self._latest(name)
        if newest is None:
            raise StoreError(f"PromptLayer: template {name!r} is missing right after publishing.")
        return str(newest["version"])

    def move_label(
        self, agent: str, artifact: str, version: str, label: str, *, actor: str, reason: str | None
    ) -> None:
        # A release label move carries no note: tighten's own move log records the actor
        # and the reason.
        name = self.template_name(agent, artifact)
        number = _version_number(version)
        template = self._get(name, version=number)
        existing = self._label_id(name, label)
        if existing is not None:
            self._api.request(
                "PATCH",
                f"/prompt-labels/{existing}",
                body={"prompt_version_number": number},
                not_found=f"release label {label!r} of {name!r} disappeared; try again.",
            )
            return
        self._api.request(
            "POST",
            f"/prompts/{template['id']}/label",
            body={"prompt_version_number": number, "name": label},
            not_found=f"template {name!r} disappeared; try again.",
        )

    def versions(self, agent: str, artifact: str) -> list[RegistryVersion]:
        name = self.template_name(agent, artifact)
        latest = self._latest(name)
        if latest is None:
            raise InputError(
                f"PromptLayer: no template {name!r}. Check the name, or publish it first."
            )
        found = [_registry_version(latest)]
        for number in range(int(latest["version"]) - 1, 0, -1):
            try:
                found.append(_registry_version(self._get(name, version=number)))
            except InputError:  # a deleted version
                continue
        return found

    def _get(
        self, name: str, *, label: str | None = None, version: int | None = None
    ) -> dict[str, Any]:
        params: dict[str, str | int]
        if version is not None:
            params, which = {"version": version}, f"version {version}"
        elif label is not None:
            params, which = {"label": label}, f"release label {label!r}"
        else:
            params, which = {}, "any version"
        template = self._api.request(
            "GET",
            f"/prompt-templates/{quote(name, safe='')}",
            params=params,
            not_found=f"no template {name!r} with {which}. Check the name, or "
            "publish and deploy it first.",
        )
        if not isinstance(template, dict) or not isinstance(template.get("version"), int):
            raise StoreError(f"PromptLayer: the answer for template {name!r} is not a template.")
        return template

    def _latest(self, name: str) -> dict[str, Any] | None:
        """The newest version, ``None`` for a template that does not exist yet; refuses a
        chat template, which tighten cannot replace with text."""
        try:
            latest = self._get(name)
        except InputError:
            return None
        _text(latest, name)
        return latest

    def _label_id(self, name: str, label: str) -> int | None:
        answer = self._api.request(
            "GET",
            f"/prompt-templates/{quote(name, safe='')}/labels",
            not_found=f"no template {name!r}.",
        )
        labels = answer.get("release_labels") if isinstance(answer, dict) else None
        for item in labels if isinstance(labels, list) else []:
            if isinstance(item, dict) and item.get("release_label") == label:
                found = item.get("release_label_id")
                return found if isinstance(found, int) else None
        return None

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


def _text(template: dict[str, Any], name: str) -> str:
    """The text of a completion template (its text parts, joined)."""
    body = template.get("prompt_template")
    body = body if isinstance(body, dict) else {}
    parts = body.get("content")
    if body.get("type") != "completion" or not isinstance(parts, list):
        kind = body.get("type", "unknown")
        raise InputError(
            f"PromptLayer: template {name!r} is a {kind} template; tighten deploys "
            "completion (text) templates only. Give the artifact its own template."
        )
    texts = [p.get("text") for p in parts if isinstance(p, dict) and p.get("type") == "text"]
    return "".join(t for t in texts if isinstance(t, str))


def _registry_version(template: dict[str, Any]) -> RegistryVersion:
    author, reason = parse_commit_message(template.get("commit_message"))
    created = parse_time(template.get("created_at"))
    return RegistryVersion(str(template["version"]), author, reason, created)


def _version_number(version: str) -> int:
    try:
        number = int(version)
    except ValueError:
        number = 0
    if number < 1:
        raise InputError(f"PromptLayer: versions are positive whole numbers, not {version!r}.")
    return number
