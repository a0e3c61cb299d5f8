"""The console channel: print the digest, read one line as the reply."""

from __future__ import annotations

import io

import pytest

from tighten.review.channels.base import WebhookRejected
from tighten.review.channels.console import ConsoleChannel


def test_send_prints_the_parts_in_order() -> None:
    out = io.StringIO()
    ids = ConsoleChannel(out).send(["Digest (1/2)\nitem 1", "", "Digest (2/2)\n"])
    assert ids == ["1", "2"]
    assert out.getvalue() == "Digest (1/2)\nitem 1\n\nDigest (2/2)\n"


def test_send_defaults_to_standard_output(capsys: pytest.CaptureFixture[str]) -> None:
    ConsoleChannel().send(["hello"])
    assert capsys.readouterr().out == "hello\n"


def test_poll_reads_one_line_as_the_reply_of_cli() -> None:
    channel = ConsoleChannel(io.StringIO(), io.StringIO("remove 3, deploy\n\nskip\n"))
    (reply,) = channel.poll()
    assert (reply.channel, reply.sender, reply.text) == ("console", "cli", "remove 3, deploy")
    assert channel.poll() == []
    assert [r.text for r in channel.poll()] == ["skip"]
    assert channel.poll() == []


def test_poll_without_input_returns_nothing() -> None:
    assert ConsoleChannel(io.StringIO()).poll() == []


def test_the_console_takes_no_webhooks() -> None:
    with pytest.raises(WebhookRejected):
        ConsoleChannel().parse_webhook({}, b"{}")
