"""What a channel is.

A channel sends the digest (already split into parts that fit the service) and brings
back the owner's replies: by polling where the service allows it (no public server
needed), and by verifying and parsing the service's webhook calls once ``tighten serve``
receives them. Every reply carries the sender's id as the service names it; whether
that sender may decide is checked later against the ``approvers`` setting, and a channel
also drops messages from chats it was not configured for (logged, never acted on).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Protocol

from tighten.errors import TightenError

__all__ = ["Channel", "ChannelError", "Reply", "WebhookRejected"]


class ChannelError(TightenError):
    """A channel could not send or receive (unreachable, refused, misconfigured)."""


class WebhookRejected(TightenError):
    """A webhook call failed verification (forged or missing signature, stale
    timestamp, replay): nothing in it is acted on."""


@dataclass(frozen=True, slots=True)
class Reply:
    """One message from a person on a channel."""

    channel: str
    sender: str
    text: str
    received_at: datetime
    message_id: str | None = None
    chat: str | None = None


class Channel(Protocol):
    """A messaging channel.

    ``send`` delivers the parts in order and returns the service's message ids.
    ``poll`` returns the replies that arrived since the last poll and remembers where it
    stopped, so a reply is returned once (services that need an acknowledgement get it
    after the reply is returned). ``parse_webhook`` verifies a webhook call's signature
    against the raw body and returns its replies, or raises :class:`WebhookRejected`;
    channels without webhooks raise it always."""

    name: ClassVar[str]

    def send(self, parts: Sequence[str]) -> list[str]: ...

    def poll(self) -> list[Reply]: ...

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[Reply]: ...
