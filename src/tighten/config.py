"""Settings: one class, built at the edge (CLI, web, Python) and passed down.

Precedence: explicit argument (CLI flag) > ``TIGHTEN_*`` environment variable >
``./tighten.toml`` (the working directory) > ``$TIGHTEN_HOME/tighten.toml`` > default.
Keys of tighten.toml are the setting names at the top level (``database_url = "…"``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

__all__ = ["Settings", "default_home"]


def default_home() -> Path:
    """``$TIGHTEN_HOME`` if set, else ``~/.tighten``."""
    home = os.environ.get("TIGHTEN_HOME")
    return Path(home).expanduser() if home else Path.home() / ".tighten"


def _toml_files() -> list[Path]:
    """Config files, the one that wins first."""
    return [p for p in (Path("tighten.toml"), default_home() / "tighten.toml") if p.is_file()]


class Settings(BaseSettings):
    """Every setting tighten reads. Environment variables are ``TIGHTEN_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="TIGHTEN_", extra="ignore")

    home: Path = Field(
        default_factory=default_home,
        description="Folder for the default SQLite database and local state.",
    )
    database_url: str | None = Field(
        default=None,
        description=(
            "SQLAlchemy URL of the store: `sqlite:///path.db` or `postgresql://user@host/db`. "
            "Default: `sqlite:///$TIGHTEN_HOME/tighten.db`."
        ),
    )
    max_record_bytes: int = Field(
        default=16 * 1024 * 1024,
        gt=0,
        description="Largest accepted input record (one JSONL line or OTLP document) in bytes.",
    )
    max_field_chars: int = Field(
        default=1_000_000,
        gt=0,
        description="Largest accepted single text field (message content, tool result).",
    )
    ingest_batch_size: int = Field(
        default=500,
        gt=0,
        description="Sessions written per transaction during ingest.",
    )
    registry: str = Field(
        default="db",
        description=(
            "Where approved proposals are deployed by `tighten review reply` and `review poll`: "
            "`db` (tighten's database, also what `tighten artifacts` manages), "
            "`git:/path/to/repo` (a git repository: deploys are commits on its main branch), "
            "`langfuse` (Langfuse prompt management) or `promptlayer`, or a plugin's scheme."
        ),
    )
    langfuse_host: str | None = Field(
        default=None,
        description="Langfuse server URL (default: LANGFUSE_HOST, else Langfuse Cloud).",
    )
    langfuse_public_key: str | None = Field(
        default=None, description="Langfuse public key (default: LANGFUSE_PUBLIC_KEY)."
    )
    langfuse_secret_key: SecretStr | None = Field(
        default=None, description="Langfuse secret key (default: LANGFUSE_SECRET_KEY)."
    )
    promptlayer_api_key: SecretStr | None = Field(
        default=None, description="PromptLayer API key (default: PROMPTLAYER_API_KEY)."
    )
    channel: str = Field(
        default="console",
        description=(
            "Where `tighten review send` sends the digest and `review poll` reads replies: "
            "console, telegram, slack, whatsapp (Meta Cloud API), green-api, github, email, "
            "webhook, or a plugin's channel."
        ),
    )
    channels: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description=(
            "Non-secret options per channel, e.g. in tighten.toml `[channels.telegram]` "
            '`chat_id = "12345"`. Tokens and secrets come only from environment variables '
            "(see docs/review.md)."
        ),
    )
    approvers: list[str] = Field(
        default_factory=list,
        description=(
            "Who may decide on proposals: sender ids as channels report them (a Telegram "
            "chat id, a phone number, a Slack user id, an e-mail address). Empty: only the "
            "local command line (sender `cli`) may decide."
        ),
    )
    llm_model: str | None = Field(
        default=None,
        description=(
            "The LLM for the optional judge (and later the optimizers), e.g. "
            "`openai:gpt-4.1-mini`, `anthropic:claude-sonnet-4-5`, `ollama:qwen3`, "
            "`openai-compat:MODEL@http://host:8000/v1`. Unset: everything runs offline."
        ),
    )
    llm_base_url: str | None = Field(
        default=None,
        description="Base URL of an OpenAI-compatible endpoint (overrides the default).",
    )
    llm_api_key: SecretStr | None = Field(
        default=None,
        description=(
            "API key for the LLM provider; default: OPENAI_API_KEY or ANTHROPIC_API_KEY "
            "from the environment."
        ),
    )
    llm_timeout_s: float = Field(default=60.0, gt=0, description="Timeout of one LLM request.")
    llm_max_retries: int = Field(
        default=3, ge=0, description="Retries of a rate-limited or failed LLM request."
    )
    judge_sample_rate: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="Share of the sessions the rules did not flag that the judge also reads.",
    )
    judge_max_sessions: int = Field(
        default=50, ge=0, description="Most sessions the judge reads in one run."
    )
    judge_max_tokens_per_session: int = Field(
        default=6000, gt=0, description="Transcript budget per judged session (tokens, estimated)."
    )
    judge_max_cost_usd: float = Field(
        default=1.0, ge=0, description="Most money one judge run may spend (USD)."
    )

    @field_validator("database_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is not None and "://" not in value:
            raise ValueError(
                "must be a URL such as sqlite:///tighten.db or postgresql://user@host/db"
            )
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        sources += [TomlConfigSettingsSource(settings_cls, toml_file=p) for p in _toml_files()]
        return tuple(sources)

    def resolved_database_url(self) -> str:
        """The store URL, with the SQLite default filled in and ``postgresql://`` mapped to
        the psycopg driver."""
        url = self.database_url or f"sqlite:///{self.home / 'tighten.db'}"
        if url.startswith(("postgresql://", "postgres://")):
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        return url

    @classmethod
    def load(cls, **overrides: Any) -> Settings:
        """Build settings, turning a validation error into a one-line ConfigError."""
        from pydantic import ValidationError
        from pydantic_settings import SettingsError

        from tighten.errors import ConfigError

        try:
            return cls(**{k: v for k, v in overrides.items() if v is not None})
        except SettingsError as exc:
            raise ConfigError(
                f"Cannot read the settings: {exc}. A list setting such as TIGHTEN_APPROVERS "
                "is written as JSON: TIGHTEN_APPROVERS='[\"+15551234\"]'."
            ) from None
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"]) or "settings"
            raise ConfigError(
                f"Invalid setting {field}: {err['msg']}. Fix TIGHTEN_{field.upper()} "
                "or tighten.toml."
            ) from None
