"""The Telegram channel over real HTTP to a local server that speaks the Bot API."""

from __future__ import annotations

import json
import logging
import socket
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.review.channels.fakes import BOT_TOKEN, OWNER, OWNER_CHAT, FakeTelegram
from tighten.http import RetryPolicy
from tighten.review.channels.base import ChannelError, WebhookRejected
from tighten.review.channels.telegram import TelegramChannel

FAST = RetryPolicy(max_retries=2, backoff_s=0.001, max_backoff_s=0.002, max_wait_s=10)
SECRET = "s3cret-Token_for-webhooks"


@pytest.fixture
def telegram() -> Iterator[FakeTelegram]:
    with FakeTelegram() as fake:
        yield fake
        assert fake.problems == []


def channel(
    fake: FakeTelegram,
    state: Path,
    sleeps: list[float] | None = None,
    *,
    token: str = BOT_TOKEN,
    base_url: str | None = None,
    webhook_secret: str | None = SECRET,
) -> TelegramChannel:
    return TelegramChannel(
        token,
        str(OWNER_CHAT),
        base_url=base_url or fake.url,
        state_path=state,
        webhook_secret=webhook_secret,
        retry=FAST,
        sleep=(sleeps if sleeps is not None else []).append,
        timeout=2,
    )


@pytest.fixture
def bot(telegram: FakeTelegram, tmp_path: Path, sleeps: list[float]) -> TelegramChannel:
    return channel(telegram, tmp_path / "state" / "telegram.json", sleeps)


def error_text(exc: BaseException) -> str:
    """Everything an exception shows: its message, repr and formatted traceback."""
    return f"{exc}\n{exc!r}\n" + "".join(traceback.format_exception(exc))


# --- send --------------------------------------------------------------------------------


def test_send_delivers_each_part_as_a_plain_text_message_in_order(
    telegram: FakeTelegram, bot: TelegramChannel
) -> None:
    ids = bot.send(["Digest (1/3)", "Digest (2/3)", "Digest (3/3)"])
    assert ids == ["1", "2", "3"]
    assert [m["text"] for m in telegram.sent] == ["Digest (1/3)", "Digest (2/3)", "Digest (3/3)"]
    assert {str(m["chat_id"]) for m in telegram.sent} == {str(OWNER_CHAT)}
    assert all("parse_mode" not in m for m in telegram.sent)


def test_empty_parts_are_not_sent(telegram: FakeTelegram, bot: TelegramChannel) -> None:
    assert bot.send(["", "  ", "hello"]) == ["1"]
    assert [m["text"] for m in telegram.sent] == ["hello"]


def test_a_part_longer_than_4096_characters_is_refused_before_anything_is_sent(
    telegram: FakeTelegram, bot: TelegramChannel
) -> None:
    with pytest.raises(ChannelError, match="part 2 is 5000 characters"):
        bot.send(["first", "x" * 5000])
    assert telegram.sent == []
    assert telegram.calls == []


def test_length_counts_utf16_units_as_telegram_does(
    telegram: FakeTelegram, bot: TelegramChannel
) -> None:
    with pytest.raises(ChannelError, match="4098 characters"):
        bot.send(["🙂" * 2049])  # 2049 code points, 4098 UTF-16 units
    bot.send(["é" * 4096])
    assert len(telegram.sent) == 1


def test_rate_limit_waits_as_long_as_telegram_asks_then_sends_once(
    telegram: FakeTelegram, bot: TelegramChannel, sleeps: list[float]
) -> None:
    telegram.rate_limit_once(retry_after=3)
    assert bot.send(["hello"]) == ["1"]
    assert sleeps == [3.0]
    assert [m["text"] for m in telegram.sent] == ["hello"]


def test_rate_limit_longer_than_allowed_fails_at_once(
    telegram: FakeTelegram, bot: TelegramChannel, sleeps: list[float]
) -> None:
    telegram.rate_limit_once(retry_after=600)
    with pytest.raises(ChannelError, match="asks to wait 600 s"):
        bot.send(["hello"])
    assert sleeps == []


def test_server_errors_are_retried(
    telegram: FakeTelegram, bot: TelegramChannel, sleeps: list[float]
) -> None:
    telegram.fail(502, "Bad Gateway", times=2)
    assert bot.send(["hello"]) == ["1"]
    assert len(sleeps) == 2


def test_server_errors_that_persist_end_in_a_channel_error(
    telegram: FakeTelegram, bot: TelegramChannel
) -> None:
    telegram.fail(500, "Internal Server Error", times=3)
    with pytest.raises(ChannelError, match=r"HTTP 500 .*\(3 tries\)"):
        bot.send(["hello"])


# --- the token stays secret --------------------------------------------------------------


def _closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_a_wrong_token_says_check_the_bot_token_and_never_shows_it(
    telegram: FakeTelegram, tmp_path: Path
) -> None:
    wrong = "999999:WRONG-token-value_abcdefghijklmnop"
    bot = channel(telegram, tmp_path / "t.json", token=wrong)
    with pytest.raises(ChannelError, match="check the bot token") as caught:
        bot.send(["hello"])
    assert wrong not in error_text(caught.value)
    with pytest.raises(ChannelError, match="check the bot token") as caught:
        bot.poll()
    assert wrong not in error_text(caught.value)


@pytest.mark.parametrize("failure", ["unreachable", "server error", "chat not found", "bad json"])
def test_no_error_shows_the_token(
    telegram: FakeTelegram, bot: TelegramChannel, tmp_path: Path, failure: str
) -> None:
    if failure == "unreachable":
        bot = channel(telegram, tmp_path / "t.json", base_url=_closed_port())
    elif failure == "server error":
        telegram.fail(503, f"Service Unavailable for /bot{BOT_TOKEN}/", times=3)
    elif failure == "chat not found":
        telegram.fail(400, "Bad Request: chat not found")
    else:
        (tmp_path / "state").mkdir()
        (tmp_path / "state" / "telegram.json").write_text("{not json")
    with pytest.raises(ChannelError) as caught:
        bot.send(["hello"]) if failure != "bad json" else bot.poll()
    assert BOT_TOKEN not in error_text(caught.value)
    assert BOT_TOKEN not in repr(bot)


@pytest.mark.parametrize("token", ["", "123456:ABC def", f"{BOT_TOKEN}\n", "123/456:x"])
def test_a_token_that_cannot_be_one_is_refused_without_showing_it(
    tmp_path: Path, token: str
) -> None:
    with pytest.raises(ChannelError, match="does not look like") as caught:
        TelegramChannel(token, "1", state_path=tmp_path / "t.json")
    assert not token.strip() or token.strip() not in error_text(caught.value)


def test_httpx_request_log_masks_the_token(
    telegram: FakeTelegram, bot: TelegramChannel, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        bot.send(["hello"])
        bot.poll()
    assert "HTTP Request" in caplog.text
    assert BOT_TOKEN not in caplog.text
    assert "/bot<token>/sendMessage" in caplog.text


def test_chat_not_found_hints_at_the_chat_id(telegram: FakeTelegram, tmp_path: Path) -> None:
    bot = TelegramChannel(
        BOT_TOKEN, "-1001", base_url=telegram.url, state_path=tmp_path / "t.json", retry=FAST
    )
    with pytest.raises(ChannelError, match=r"chat not found\. Check the chat_id"):
        bot.send(["hello"])


# --- poll --------------------------------------------------------------------------------


def test_poll_returns_the_owners_reply_once_across_channel_objects(
    telegram: FakeTelegram, tmp_path: Path
) -> None:
    state = tmp_path / "state" / "telegram.json"
    first, second = channel(telegram, state), channel(telegram, state)
    update = telegram.message("remove 3, deploy")

    (reply,) = first.poll()
    assert (reply.channel, reply.sender, reply.text) == ("telegram", str(OWNER), "remove 3, deploy")
    assert reply.chat == str(OWNER_CHAT)
    assert reply.message_id == str(update["message"]["message_id"])
    assert json.loads(state.read_text()) == {"offset": update["update_id"] + 1}
    assert second.poll() == []
    assert first.poll() == []

    telegram.message("deploy all")
    assert [r.text for r in second.poll()] == ["deploy all"]
    assert first.poll() == []
    _, params = telegram.calls[-1]
    assert params["timeout"] == "0"
    assert json.loads(params["allowed_updates"]) == ["message"]


def test_the_first_poll_sends_no_offset(telegram: FakeTelegram, bot: TelegramChannel) -> None:
    assert bot.poll() == []
    assert "offset" not in telegram.calls[0][1]


def test_a_message_from_another_chat_is_dropped_and_logged(
    telegram: FakeTelegram, bot: TelegramChannel, caplog: pytest.LogCaptureFixture
) -> None:
    telegram.message("deploy all", chat_id=31337, sender=31337)
    telegram.message("skip")
    with caplog.at_level(logging.WARNING, logger="tighten.review.channels.telegram"):
        replies = bot.poll()
    assert [r.text for r in replies] == ["skip"]
    assert "dropped update" in caplog.text
    assert "31337" in caplog.text
    assert bot.poll() == []  # the dropped one is not offered again either


def test_poll_while_a_webhook_is_set_says_so(telegram: FakeTelegram, bot: TelegramChannel) -> None:
    telegram.fail(409, "Conflict: can't use getUpdates method while webhook is active")
    with pytest.raises(ChannelError, match="deleteWebhook"):
        bot.poll()


# --- webhook -----------------------------------------------------------------------------


def _update_body(telegram: FakeTelegram, text: str, **kwargs: int) -> bytes:
    return json.dumps(telegram.message(text, **kwargs)).encode()


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-Telegram-Bot-Api-Secret-Token": "wrong"}, {"X-Telegram-Bot-Api-Secret-Token": ""}],
    ids=["missing", "wrong", "empty"],
)
def test_a_webhook_without_the_right_secret_token_is_rejected(
    telegram: FakeTelegram, bot: TelegramChannel, headers: dict[str, str]
) -> None:
    with pytest.raises(WebhookRejected):
        bot.parse_webhook(headers, _update_body(telegram, "deploy all"))


def test_a_channel_without_a_webhook_secret_rejects_every_call(
    telegram: FakeTelegram, tmp_path: Path
) -> None:
    bot = channel(telegram, tmp_path / "t.json", webhook_secret=None)
    headers = {"X-Telegram-Bot-Api-Secret-Token": ""}
    with pytest.raises(WebhookRejected, match="no webhook secret is configured"):
        bot.parse_webhook(headers, _update_body(telegram, "deploy all"))


def test_a_webhook_with_the_secret_token_gives_the_reply_once(
    telegram: FakeTelegram, bot: TelegramChannel
) -> None:
    headers = {"x-telegram-bot-api-secret-token": SECRET}
    body = _update_body(telegram, "deploy all")
    (reply,) = bot.parse_webhook(headers, body)
    assert (reply.sender, reply.text) == (str(OWNER), "deploy all")
    assert bot.parse_webhook(headers, body) == []  # Telegram delivering again
    assert bot.parse_webhook(headers, _update_body(telegram, "hi", chat_id=5, sender=5)) == []
    with pytest.raises(WebhookRejected, match="not JSON"):
        bot.parse_webhook(headers, b"<html>")
