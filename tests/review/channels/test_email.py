"""The e-mail channel against a real local SMTP server and a small IMAP4rev1 server.

Both servers run on 127.0.0.1 in threads. The SMTP server speaks EHLO/MAIL/RCPT/DATA/QUIT
(and AUTH PLAIN when given credentials); the IMAP server speaks the part of IMAP4rev1 the
channel uses (CAPABILITY, LOGIN, SELECT, UID SEARCH/FETCH/STORE, LOGOUT) over messages
the tests put in its inbox, and matches FROM as IMAP does (a substring of the header).
"""

from __future__ import annotations

import base64
import json
import logging
import re
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import TypeVar

import pytest

from tighten.review.channels.base import ChannelError, WebhookRejected
from tighten.review.channels.email import SUBJECT, EmailChannel, strip_quoted

S = TypeVar("S", bound=socketserver.ThreadingTCPServer)

OWNER = "owner@example.com"
BOT = "tighten@bot.example.org"
PASSWORD = "hunter2-Pa55word!"
USER = "tighten-bot"


# --- SMTP --------------------------------------------------------------------------------


@dataclass
class Delivery:
    sender: str
    recipients: list[str]
    data: bytes


class _SMTPHandler(socketserver.StreamRequestHandler):
    server: _SMTPServer

    def _say(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")
        self.wfile.flush()

    def handle(self) -> None:
        self._say("220 localhost test ESMTP")
        sender, recipients = "", list[str]()
        while line := self.rfile.readline():
            command = line.decode().rstrip("\r\n")
            verb = command.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                if self.server.credentials:
                    self._say("250-localhost")
                    self._say("250 AUTH PLAIN")
                else:
                    self._say("250 localhost")
            elif verb == "AUTH":
                _, mechanism, encoded = command.split(" ", 2)
                given = base64.b64decode(encoded).split(b"\0")
                ok = mechanism.upper() == "PLAIN" and (
                    (given[1].decode(), given[2].decode()) == self.server.credentials
                )
                self._say("235 2.7.0 Accepted" if ok else "535 5.7.8 Bad credentials")
            elif verb == "MAIL":
                sender, recipients = command.split(":", 1)[1].strip(" <>"), []
                self._say("250 OK")
            elif verb == "RCPT":
                recipients.append(command.split(":", 1)[1].strip(" <>"))
                self._say("250 OK")
            elif verb == "DATA":
                self._say("354 End data with <CR><LF>.<CR><LF>")
                lines = []
                while (data := self.rfile.readline()) not in (b".\r\n", b""):
                    lines.append(data[1:] if data.startswith(b"..") else data)
                with self.server.lock:
                    self.server.deliveries.append(Delivery(sender, recipients, b"".join(lines)))
                self._say("250 OK queued")
            elif verb in ("RSET", "NOOP"):
                self._say("250 OK")
            elif verb == "QUIT":
                self._say("221 Bye")
                return
            else:
                self._say("502 Command not implemented")


class _SMTPServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = False

    def __init__(self, credentials: tuple[str, str] | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _SMTPHandler)
        self.credentials = credentials
        self.deliveries: list[Delivery] = []
        self.lock = threading.Lock()

    @property
    def port(self) -> int:
        return int(self.server_address[1])


# --- IMAP --------------------------------------------------------------------------------


@dataclass
class Stored:
    uid: int
    raw: bytes
    flags: set[str] = field(default_factory=set)

    def header_from(self) -> str:
        return str(BytesParser(policy=policy.default).parsebytes(self.raw).get("From", ""))


_TOKEN = re.compile(r'"((?:[^"\\]|\\.)*)"|(\S+)')


def _tokens(text: str) -> list[str]:
    return [
        re.sub(r"\\(.)", r"\1", quoted) if quoted or not atom else atom
        for quoted, atom in _TOKEN.findall(text)
    ]


class _IMAPHandler(socketserver.StreamRequestHandler):
    server: _IMAPServer

    def _say(self, line: str | bytes) -> None:
        self.wfile.write((line.encode() if isinstance(line, str) else line) + b"\r\n")
        self.wfile.flush()

    def handle(self) -> None:
        if self.server.credentials is None:  # no login needed: the session starts in AUTH
            self._say("* PREAUTH [CAPABILITY IMAP4rev1] test IMAP ready")
        else:
            self._say("* OK [CAPABILITY IMAP4rev1] test IMAP ready")
        while line := self.rfile.readline():
            text = line.decode().rstrip("\r\n")
            self.server.commands.append(text)
            tag, _, rest = text.partition(" ")
            command, _, args = rest.partition(" ")
            command = command.upper()
            try:
                if command == "LOGOUT":
                    self._say("* BYE logging out")
                    self._say(f"{tag} OK LOGOUT completed")
                    return
                self._dispatch(tag, command, args)
            except Exception as exc:  # a bug in the test server: tell the test
                self.server.problems.append(f"{text}: {exc!r}")
                self._say(f"{tag} BAD {exc}")

    def _dispatch(self, tag: str, command: str, args: str) -> None:
        box = self.server
        if command == "CAPABILITY":
            self._say("* CAPABILITY IMAP4rev1")
            self._say(f"{tag} OK CAPABILITY completed")
        elif command == "NOOP":
            self._say(f"{tag} OK NOOP completed")
        elif command == "LOGIN":
            user, password = _tokens(args)
            if box.credentials is not None and (user, password) != box.credentials:
                # a careless server that repeats what it was given
                self._say(f'{tag} NO [AUTHENTICATIONFAILED] bad credentials "{password}"')
            else:
                self._say(f"{tag} OK LOGIN completed")
        elif command == "SELECT":
            with box.lock:
                count = len(box.messages)
            self._say(f"* {count} EXISTS")
            self._say("* 0 RECENT")
            self._say("* FLAGS (\\Seen)")
            self._say(f"* OK [UIDVALIDITY {box.uidvalidity}] UIDs valid")
            self._say(f"{tag} OK [READ-WRITE] SELECT completed")
        elif command == "UID":
            sub, _, rest = args.partition(" ")
            getattr(self, f"_uid_{sub.lower()}")(tag, rest)
        else:
            self._say(f"{tag} BAD unknown command {command}")

    def _uid_search(self, tag: str, criteria: str) -> None:
        words = _tokens(criteria)
        with self.server.lock:
            found = list(self.server.messages)
            while words:
                key = words.pop(0).upper()
                if key == "UNSEEN":
                    found = [m for m in found if "\\Seen" not in m.flags]
                elif key == "FROM":
                    needle = words.pop(0).lower()
                    found = [m for m in found if needle in m.header_from().lower()]
                else:
                    raise ValueError(f"unsupported search key {key}")
        self._say("* SEARCH" + "".join(f" {m.uid}" for m in found))
        self._say(f"{tag} OK SEARCH completed")

    def _uid_fetch(self, tag: str, args: str) -> None:
        uid_text, _, items = args.partition(" ")
        item = items.strip("()").upper()
        if item not in ("BODY.PEEK[]", "RFC822", "BODY[]"):
            raise ValueError(f"unsupported fetch item {item}")
        with self.server.lock:
            for seq, message in enumerate(self.server.messages, 1):
                if message.uid == int(uid_text):
                    if item != "BODY.PEEK[]":
                        message.flags.add("\\Seen")
                    name = "RFC822" if item == "RFC822" else "BODY[]"
                    head = f"* {seq} FETCH (UID {message.uid} {name} {{{len(message.raw)}}}"
                    self.wfile.write(head.encode() + b"\r\n" + message.raw + b")\r\n")
        self._say(f"{tag} OK FETCH completed")

    def _uid_store(self, tag: str, args: str) -> None:
        uid_text, action, flags = args.split(" ", 2)
        if action.upper() != "+FLAGS":
            raise ValueError(f"unsupported store {action}")
        with self.server.lock:
            for seq, message in enumerate(self.server.messages, 1):
                if message.uid == int(uid_text):
                    message.flags.update(flags.strip("()").split())
                    shown = " ".join(sorted(message.flags))
                    self._say(f"* {seq} FETCH (UID {message.uid} FLAGS ({shown}))")
        self._say(f"{tag} OK STORE completed")


class _IMAPServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = False

    def __init__(self, credentials: tuple[str, str] | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _IMAPHandler)
        self.credentials = credentials
        self.messages: list[Stored] = []
        self.commands: list[str] = []
        self.problems: list[str] = []
        self.uidvalidity = 7
        self.lock = threading.Lock()
        self._next_uid = 1

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def deliver(self, raw: bytes) -> int:
        with self.lock:
            uid, self._next_uid = self._next_uid, self._next_uid + 1
            self.messages.append(Stored(uid, raw))
            return uid

    def flags(self, uid: int) -> set[str]:
        with self.lock:
            return next(set(m.flags) for m in self.messages if m.uid == uid)


# --- fixtures ----------------------------------------------------------------------------


@contextmanager
def _running(server: S) -> Iterator[S]:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def smtp() -> Iterator[_SMTPServer]:
    with _running(_SMTPServer()) as server:
        yield server


@pytest.fixture
def imap() -> Iterator[_IMAPServer]:
    with _running(_IMAPServer()) as server:
        yield server
        assert server.problems == []


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "channels" / "email.json"


def channel(
    smtp: _SMTPServer,
    imap: _IMAPServer,
    state: Path,
    *,
    username: str = "",
    password: str = "",
    from_addr: str = BOT,
) -> EmailChannel:
    return EmailChannel(
        "127.0.0.1",
        smtp.port,
        "127.0.0.1",
        imap.port,
        username,
        password,
        from_addr,
        OWNER,
        state_path=state,
        starttls=False,
        imap_ssl=False,
        timeout=5,
    )


def mail(sender: str, body: str, *, subject: str = f"Re: {SUBJECT}", **headers: str) -> bytes:
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = sender
    message["To"] = BOT
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime(2025, 3, 4, 9, 30, tzinfo=UTC))
    message["Message-ID"] = make_msgid(domain="example.com")
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(body)
    return message.as_bytes()


DIGEST_QUOTED = """remove 3, deploy

Thanks!

On Tue, 4 Mar 2025 at 09:00, tighten <tighten@bot.example.org>
wrote:
> tighten digest: 3 proposed changes
>
> 1. tighten the retry prompt
"""


# --- send --------------------------------------------------------------------------------


def test_send_delivers_one_message_with_the_digest(
    smtp: _SMTPServer, imap: _IMAPServer, state: Path
) -> None:
    ids = channel(smtp, imap, state).send(["Digest — 3 changes", "", "1. retry prompt ✓"])

    assert len(ids) == 1
    assert len(smtp.deliveries) == 1
    delivery = smtp.deliveries[0]
    assert (delivery.sender, delivery.recipients) == (BOT, [OWNER])
    message = BytesParser(policy=policy.default).parsebytes(delivery.data.replace(b"\r\n", b"\n"))
    assert message["Message-ID"] == ids[0]
    assert ids[0].startswith("<")
    assert ids[0].endswith("@bot.example.org>")
    assert (message["Subject"], message["To"], message["From"]) == (SUBJECT, OWNER, BOT)
    assert message.get_content_type() == "text/plain"
    assert message.get_content().rstrip("\n") == "Digest — 3 changes\n\n1. retry prompt ✓"
    assert json.loads(state.read_text())["sent"] == ids


def test_send_a_whole_html_document_as_the_alternative(
    smtp: _SMTPServer, imap: _IMAPServer, state: Path
) -> None:
    page = "<!DOCTYPE html><html><body><p>Digest</p></body></html>"
    channel(smtp, imap, state).send([page, "Digest as text"])

    message = BytesParser(policy=policy.default).parsebytes(smtp.deliveries[0].data)
    assert message.get_content_type() == "multipart/alternative"
    plain = message.get_body(("plain",))
    rich = message.get_body(("html",))
    assert plain is not None
    assert rich is not None
    assert plain.get_content().strip() == "Digest as text"
    assert "<p>Digest</p>" in rich.get_content()


def test_send_nothing_sends_no_mail(smtp: _SMTPServer, imap: _IMAPServer, state: Path) -> None:
    assert channel(smtp, imap, state).send(["", "  "]) == []
    assert smtp.deliveries == []


# --- poll --------------------------------------------------------------------------------


def test_poll_returns_the_owners_reply_once_without_the_quote(
    smtp: _SMTPServer, imap: _IMAPServer, state: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stranger = imap.deliver(mail("Mallory <mallory@example.net>", "deploy all"))
    owned = imap.deliver(mail("The Owner <Owner@Example.COM>", DIGEST_QUOTED))

    replies = channel(smtp, imap, state).poll()

    assert len(replies) == 1
    reply = replies[0]
    assert (reply.channel, reply.sender) == ("email", OWNER)
    assert reply.text == "remove 3, deploy\n\nThanks!"
    assert reply.received_at == datetime(2025, 3, 4, 9, 30, tzinfo=UTC)
    assert reply.message_id is not None
    assert reply.message_id.endswith("@example.com>")
    assert "\\Seen" in imap.flags(owned)
    assert imap.flags(stranger) == set()  # not ours: left unseen
    assert not any("FETCH " + str(stranger) in c for c in imap.commands)

    assert channel(smtp, imap, state).poll() == []  # a new object sharing the state
    bot = channel(smtp, imap, state)
    assert bot.poll() == []
    later = imap.deliver(mail(OWNER, "skip"))
    assert [r.text for r in bot.poll()] == ["skip"]
    assert "\\Seen" in imap.flags(later)
    assert json.loads(state.read_text())["last_uid"] == later
    assert bot.poll() == []


def test_poll_returns_a_reply_once_even_if_it_is_still_unseen(
    smtp: _SMTPServer, imap: _IMAPServer, state: Path
) -> None:
    owned = imap.deliver(mail(OWNER, "deploy all"))
    assert [r.text for r in channel(smtp, imap, state).poll()] == ["deploy all"]
    with imap.lock:
        imap.messages[0].flags.clear()  # another mail client marks it unread again
    assert imap.flags(owned) == set()
    assert channel(smtp, imap, state).poll() == []


def test_poll_leaves_a_lookalike_sender_alone_and_logs_it(
    smtp: _SMTPServer, imap: _IMAPServer, state: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # IMAP's FROM matches substrings: this one is found by the search, but is not the owner
    lookalike = imap.deliver(mail("owner@example.com.evil.test", "deploy all"))

    with caplog.at_level(logging.WARNING, logger="tighten.review.channels.email"):
        assert channel(smtp, imap, state).poll() == []

    assert imap.flags(lookalike) == set()
    assert "owner@example.com.evil.test" in caplog.text


def test_poll_skips_auto_replies_and_its_own_digest(
    smtp: _SMTPServer, imap: _IMAPServer, state: Path
) -> None:
    imap.deliver(mail(OWNER, "I am away until Monday.", Auto_Submitted="auto-replied"))
    # the owner mails themself: the digest lands in the same inbox
    bot = channel(smtp, imap, state, from_addr=OWNER)
    bot.send(["1. tighten the retry prompt\nreply: deploy all"])
    imap.deliver(smtp.deliveries[0].data)

    assert bot.poll() == []
    imap.deliver(mail(OWNER, "deploy all"))
    assert [r.text for r in bot.poll()] == ["deploy all"]


def test_a_new_mailbox_uidvalidity_starts_again(
    smtp: _SMTPServer, imap: _IMAPServer, state: Path
) -> None:
    imap.deliver(mail(OWNER, "deploy all"))
    assert len(channel(smtp, imap, state).poll()) == 1
    with imap.lock:
        imap.messages.clear()
        imap.uidvalidity, imap._next_uid = 8, 1
    imap.deliver(mail(OWNER, "skip"))
    assert [r.text for r in channel(smtp, imap, state).poll()] == ["skip"]


# --- errors ------------------------------------------------------------------------------


def test_a_wrong_password_never_shows_the_password(
    state: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        _running(_SMTPServer(credentials=(USER, "the-right-one"))) as smtp,
        _running(_IMAPServer(credentials=(USER, "the-right-one"))) as imap,
    ):
        bot = channel(smtp, imap, state, username=USER, password=PASSWORD)
        with caplog.at_level(logging.DEBUG):
            with pytest.raises(ChannelError) as sending:
                bot.send(["digest"])
            with pytest.raises(ChannelError) as polling:
                bot.poll()
        for error in (sending.value, polling.value):
            assert PASSWORD not in str(error)
            assert "\n" not in str(error)
            assert "refused the login" in str(error)
        assert "<password>" in str(polling.value)  # the server repeated it: masked
        assert PASSWORD not in caplog.text
        assert PASSWORD not in repr(bot)
        assert smtp.deliveries == []


def test_the_right_password_logs_in(state: Path) -> None:
    with (
        _running(_SMTPServer(credentials=(USER, PASSWORD))) as smtp,
        _running(_IMAPServer(credentials=(USER, PASSWORD))) as imap,
    ):
        bot = channel(smtp, imap, state, username=USER, password=PASSWORD)
        assert len(bot.send(["digest"])) == 1
        imap.deliver(mail(OWNER, "deploy all"))
        assert [r.text for r in bot.poll()] == ["deploy all"]
        assert any(" LOGIN " in c for c in imap.commands)


def test_unreachable_servers_are_one_line_errors(tmp_path: Path) -> None:
    closed = _SMTPServer()
    port = closed.port
    closed.server_close()
    bot = EmailChannel(
        "127.0.0.1", port, "127.0.0.1", port, "", "", BOT, OWNER,
        state_path=tmp_path / "email.json", starttls=False, imap_ssl=False, timeout=2,
    )  # fmt: skip
    with pytest.raises(ChannelError, match=r"^email: cannot send through 127\.0\.0\.1:") as sent:
        bot.send(["digest"])
    with pytest.raises(ChannelError, match=r"^email: cannot reach 127\.0\.0\.1:") as polled:
        bot.poll()
    assert "\n" not in str(sent.value) + str(polled.value)


def test_a_broken_state_file_is_a_channel_error(
    smtp: _SMTPServer, imap: _IMAPServer, state: Path
) -> None:
    state.parent.mkdir(parents=True)
    state.write_text("{not json")
    with pytest.raises(ChannelError, match="cannot read the polling state"):
        channel(smtp, imap, state).poll()


def test_addresses_are_checked(state: Path) -> None:
    with pytest.raises(ChannelError, match="to address"):
        EmailChannel("h", 25, "h", 993, "", "", BOT, "owner", state_path=state)


def test_there_is_no_webhook(smtp: _SMTPServer, imap: _IMAPServer, state: Path) -> None:
    with pytest.raises(WebhookRejected):
        channel(smtp, imap, state).parse_webhook({}, b"{}")


# --- quoting -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("deploy all\r\n\r\n> 1. change\r\n> 2. change\r\n", "deploy all"),
        ("skip\n\nOn Mon, 3 Mar 2025, tighten wrote:\nthe digest, unquoted\n", "skip"),
        ("remove 2\n-----Original Message-----\nFrom: tighten\n", "remove 2"),
        ("remove 1\n\n________________________________\nFrom: tighten\n", "remove 1"),
        ("> 1. change\nremove 1, deploy\n> 2. change\n", "remove 1, deploy"),
        ("On second thought: skip", "On second thought: skip"),
    ],
)
def test_strip_quoted(text: str, expected: str) -> None:
    assert strip_quoted(text) == expected
