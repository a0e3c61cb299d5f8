"""The built-in channels and how each is built from its options and the environment.

Tokens and secrets are read from environment variables only (never from the command
line or tighten.toml); ids that are not secret come from the ``channels`` setting.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from tighten.config import Settings
from tighten.errors import ConfigError
from tighten.hookspecs import hookimpl
from tighten.plugins import plugin_manager
from tighten.review.channels.base import Channel

__all__ = ["ChannelFactory", "channel_factories", "register_channels", "resolve_channel"]

ChannelFactory = Callable[[Mapping[str, str], Mapping[str, str], Path], Channel]


def _need(source: Mapping[str, str], key: str, where: str) -> str:
    value = source.get(key)
    if not value:
        raise ConfigError(f"Set {key} ({where}) to use this channel.")
    return value


def _console(options: Mapping[str, str], env: Mapping[str, str], state: Path) -> Channel:
    from tighten.review.channels.console import ConsoleChannel

    return ConsoleChannel()


def _telegram(options: Mapping[str, str], env: Mapping[str, str], state: Path) -> Channel:
    from tighten.review.channels.telegram import TelegramChannel

    return TelegramChannel(
        _need(env, "TELEGRAM_BOT_TOKEN", "environment"),
        _need(options, "chat_id", "[channels.telegram] chat_id"),
        state_path=state / "telegram.json",
        webhook_secret=env.get("TELEGRAM_WEBHOOK_SECRET"),
    )


def _slack(options: Mapping[str, str], env: Mapping[str, str], state: Path) -> Channel:
    from tighten.review.channels.slack import SlackChannel

    return SlackChannel(
        _need(env, "SLACK_BOT_TOKEN", "environment"),
        _need(options, "channel_id", "[channels.slack] channel_id"),
        signing_secret=env.get("SLACK_SIGNING_SECRET"),
        state_path=state / "slack.json",
    )


def _whatsapp(options: Mapping[str, str], env: Mapping[str, str], state: Path) -> Channel:
    from tighten.review.channels.whatsapp import WhatsAppCloudChannel

    return WhatsAppCloudChannel(
        _need(env, "WHATSAPP_ACCESS_TOKEN", "environment"),
        _need(options, "phone_number_id", "[channels.whatsapp] phone_number_id"),
        _need(options, "to", "[channels.whatsapp] to"),
        app_secret=_need(env, "WHATSAPP_APP_SECRET", "environment"),
        verify_token=_need(env, "WHATSAPP_VERIFY_TOKEN", "environment"),
    )


def _green_api(options: Mapping[str, str], env: Mapping[str, str], state: Path) -> Channel:
    from tighten.review.channels.whatsapp import GreenApiChannel

    return GreenApiChannel(
        _need(options, "instance_id", "[channels.green-api] instance_id"),
        _need(env, "GREEN_API_TOKEN", "environment"),
        _need(options, "chat_id", "[channels.green-api] chat_id"),
        webhook_token=env.get("GREEN_API_WEBHOOK_TOKEN"),
    )


def _webhook(options: Mapping[str, str], env: Mapping[str, str], state: Path) -> Channel:
    from tighten.review.channels.webhook import WebhookChannel

    return WebhookChannel(
        _need(options, "url", "[channels.webhook] url"),
        _need(env, "TIGHTEN_WEBHOOK_SECRET", "environment"),
    )


def _github(options: Mapping[str, str], env: Mapping[str, str], state: Path) -> Channel:
    from tighten.review.channels.github import GitHubChannel

    return GitHubChannel(
        _need(env, "GITHUB_TOKEN", "environment"),
        _need(options, "repo", "[channels.github] repo"),
        state_path=state / "github.json",
        webhook_secret=env.get("GITHUB_WEBHOOK_SECRET"),
        label=options.get("label", "tighten"),
    )


def _flag(options: Mapping[str, str], key: str, default: bool) -> bool:
    value = options.get(key)
    return default if value is None else str(value).strip().lower() in ("1", "true", "yes", "on")


def _port(options: Mapping[str, str], key: str, default: int) -> int:
    value = options.get(key)
    try:
        return int(value) if value else default
    except ValueError:
        raise ConfigError(f"[channels.email] {key} must be a port number, not {value!r}.") from None


def _email(options: Mapping[str, str], env: Mapping[str, str], state: Path) -> Channel:
    from tighten.review.channels.email import EmailChannel

    from_addr = _need(options, "from", "[channels.email] from")
    return EmailChannel(
        _need(options, "smtp_host", "[channels.email] smtp_host"),
        _port(options, "smtp_port", 587),
        _need(options, "imap_host", "[channels.email] imap_host"),
        _port(options, "imap_port", 993),
        env.get("TIGHTEN_EMAIL_USERNAME") or from_addr,
        _need(env, "TIGHTEN_EMAIL_PASSWORD", "environment"),
        from_addr,
        _need(options, "to", "[channels.email] to"),
        state_path=state / "email.json",
        starttls=_flag(options, "starttls", True),
        imap_ssl=_flag(options, "imap_ssl", True),
    )


@hookimpl
def register_channels() -> dict[str, ChannelFactory]:
    return {
        "console": _console,
        "telegram": _telegram,
        "slack": _slack,
        "whatsapp": _whatsapp,
        "green-api": _green_api,
        "webhook": _webhook,
        "github": _github,
        "email": _email,
    }


def channel_factories() -> dict[str, ChannelFactory]:
    found: dict[str, ChannelFactory] = {}
    for group in reversed(plugin_manager().hook.register_channels()):
        found.update(group)
    return found


def resolve_channel(settings: Settings, name: str | None, env: Mapping[str, str]) -> Channel:
    """The channel ``name`` (default: the ``channel`` setting), built from its options."""
    chosen = name or settings.channel
    factories = channel_factories()
    if chosen not in factories:
        raise ConfigError(f"Unknown channel {chosen!r}: use one of {', '.join(sorted(factories))}.")
    state = settings.home / "channels"
    state.mkdir(parents=True, exist_ok=True)
    return factories[chosen](settings.channels.get(chosen, {}), env, state)
