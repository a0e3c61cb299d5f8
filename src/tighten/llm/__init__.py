"""LLM providers, named by strings: ``openai:gpt-4.1``, ``anthropic:claude-sonnet-4-5``,
``ollama:qwen3``, ``openai-compat:MODEL@http://host:8000/v1`` (OpenRouter, vLLM,
llama.cpp, LM Studio …) and ``scripted`` (deterministic, offline: tests and demos).

    >>> from tighten.llm import CompletionRequest, resolve_provider
    >>> provider = resolve_provider("scripted")
    >>> provider.complete(CompletionRequest([{"role": "user", "content": "hi"}])).text
    'ok'

Nothing in tighten needs an LLM; one only makes the judge and the optimizers richer.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tighten.errors import ConfigError
from tighten.llm.base import (
    PRICES_PER_MTOK,
    Completion,
    CompletionRequest,
    LLMError,
    Provider,
    RetryPolicy,
    estimate_tokens,
    price_of,
)
from tighten.llm.scripted import ScriptedProvider

if TYPE_CHECKING:
    from tighten.config import Settings

__all__ = [
    "OLLAMA_BASE_URL",
    "PRICES_PER_MTOK",
    "Completion",
    "CompletionRequest",
    "LLMError",
    "LLMSettings",
    "Provider",
    "RetryPolicy",
    "ScriptedProvider",
    "estimate_tokens",
    "price_of",
    "resolve_provider",
]

OLLAMA_BASE_URL = "http://127.0.0.1:11434/v1"
_TIMEOUT_S = 60.0
_MAX_RETRIES = 3
_COMPAT = re.compile(r"^(?P<model>.+?)@(?P<url>https?://\S+)$")


@dataclass(frozen=True, slots=True)
class LLMSettings:
    """The settings providers read. ``base_url`` sends any provider to another endpoint
    (a proxy, a local server); ``api_key`` is used instead of the vendor's environment
    variable (and is the only key an ``openai-compat`` endpoint gets)."""

    base_url: str | None = None
    api_key: str | None = None
    timeout_s: float = _TIMEOUT_S
    max_retries: int = _MAX_RETRIES

    @classmethod
    def of(cls, settings: Settings | LLMSettings | None) -> LLMSettings:
        """The LLM settings in tighten's :class:`~tighten.config.Settings` (fields
        ``llm_base_url``, ``llm_api_key``, ``llm_timeout_s``, ``llm_max_retries``, where
        present)."""
        if settings is None:
            return cls()
        if isinstance(settings, LLMSettings):
            return settings
        key = getattr(settings, "llm_api_key", None)
        if key is not None and hasattr(key, "get_secret_value"):
            key = key.get_secret_value()
        return cls(
            base_url=getattr(settings, "llm_base_url", None),
            api_key=key,
            timeout_s=float(getattr(settings, "llm_timeout_s", _TIMEOUT_S)),
            max_retries=int(getattr(settings, "llm_max_retries", _MAX_RETRIES)),
        )


def resolve_provider(
    spec: str,
    settings: Settings | LLMSettings | None = None,
    *,
    env: Mapping[str, str] | None = None,
) -> Provider:
    """The provider a model string names. ``env`` defaults to ``os.environ`` (where the
    ``OPENAI_API_KEY`` and ``ANTHROPIC_API_KEY`` are looked up). Raises
    :class:`~tighten.errors.ConfigError` for an unknown provider, a missing model, base URL
    or API key. Providers are imported only when named."""
    spec = spec.strip()
    kind, _, model = spec.partition(":")
    if kind == "scripted":
        return ScriptedProvider(model=model or "scripted")
    build = _BUILDERS.get(kind)
    if build is None:
        raise ConfigError(
            f"Unknown LLM provider {kind!r} in {spec!r}: write openai:MODEL, anthropic:MODEL, "
            "ollama:MODEL, openai-compat:MODEL@BASE_URL or scripted."
        )
    if not model:
        raise ConfigError(f"No model in {spec!r}: write {kind}:MODEL, e.g. {_EXAMPLES[kind]}.")
    return build(model, LLMSettings.of(settings), os.environ if env is None else env)


def _openai(model: str, cfg: LLMSettings, env: Mapping[str, str]) -> Provider:
    from tighten.llm.openai_compat import OPENAI_BASE_URL, OpenAICompatProvider

    key = cfg.api_key or env.get("OPENAI_API_KEY")
    if not key and not cfg.base_url:
        raise ConfigError(
            f"Set the OPENAI_API_KEY environment variable or pass an API key "
            f"(TIGHTEN_LLM_API_KEY) to use openai:{model}."
        )
    return OpenAICompatProvider(
        model,
        base_url=cfg.base_url or OPENAI_BASE_URL,
        api_key=key,
        timeout_s=cfg.timeout_s,
        retry=RetryPolicy(max_retries=cfg.max_retries),
        max_tokens_param="max_completion_tokens",
        service="OpenAI API",
    )


def _compat(model: str, cfg: LLMSettings, env: Mapping[str, str]) -> Provider:
    from tighten.llm.openai_compat import OpenAICompatProvider

    match = _COMPAT.match(model)
    base_url = match["url"] if match else cfg.base_url
    if not base_url:
        raise ConfigError(
            f"openai-compat:{model} needs the endpoint: write openai-compat:{model}@"
            "http://HOST:PORT/v1 or set TIGHTEN_LLM_BASE_URL."
        )
    return OpenAICompatProvider(
        match["model"] if match else model,
        base_url=base_url,
        api_key=cfg.api_key,
        timeout_s=cfg.timeout_s,
        retry=RetryPolicy(max_retries=cfg.max_retries),
    )


def _ollama(model: str, cfg: LLMSettings, env: Mapping[str, str]) -> Provider:
    from tighten.llm.openai_compat import OpenAICompatProvider

    return OpenAICompatProvider(
        model,
        base_url=cfg.base_url or OLLAMA_BASE_URL,
        api_key=cfg.api_key,
        timeout_s=cfg.timeout_s,
        retry=RetryPolicy(max_retries=cfg.max_retries),
        price=(0.0, 0.0),
        service="Ollama",
    )


def _anthropic(model: str, cfg: LLMSettings, env: Mapping[str, str]) -> Provider:
    from tighten.llm.anthropic import ANTHROPIC_BASE_URL, AnthropicProvider

    key = cfg.api_key or env.get("ANTHROPIC_API_KEY")
    if not key:
        raise ConfigError(
            f"Set the ANTHROPIC_API_KEY environment variable or pass an API key "
            f"(TIGHTEN_LLM_API_KEY) to use anthropic:{model}."
        )
    return AnthropicProvider(
        model,
        api_key=key,
        base_url=cfg.base_url or ANTHROPIC_BASE_URL,
        timeout_s=cfg.timeout_s,
        retry=RetryPolicy(max_retries=cfg.max_retries),
    )


_BUILDERS: dict[str, Callable[[str, LLMSettings, Mapping[str, str]], Provider]] = {
    "openai": _openai,
    "openai-compat": _compat,
    "ollama": _ollama,
    "anthropic": _anthropic,
}
_EXAMPLES = {
    "openai": "openai:gpt-4.1-mini",
    "openai-compat": "openai-compat:qwen3@http://127.0.0.1:8000/v1",
    "ollama": "ollama:qwen3",
    "anthropic": "anthropic:claude-sonnet-4-5",
}
