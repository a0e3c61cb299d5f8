"""The digest over a real chat protocol: sent to the owner's chat, replies polled back and
carried out, answers sent, and a reply is handled once."""

from __future__ import annotations

from pathlib import Path

from tests.review.channels.fakes import BOT_TOKEN, OWNER, OWNER_CHAT, FakeTelegram
from tests.review.test_decisions import BASE, item
from tighten.config import Settings
from tighten.proposals.add import add_cycle
from tighten.registry.importer import import_artifacts
from tighten.review.channels.telegram import TelegramChannel
from tighten.review.send import poll_replies, send_digest
from tighten.store import Store


def test_digest_and_replies_over_telegram(store: Store, settings: Settings, tmp_path: Path) -> None:
    folder = tmp_path / "artifacts"
    folder.mkdir()
    for n in (1, 2):
        (folder / f"playbook{n}.md").write_text(BASE)
    import_artifacts(store, "bot", folder)
    add_cycle(store, "bot", [item(1, "auto"), item(2, "auto")])
    owner_only = settings.model_copy(update={"approvers": [str(OWNER)]})
    with FakeTelegram() as telegram:
        channel = TelegramChannel(
            BOT_TOKEN, str(OWNER_CHAT), base_url=telegram.url, state_path=tmp_path / "tg.json"
        )
        sent = send_digest(store, channel)
        assert sent["parts"] == len(telegram.sent) >= 1
        assert "[1]" in telegram.sent[0]["text"]
        telegram.message("remove 2, deploy")
        (handled,) = poll_replies(store, channel, settings=owner_only)
        assert handled.outcome is not None
        assert handled.outcome.deployed == [1]
        assert "Deployed: 1" in telegram.sent[-1]["text"]
        assert poll_replies(store, channel, settings=owner_only) == []
