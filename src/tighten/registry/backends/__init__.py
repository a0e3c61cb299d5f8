"""Registry backends: the database (default), a git repository, Langfuse, PromptLayer.
They register through the same hook as a plugin's (``register_registries``)."""

from __future__ import annotations

import os
from pathlib import Path

from tighten.config import Settings
from tighten.errors import ConfigError
from tighten.hookspecs import hookimpl
from tighten.registry.base import Registry, RegistryFactory
from tighten.store import Store

__all__ = ["register_registries"]


def _db(target: str, settings: Settings, store: Store) -> Registry:
    from tighten.registry.backends.db import DatabaseRegistry

    return DatabaseRegistry(store)


def _git(target: str, settings: Settings, store: Store) -> Registry:
    from tighten.registry.backends.git import GitRegistry

    if not target:
        raise ConfigError("Say which repository: registry = git:/path/to/repo.")
    return GitRegistry(Path(target).expanduser())


def _langfuse(target: str, settings: Settings, store: Store) -> Registry:
    from tighten.registry.backends.langfuse import LangfuseRegistry

    public = settings.langfuse_public_key or os.environ.get("LANGFUSE_PUBLIC_KEY")
    secret = settings.langfuse_secret_key
    secret_text = secret.get_secret_value() if secret else os.environ.get("LANGFUSE_SECRET_KEY")
    if not public or not secret_text:
        raise ConfigError(
            "Set LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY (or TIGHTEN_LANGFUSE_*) to use "
            "the Langfuse registry."
        )
    host = (
        target
        or settings.langfuse_host
        or os.environ.get("LANGFUSE_HOST")
        or "https://cloud.langfuse.com"
    )
    return LangfuseRegistry(host, public, secret_text)


def _promptlayer(target: str, settings: Settings, store: Store) -> Registry:
    from tighten.registry.backends.promptlayer import PromptLayerRegistry

    key = settings.promptlayer_api_key
    key_text = key.get_secret_value() if key else os.environ.get("PROMPTLAYER_API_KEY")
    if not key_text:
        raise ConfigError("Set PROMPTLAYER_API_KEY (or TIGHTEN_PROMPTLAYER_API_KEY).")
    if target:
        return PromptLayerRegistry(key_text, base_url=target)
    return PromptLayerRegistry(key_text)


@hookimpl
def register_registries() -> dict[str, RegistryFactory]:
    return {"db": _db, "git": _git, "langfuse": _langfuse, "promptlayer": _promptlayer}
