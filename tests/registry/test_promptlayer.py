"""The PromptLayer registry over real HTTP, against the local fake of PromptLayer's prompt
registry API in :mod:`tests.registry.fake_registries` (state, ``X-API-KEY``, scripted
failures)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.registry.fake_registries import PROMPTLAYER_KEY, Failure, FakePromptLayer, serve
from tighten.errors import InputError, StoreError
from tighten.registry.backends._http import RetryPolicy
from tighten.registry.backends.promptlayer import PromptLayerRegistry
from tighten.registry.base import Registry


@pytest.fixture
def fake() -> Iterator[tuple[FakePromptLayer, str]]:
    state = FakePromptLayer()
    with serve(state) as url:
        yield state, url


def _registry(url: str, sleeps: list[float], **kwargs: Any) -> PromptLayerRegistry:
    options: dict[str, Any] = {
        "base_url": url,
        "timeout": 2.0,
        "retry": RetryPolicy(max_retries=2, backoff_s=0.01, max_backoff_s=0.02),
        "sleep": sleeps.append,
    }
    options.update(kwargs)
    return PromptLayerRegistry(options.pop("api_key", PROMPTLAYER_KEY), **options)


@pytest.fixture
def registry(
    fake: tuple[FakePromptLayer, str], sleeps: list[float]
) -> Iterator[PromptLayerRegistry]:
    with _registry(fake[1], sleeps) as reg:
        yield reg


def test_is_a_registry(registry: PromptLayerRegistry) -> None:
    backend: Registry = registry
    assert backend.name == "promptlayer"
    assert PROMPTLAYER_KEY not in repr(registry)


def test_default_base_url_is_promptlayer_cloud() -> None:
    with PromptLayerRegistry(PROMPTLAYER_KEY) as reg:
        assert "https://api.promptlayer.com" in repr(reg)


def test_publish_deploy_and_rollback(
    registry: PromptLayerRegistry, fake: tuple[FakePromptLayer, str]
) -> None:
    state = fake[0]
    assert registry.publish("bot", "system", "Be brief.", author="alice", reason="first") == "1"
    registry.move_label("bot", "system", "1", "production", actor="alice", reason=None)
    assert registry.fetch("bot", "system").content == "Be brief."

    assert registry.publish("bot", "system", "Be briefer.", author="tighten", reason="less") == "2"
    assert registry.fetch("bot", "system").version == "1", "publish must not move a label"
    registry.move_label("bot", "system", "2", "production", actor="bob", reason="approved")
    fetched = registry.fetch("bot", "system", "production")
    assert (fetched.name, fetched.label, fetched.version, fetched.content) == (
        "system",
        "production",
        "2",
        "Be briefer.",
    )

    registry.move_label("bot", "system", "1", "production", actor="bob", reason="rollback")
    assert registry.fetch("bot", "system").content == "Be brief."
    assert [lb["prompt_version_number"] for lb in state.labels.values()] == [1]
    writes = [(m, p.split("/")[1]) for m, p, _ in state.seen if m in ("POST", "PATCH")]
    assert (
        writes
        == [("POST", "rest"), ("POST", "prompts"), ("POST", "rest")]
        + [("PATCH", "prompt-labels")] * 2
    )
    published = [b for m, p, b in state.seen if p == "/rest/prompt-templates"]
    assert all(b["release_labels"] == [] for b in published)
    assert published[1]["prompt_version"]["commit_message"] == "less — by tighten"


def test_versions_newest_first_with_author_and_reason(registry: PromptLayerRegistry) -> None:
    registry.publish("bot", "system", "one", author="alice", reason="shorter tool docs")
    registry.publish("bot", "system", "two", author="tighten", reason=None)
    registry.publish("bot", "system", "three", author="bob", reason="a — b")
    found = registry.versions("bot", "system")
    assert [v.version for v in found] == ["3", "2", "1"]
    assert [(v.author, v.reason) for v in found] == [
        ("bob", "a — b"),
        ("tighten", None),
        ("alice", "shorter tool docs"),
    ]
    assert found[-1].created_at is not None
    assert found[-1].created_at.isoformat() == "2025-06-01T09:30:00+00:00"


def test_versions_skip_deleted_ones(
    registry: PromptLayerRegistry, fake: tuple[FakePromptLayer, str]
) -> None:
    for text in ("one", "two", "three"):
        registry.publish("bot", "system", text, author="a", reason=None)
    del fake[0].templates["bot-system"].versions[1]
    assert [v.version for v in registry.versions("bot", "system")] == ["3", "1"]


def test_long_reason_is_shortened_but_keeps_the_author(
    registry: PromptLayerRegistry, fake: tuple[FakePromptLayer, str]
) -> None:
    registry.publish("bot", "system", "x", author="alice", reason="because " * 30)
    message = fake[0].templates["bot-system"].versions[0]["commit_message"]
    assert len(message) <= 72
    assert message.endswith("… — by alice")
    assert registry.versions("bot", "system")[0].author == "alice"


def test_publish_keeps_tags_and_model_metadata(
    registry: PromptLayerRegistry, fake: tuple[FakePromptLayer, str]
) -> None:
    registry.publish("bot", "system", "one", author="a", reason=None)
    template = fake[0].templates["bot-system"]
    model = {"model": {"provider": "openai", "name": "gpt-4o", "parameters": {}}}
    template.versions[0]["metadata"] = model
    template.tags = ["support"]
    registry.publish("bot", "system", "two", author="a", reason=None)
    assert template.versions[1]["metadata"] == model
    assert template.tags == ["support"]


def test_name_template_is_configurable(
    fake: tuple[FakePromptLayer, str], sleeps: list[float]
) -> None:
    with _registry(fake[1], sleeps, name_template="{agent}_{artifact}") as reg:
        reg.publish("bot", "faq", "x", author="a", reason=None)
        assert reg.versions("bot", "faq")[0].version == "1"
    assert list(fake[0].templates) == ["bot_faq"]


def test_unknown_template_label_or_version_is_input_error(registry: PromptLayerRegistry) -> None:
    with pytest.raises(InputError, match="no template 'bot-nope' with release label 'production'"):
        registry.fetch("bot", "nope")
    registry.publish("bot", "system", "x", author="a", reason=None)
    with pytest.raises(InputError, match="release label 'production'"):
        registry.fetch("bot", "system")
    with pytest.raises(InputError, match="with version 7"):
        registry.move_label("bot", "system", "7", "production", actor="a", reason=None)
    with pytest.raises(InputError, match="positive whole numbers"):
        registry.move_label("bot", "system", "0", "production", actor="a", reason=None)
    with pytest.raises(InputError, match="no template 'bot-nope'"):
        registry.versions("bot", "nope")


def test_chat_template_is_refused(
    registry: PromptLayerRegistry, fake: tuple[FakePromptLayer, str]
) -> None:
    registry.publish("bot", "system", "x", author="a", reason=None)
    registry.move_label("bot", "system", "1", "production", actor="a", reason=None)
    fake[0].templates["bot-system"].versions[0]["prompt_template"] = {"type": "chat"}
    with pytest.raises(InputError, match="chat template"):
        registry.fetch("bot", "system")
    with pytest.raises(InputError, match="completion"):
        registry.publish("bot", "system", "y", author="a", reason=None)


def test_bad_key_is_store_error_that_never_shows_the_key(
    fake: tuple[FakePromptLayer, str], sleeps: list[float]
) -> None:
    wrong = "pl_wrong_key_0000"
    with (
        _registry(fake[1], sleeps, api_key=wrong) as reg,
        pytest.raises(StoreError, match="Check the PromptLayer key") as caught,
    ):
        reg.publish("bot", "system", "x", author="a", reason=None)
    message = str(caught.value)
    assert "HTTP 401" in message
    assert "\n" not in message
    assert wrong not in message
    assert PROMPTLAYER_KEY not in message
    assert sleeps == [], "a rejected key is not retried"


def test_server_error_then_success_is_retried(
    registry: PromptLayerRegistry, fake: tuple[FakePromptLayer, str], sleeps: list[float]
) -> None:
    registry.publish("bot", "system", "x", author="a", reason=None)
    fake[0].failures.extend([Failure(500), Failure(502)])
    registry.move_label("bot", "system", "1", "production", actor="a", reason=None)
    assert registry.fetch("bot", "system").version == "1"
    assert len(sleeps) == 2


def test_rate_limit_waits_as_retry_after_says(
    registry: PromptLayerRegistry, fake: tuple[FakePromptLayer, str], sleeps: list[float]
) -> None:
    fake[0].failures.append(Failure(429, {"Retry-After": "0.05"}))
    assert registry.publish("bot", "system", "x", author="a", reason=None) == "1"
    assert sleeps == [0.05]


def test_persistent_server_error_is_store_error_after_retries(
    registry: PromptLayerRegistry, fake: tuple[FakePromptLayer, str], sleeps: list[float]
) -> None:
    fake[0].failures.extend([Failure(503)] * 3)
    with pytest.raises(StoreError, match=r"HTTP 503 .*\(3 attempts\)") as caught:
        registry.fetch("bot", "system")
    assert PROMPTLAYER_KEY not in str(caught.value)
    assert len(sleeps) == 2


def test_refused_request_is_store_error(
    registry: PromptLayerRegistry, fake: tuple[FakePromptLayer, str]
) -> None:
    fake[0].failures.append(Failure(422))
    with pytest.raises(StoreError, match=r"HTTP 422 .*scripted failure"):
        registry.publish("bot", "system", "x", author="a", reason=None)


def test_slow_server_is_store_error(fake: tuple[FakePromptLayer, str], sleeps: list[float]) -> None:
    fake[0].failures.extend([Failure(200, delay_s=0.3)] * 2)
    retry = RetryPolicy(max_retries=1, backoff_s=0.01)
    with (
        _registry(fake[1], sleeps, timeout=0.1, retry=retry) as reg,
        pytest.raises(StoreError, match=r"no answer .* within 0\.1 s \(2 attempts\)"),
    ):
        reg.fetch("bot", "system")


def test_unreachable_server_is_store_error(closed_url: str, sleeps: list[float]) -> None:
    with (
        _registry(closed_url, sleeps) as reg,
        pytest.raises(StoreError, match=re.escape(f"cannot reach {closed_url}")) as caught,
    ):
        reg.fetch("bot", "system")
    assert PROMPTLAYER_KEY not in str(caught.value)
    assert len(sleeps) == 2
