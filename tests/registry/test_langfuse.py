"""The Langfuse registry over real HTTP, against the local fake of Langfuse's prompts API
in :mod:`tests.registry.fake_registries` (state, Basic auth, scripted failures)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.registry.fake_registries import (
    LANGFUSE_PREFIX,
    LANGFUSE_PUBLIC_KEY,
    LANGFUSE_SECRET_KEY,
    Failure,
    FakeLangfuse,
    basic_auth,
    serve,
)
from tighten.errors import InputError, StoreError
from tighten.registry.backends._http import RetryPolicy
from tighten.registry.backends.langfuse import LangfuseRegistry
from tighten.registry.base import Registry


@pytest.fixture
def fake() -> Iterator[tuple[FakeLangfuse, str]]:
    state = FakeLangfuse()
    with serve(state) as url:
        yield state, url


def _registry(url: str, sleeps: list[float], **kwargs: Any) -> LangfuseRegistry:
    options: dict[str, Any] = {
        "timeout": 2.0,
        "retry": RetryPolicy(max_retries=2, backoff_s=0.01, max_backoff_s=0.02),
        "sleep": sleeps.append,
    }
    options.update(kwargs)
    return LangfuseRegistry(
        url, options.pop("public_key", LANGFUSE_PUBLIC_KEY), LANGFUSE_SECRET_KEY, **options
    )


@pytest.fixture
def registry(fake: tuple[FakeLangfuse, str], sleeps: list[float]) -> Iterator[LangfuseRegistry]:
    with _registry(fake[1], sleeps) as reg:
        yield reg


def test_is_a_registry(registry: LangfuseRegistry) -> None:
    backend: Registry = registry
    assert backend.name == "langfuse"
    assert LANGFUSE_SECRET_KEY not in repr(registry)


def test_publish_deploy_and_rollback(
    registry: LangfuseRegistry, fake: tuple[FakeLangfuse, str]
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
    stored = state.prompts["bot/system"]
    assert [v["labels"] for v in stored] == [["production"], ["latest"]]
    assert stored[1]["commitMessage"] == "less — by tighten"
    assert all(b["labels"] == [] and b["type"] == "text" for m, _, b in state.seen if m == "POST")


def test_versions_newest_first_with_author_and_reason(registry: LangfuseRegistry) -> None:
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
    assert found[-1].created_at.isoformat() == "2025-06-01T12:00:00+00:00"


def test_folder_name_is_url_encoded(
    registry: LangfuseRegistry, fake: tuple[FakeLangfuse, str]
) -> None:
    registry.publish("bot", "system", "x", author="a", reason=None)
    registry.move_label("bot", "system", "1", "staging", actor="a", reason=None)
    paths = [p for m, p, _ in fake[0].seen if m == "PATCH"]
    assert paths == [f"{LANGFUSE_PREFIX}/bot%2Fsystem/versions/1"]
    assert registry.fetch("bot", "system", "staging").content == "x"


def test_name_template_is_configurable(fake: tuple[FakeLangfuse, str], sleeps: list[float]) -> None:
    with _registry(fake[1], sleeps, name_template="{agent}.{artifact}") as reg:
        reg.publish("bot", "faq", "x", author="a", reason=None)
    assert list(fake[0].prompts) == ["bot.faq"]


def test_publish_keeps_the_config_of_the_newest_version(
    registry: LangfuseRegistry, fake: tuple[FakeLangfuse, str]
) -> None:
    registry.publish("bot", "system", "one", author="a", reason=None)
    fake[0].prompts["bot/system"][0]["config"] = {"model": "gpt-4o", "temperature": 0.2}
    registry.publish("bot", "system", "two", author="a", reason=None)
    assert fake[0].prompts["bot/system"][1]["config"] == {"model": "gpt-4o", "temperature": 0.2}


def test_unknown_prompt_label_or_version_is_input_error(registry: LangfuseRegistry) -> None:
    with pytest.raises(InputError, match="no prompt 'bot/nope' with label 'production'"):
        registry.fetch("bot", "nope")
    registry.publish("bot", "system", "x", author="a", reason=None)
    with pytest.raises(InputError, match="label 'production'"):
        registry.fetch("bot", "system")
    with pytest.raises(InputError, match="has no version 7"):
        registry.move_label("bot", "system", "7", "production", actor="a", reason=None)
    with pytest.raises(InputError, match="positive whole numbers"):
        registry.move_label("bot", "system", "v1", "production", actor="a", reason=None)
    with pytest.raises(InputError, match="no prompt 'bot/nope'"):
        registry.versions("bot", "nope")


def test_latest_label_cannot_be_moved(registry: LangfuseRegistry) -> None:
    registry.publish("bot", "system", "x", author="a", reason=None)
    with pytest.raises(InputError, match="'latest'"):
        registry.move_label("bot", "system", "1", "latest", actor="a", reason=None)


def test_chat_prompt_is_refused(registry: LangfuseRegistry, fake: tuple[FakeLangfuse, str]) -> None:
    registry.publish("bot", "system", "x", author="a", reason=None)
    registry.move_label("bot", "system", "1", "production", actor="a", reason=None)
    fake[0].prompts["bot/system"][0].update(type="chat", prompt=[{"role": "system"}])
    with pytest.raises(InputError, match="chat prompt"):
        registry.fetch("bot", "system")
    with pytest.raises(InputError, match="text prompts only"):
        registry.publish("bot", "system", "y", author="a", reason=None)


def test_bad_key_is_store_error_that_never_shows_the_secret(
    fake: tuple[FakeLangfuse, str], sleeps: list[float]
) -> None:
    with (
        _registry(fake[1], sleeps, public_key="pk-wrong") as reg,
        pytest.raises(StoreError, match="Check the Langfuse key") as caught,
    ):
        reg.fetch("bot", "system")
    message = str(caught.value)
    assert "HTTP 401" in message
    assert "\n" not in message
    assert LANGFUSE_SECRET_KEY not in message
    assert basic_auth("pk-wrong", LANGFUSE_SECRET_KEY) not in message
    assert sleeps == [], "a rejected key is not retried"


def test_server_error_then_success_is_retried(
    registry: LangfuseRegistry, fake: tuple[FakeLangfuse, str], sleeps: list[float]
) -> None:
    fake[0].failures.extend([Failure(500), Failure(503)])
    assert registry.publish("bot", "system", "x", author="a", reason=None) == "1"
    assert len(sleeps) == 2
    assert all(0 < s <= 0.02 for s in sleeps)


def test_rate_limit_waits_as_retry_after_says(
    registry: LangfuseRegistry, fake: tuple[FakeLangfuse, str], sleeps: list[float]
) -> None:
    registry.publish("bot", "system", "x", author="a", reason=None)
    registry.move_label("bot", "system", "1", "production", actor="a", reason=None)
    fake[0].failures.append(Failure(429, {"Retry-After": "0.05"}))
    assert registry.fetch("bot", "system").version == "1"
    assert sleeps == [0.05]


def test_retry_after_beyond_the_limit_fails_at_once(
    registry: LangfuseRegistry, fake: tuple[FakeLangfuse, str], sleeps: list[float]
) -> None:
    fake[0].failures.append(Failure(429, {"Retry-After": "3600"}))
    with pytest.raises(StoreError, match="asks to wait 3600 s"):
        registry.fetch("bot", "system")
    assert sleeps == []


def test_persistent_server_error_is_store_error_after_retries(
    registry: LangfuseRegistry, fake: tuple[FakeLangfuse, str], sleeps: list[float]
) -> None:
    fake[0].failures.extend([Failure(502)] * 3)
    with pytest.raises(StoreError, match=r"HTTP 502 .*\(3 attempts\)"):
        registry.versions("bot", "system")
    assert len(sleeps) == 2


def test_slow_server_is_store_error(fake: tuple[FakeLangfuse, str], sleeps: list[float]) -> None:
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
        reg.publish("bot", "system", "x", author="a", reason=None)
    assert LANGFUSE_SECRET_KEY not in str(caught.value)
    assert len(sleeps) == 2
