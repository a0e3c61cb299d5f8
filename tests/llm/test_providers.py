"""The LLM providers, over real HTTP to a local server that speaks the vendors' APIs."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from tests.llm.fake_api import ANTHROPIC_KEY, OPENAI_KEY, FakeLLMServer, Reply
from tighten.errors import ConfigError
from tighten.http import retry_after_s
from tighten.llm import (
    OLLAMA_BASE_URL,
    CompletionRequest,
    LLMError,
    LLMSettings,
    Provider,
    RetryPolicy,
    ScriptedProvider,
    price_of,
    resolve_provider,
)
from tighten.llm.anthropic import AnthropicProvider
from tighten.llm.openai_compat import OpenAICompatProvider

FAST = RetryPolicy(max_retries=2, backoff_s=0.001, max_backoff_s=0.005)
HELLO = CompletionRequest([{"role": "user", "content": "Hello"}], system="Be brief.")
SCHEMA = {
    "type": "object",
    "properties": {"verdict": {"type": "string", "enum": ["good", "bad"]}},
    "required": ["verdict"],
    "additionalProperties": False,
}


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as fake:
        yield fake
        assert fake.problems == []


@pytest.fixture
def openai(server: FakeLLMServer) -> Iterator[OpenAICompatProvider]:
    with OpenAICompatProvider(
        "gpt-4.1", base_url=server.url + "/v1", api_key=OPENAI_KEY, retry=FAST, timeout_s=2
    ) as provider:
        yield provider


@pytest.fixture
def anthropic(server: FakeLLMServer) -> Iterator[AnthropicProvider]:
    with AnthropicProvider(
        "claude-sonnet-4-5", api_key=ANTHROPIC_KEY, base_url=server.url, retry=FAST, timeout_s=2
    ) as provider:
        yield provider


# --- OpenAI-compatible -------------------------------------------------------------------


def test_openai_answer_records_tokens_cost_and_model(
    server: FakeLLMServer, openai: OpenAICompatProvider
) -> None:
    server.queue(Reply("Hi!", usage=(1000, 500), model="gpt-4.1-2025-04-14"))
    completion = openai.complete(HELLO)
    assert completion.text == "Hi!"
    assert (completion.input_tokens, completion.output_tokens) == (1000, 500)
    assert completion.cost_usd == pytest.approx(1000 * 2.0 / 1e6 + 500 * 8.0 / 1e6)
    assert completion.model == "gpt-4.1-2025-04-14"
    assert completion.latency_ms > 0
    (seen,) = server.requests
    assert seen.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert seen.body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello"},
    ]
    assert seen.body["max_tokens"] == 1024
    assert seen.body["temperature"] == 0.0
    assert "response_format" not in seen.body


def test_openai_json_schema_is_sent_as_strict_response_format(
    server: FakeLLMServer, openai: OpenAICompatProvider
) -> None:
    server.queue(Reply('{"verdict": "good"}'))
    request = CompletionRequest(HELLO.messages, json_schema=SCHEMA, schema_name="verdict")
    assert json.loads(openai.complete(request).text) == {"verdict": "good"}
    response_format = server.requests[0].body["response_format"]
    assert response_format == {
        "type": "json_schema",
        "json_schema": {"name": "verdict", "schema": SCHEMA, "strict": True},
    }


def test_openai_spec_uses_max_completion_tokens_and_drops_temperature_for_reasoning(
    server: FakeLLMServer,
) -> None:
    settings = LLMSettings(base_url=server.url + "/v1", api_key=OPENAI_KEY)
    for spec in ("openai:gpt-4.1-mini", "openai:o4-mini"):
        provider = resolve_provider(spec, settings, env={})
        assert isinstance(provider, OpenAICompatProvider)
        with provider:
            provider.complete(HELLO)
    first, second = (seen.body for seen in server.requests)
    assert first["max_completion_tokens"] == 1024
    assert "max_tokens" not in first
    assert first["temperature"] == 0.0
    assert "temperature" not in second


def test_429_with_retry_after_is_honoured_then_succeeds(
    server: FakeLLMServer, openai: OpenAICompatProvider
) -> None:
    server.queue(Reply(status=429, headers={"retry-after-ms": "150", "retry-after": "1"}))
    server.queue(Reply("after the wait"))
    assert openai.complete(HELLO).text == "after the wait"
    first, second = server.requests
    assert second.at - first.at >= 0.14  # the server's 150 ms, not the 1 ms backoff


def test_retry_after_seconds_and_http_dates() -> None:
    assert retry_after_s({"Retry-After": "2"}) == 2.0
    assert retry_after_s({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    from datetime import UTC, datetime

    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert retry_after_s({"retry-after": "Wed, 01 Jan 2025 12:00:30 GMT"}, now) == 30.0
    assert retry_after_s({"retry-after": "soon"}) is None
    assert retry_after_s({}) is None


def test_repeated_429_gives_up_after_the_bounded_retries(
    server: FakeLLMServer, openai: OpenAICompatProvider
) -> None:
    server.default = Reply(status=429, message="Rate limit reached for gpt-4.1")
    with pytest.raises(LLMError) as caught:
        openai.complete(HELLO)
    assert len(server.requests) == 1 + FAST.max_retries
    message = str(caught.value)
    assert "HTTP 429" in message
    assert "Rate limit reached" in message
    assert "3 attempts" in message
    assert "\n" not in message


def test_retry_after_longer_than_allowed_stops_at_once(server: FakeLLMServer) -> None:
    server.default = Reply(status=429, headers={"retry-after": "3600"})
    policy = RetryPolicy(max_retries=3, backoff_s=0.001, max_wait_s=5)
    with (
        OpenAICompatProvider(
            "gpt-4.1", base_url=server.url + "/v1", api_key=OPENAI_KEY, retry=policy
        ) as provider,
        pytest.raises(LLMError, match="asks to wait 3600 s"),
    ):
        provider.complete(HELLO)
    assert len(server.requests) == 1


def test_500_then_success(server: FakeLLMServer, openai: OpenAICompatProvider) -> None:
    server.queue(Reply(status=500, message="The server had an error"), Reply("fine now"))
    assert openai.complete(HELLO).text == "fine now"
    assert len(server.requests) == 2


def test_slow_server_times_out_and_retries_are_bounded(server: FakeLLMServer) -> None:
    server.default = Reply("too late", delay_s=5)
    policy = RetryPolicy(max_retries=1, backoff_s=0.001)
    started = time.monotonic()
    with (
        OpenAICompatProvider(
            "gpt-4.1", base_url=server.url + "/v1", api_key=OPENAI_KEY, retry=policy, timeout_s=0.2
        ) as provider,
        pytest.raises(LLMError, match="within the timeout"),
    ):
        provider.complete(HELLO)
    assert len(server.requests) == 2
    assert time.monotonic() - started < 2


def test_client_errors_are_not_retried_and_say_what_to_do(server: FakeLLMServer) -> None:
    with (
        OpenAICompatProvider(
            "gpt-4.1", base_url=server.url + "/v1", api_key="sk-wrong", retry=FAST
        ) as provider,
        pytest.raises(LLMError, match=r"HTTP 400 .*Incorrect API key"),
    ):
        provider.complete(HELLO)
    assert len(server.requests) == 1
    server.problems.clear()


def test_unreachable_endpoint_is_an_llm_error() -> None:
    with FakeLLMServer() as gone:
        url = gone.url
    with (
        OpenAICompatProvider("m", base_url=url + "/v1", retry=FAST, timeout_s=1) as provider,
        pytest.raises(LLMError, match="cannot reach"),
    ):
        provider.complete(HELLO)


def test_ollama_spec_targets_a_local_server_without_key_and_costs_nothing() -> None:
    with FakeLLMServer(openai_key=None) as server:
        provider = resolve_provider(
            "ollama:qwen3:8b", LLMSettings(base_url=server.url + "/v1"), env={}
        )
        assert isinstance(provider, OpenAICompatProvider)
        with provider:
            completion = provider.complete(HELLO)
        assert completion.cost_usd == 0.0
        assert "authorization" not in server.requests[0].headers
        assert server.requests[0].body["model"] == "qwen3:8b"
    default = resolve_provider("ollama:qwen3", env={})
    assert isinstance(default, OpenAICompatProvider)
    assert default.base_url == OLLAMA_BASE_URL


def test_openai_compat_spec_parses_model_and_base_url(server: FakeLLMServer) -> None:
    spec = f"openai-compat:meta-llama/Llama-3.1-8B@{server.url}/v1"
    provider = resolve_provider(spec, LLMSettings(api_key=OPENAI_KEY), env={})
    assert isinstance(provider, OpenAICompatProvider)
    with provider:
        completion = provider.complete(HELLO)
    assert server.requests[0].body["model"] == "meta-llama/Llama-3.1-8B"
    assert "max_tokens" in server.requests[0].body
    assert completion.cost_usd is None  # not in the price table


# --- Anthropic ---------------------------------------------------------------------------


def test_anthropic_answer_records_tokens_and_cost(
    server: FakeLLMServer, anthropic: AnthropicProvider
) -> None:
    server.queue(Reply("Hello from Claude", usage=(2000, 100)))
    completion = anthropic.complete(HELLO)
    assert completion.text == "Hello from Claude"
    assert (completion.input_tokens, completion.output_tokens) == (2000, 100)
    assert completion.cost_usd == pytest.approx(2000 * 3.0 / 1e6 + 100 * 15.0 / 1e6)
    (seen,) = server.requests
    assert seen.path == "/v1/messages"
    assert seen.headers["x-api-key"] == ANTHROPIC_KEY
    assert seen.headers["anthropic-version"] == "2023-06-01"
    assert seen.body["system"] == "Be brief."
    assert seen.body["messages"] == [{"role": "user", "content": "Hello"}]
    assert seen.body["max_tokens"] == 1024


def test_anthropic_json_schema_forces_a_tool_call(
    server: FakeLLMServer, anthropic: AnthropicProvider
) -> None:
    server.queue(Reply('{"verdict": "bad"}'))
    request = CompletionRequest(HELLO.messages, json_schema=SCHEMA, schema_name="verdict")
    assert json.loads(anthropic.complete(request).text) == {"verdict": "bad"}
    body = server.requests[0].body
    assert body["tools"][0]["input_schema"] == SCHEMA
    assert body["tool_choice"] == {"type": "tool", "name": "verdict"}


@pytest.mark.parametrize("status", [529, 503, 429])
def test_anthropic_overloaded_then_success(
    server: FakeLLMServer, anthropic: AnthropicProvider, status: int
) -> None:
    server.queue(Reply(status=status, message="Overloaded"), Reply("recovered"))
    assert anthropic.complete(HELLO).text == "recovered"
    assert len(server.requests) == 2


def test_anthropic_persistent_overload_is_an_llm_error(
    server: FakeLLMServer, anthropic: AnthropicProvider
) -> None:
    server.default = Reply(status=529, message="Overloaded")
    with pytest.raises(LLMError, match=r"HTTP 529.*Overloaded"):
        anthropic.complete(HELLO)
    assert len(server.requests) == 3


# --- resolving names, scripted, prices ---------------------------------------------------


def test_missing_api_keys_say_what_to_do() -> None:
    with pytest.raises(ConfigError, match="Set the OPENAI_API_KEY environment variable"):
        resolve_provider("openai:gpt-4.1", env={})
    with pytest.raises(ConfigError, match="Set the ANTHROPIC_API_KEY environment variable"):
        resolve_provider("anthropic:claude-sonnet-4-5", env={})
    assert isinstance(resolve_provider("openai:gpt-4.1", env={"OPENAI_API_KEY": "k"}), Provider)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("gpt-4.1", "Unknown LLM provider"),
        ("bedrock:claude", "Unknown LLM provider"),
        ("openai:", "No model"),
        ("openai-compat:llama3", "needs the endpoint"),
    ],
)
def test_bad_specs_are_config_errors(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve_provider(spec, env={"OPENAI_API_KEY": "k"})


def test_scripted_provider_answers_in_turn_and_records_requests() -> None:
    provider = ScriptedProvider(["one", "two two two"])
    first = provider.complete(HELLO)
    second = provider.complete(CompletionRequest([{"role": "user", "content": "x" * 40}]))
    assert (first.text, second.text) == ("one", "two two two")
    assert len(provider.requests) == 2
    assert provider.requests[0] is HELLO
    assert (second.input_tokens, second.output_tokens) == (10, 2)
    assert first.cost_usd == 0.0
    with pytest.raises(LLMError, match="no scripted response left"):
        provider.complete(HELLO)


def test_scripted_provider_from_a_function_and_from_the_schema() -> None:
    echo = ScriptedProvider(lambda request: request.messages[-1]["content"].upper())
    assert echo.complete(HELLO).text == "HELLO"
    resolved = resolve_provider("scripted")
    assert resolved.complete(HELLO).text == "ok"
    structured = CompletionRequest(HELLO.messages, json_schema=SCHEMA)
    assert json.loads(resolved.complete(structured).text) == {"verdict": "good"}


def test_price_table_matches_dated_and_routed_names() -> None:
    assert price_of("gpt-4o-2024-08-06") == (2.5, 10.0)
    assert price_of("gpt-4o-mini") == (0.15, 0.60)
    assert price_of("claude-sonnet-4-20250514") == (3.0, 15.0)
    assert price_of("claude-sonnet-4-5-20250929") == (3.0, 15.0)
    assert price_of("openai/gpt-4.1-mini") == (0.40, 1.60)
    assert price_of("qwen3:8b") is None
