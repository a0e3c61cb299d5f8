"""E-mail: the digest as one message to the owner, replies read from an IMAP inbox.

``send`` joins the parts with blank lines into one plain-text message (subject
``tighten: digest``) with a Message-ID it makes, and sends it over SMTP: STARTTLS when
``starttls`` (implicit TLS on port 465), login when a username and password are given.
When the first part is a whole HTML document it is sent as the HTML alternative of the
other parts. The Message-IDs sent are kept in a small JSON state file.

``poll`` logs in over IMAP (TLS when ``imap_ssl``), selects INBOX and asks for the unseen
messages from the owner (``UID SEARCH UNSEEN FROM``). Each one whose From is exactly the
owner's address becomes a :class:`Reply` with the text/plain body up to the quoted part
(lines starting with ``>``, and everything from "On … wrote:" down), and is marked
``\\Seen``. The highest UID handled (with the mailbox's UIDVALIDITY) is kept in the state
file, so a reply is returned once, whichever process polls. Mail from anyone else is never
fetched nor marked: it is not ours. A message that only looks like the owner's (From a
longer address that contains it), an auto-reply, or a copy of a digest this channel sent
(when the owner mails themself) is left alone and logged.

The From header is not authenticated by e-mail itself: rely on the provider's DMARC
checks, and on the ``approvers`` setting, as for every channel.

The password never appears in an error message, a ``repr`` or a log line.
"""

from __future__ import annotations

import contextlib
import html
import imaplib
import json
import logging
import os
import re
import smtplib
import ssl
import tempfile
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import formatdate, getaddresses, make_msgid, parsedate_to_datetime
from pathlib import Path
from typing import Any, ClassVar

from tighten.review.channels.base import ChannelError, Reply, WebhookRejected

__all__ = ["SUBJECT", "EmailChannel", "strip_quoted"]

SUBJECT = "tighten: digest"
_SENT_LIMIT = 200
_FETCH_LIMIT = 100  # messages handled per poll; the rest wait for the next one
_HTML_DOC = re.compile(r"\s*(<!doctype\s+html|<html[\s>])", re.IGNORECASE)
_ON_WROTE_START = re.compile(r"^\s*On\s.+", re.IGNORECASE)
_WROTE_END = re.compile(r"wrote:\s*$", re.IGNORECASE)
_SEPARATORS = re.compile(r"^\s*(-{2,}\s*Original Message\s*-{2,}|_{10,})\s*$", re.IGNORECASE)
_TAG = re.compile(r"<[^>]*>")
_SEARCH_UID = re.compile(rb"UID\s+(\d+)", re.IGNORECASE)

logger = logging.getLogger(__name__)


def strip_quoted(text: str) -> str:
    """The text of a reply without the quoted message: lines starting with ``>`` are
    dropped, and everything from an "On … wrote:" line (possibly wrapped over two
    lines), an "-----Original Message-----" line or an Outlook rule down is cut."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    kept: list[str] = []
    for index, line in enumerate(lines):
        if _SEPARATORS.match(line):
            break
        if _ON_WROTE_START.match(line):
            following = lines[index + 1] if index + 1 < len(lines) else ""
            if _WROTE_END.search(line) or (
                _WROTE_END.search(following) and not following.lstrip().startswith(">")
            ):
                break
        if line.lstrip().startswith(">"):
            continue
        kept.append(line.rstrip())
    return "\n".join(kept).strip()


class EmailChannel:
    """The owner's mailbox (see the module docstring)."""

    name: ClassVar[str] = "email"

    def __init__(
        self,
        smtp_host: str,
        smtp_port: int,
        imap_host: str,
        imap_port: int,
        username: str,
        password: str,
        from_addr: str,
        to_addr: str,
        *,
        state_path: Path,
        starttls: bool = True,
        imap_ssl: bool = True,
        timeout: float = 30,
    ) -> None:
        for label, address in (("from", from_addr), ("to", to_addr)):
            if "@" not in address or any(c.isspace() for c in address.strip()):
                raise ChannelError(
                    f"email: the {label} address {address!r} is not an e-mail address."
                )
        self.smtp_host = smtp_host
        self.smtp_port = int(smtp_port)
        self.imap_host = imap_host
        self.imap_port = int(imap_port)
        self.username = username
        self._password = password
        self.from_addr = from_addr.strip()
        self.to_addr = to_addr.strip()
        self.state_path = Path(state_path)
        self.starttls = starttls
        self.imap_ssl = imap_ssl
        self.timeout = timeout

    def __repr__(self) -> str:
        return (
            f"EmailChannel(smtp={self.smtp_host}:{self.smtp_port}, "
            f"imap={self.imap_host}:{self.imap_port}, to={self.to_addr!r})"
        )

    # --- the Channel protocol ------------------------------------------------------------

    def send(self, parts: Sequence[str]) -> list[str]:
        """Send the parts as one message to the owner; its Message-ID."""
        texts = [part for part in parts if part.strip()]
        if not texts:
            return []
        message = self._compose(texts)
        message_id = str(message["Message-ID"])
        self._smtp_send(message)
        state = self._load_state()
        sent = [m for m in state.get("sent", []) if isinstance(m, str)] + [message_id]
        state["sent"] = sent[-_SENT_LIMIT:]
        self._save_state(state)
        return [message_id]

    def poll(self) -> list[Reply]:
        """The owner's replies that reached the inbox since the last poll."""
        state = self._load_state()
        try:
            with self._imap() as imap:
                return self._poll(imap, state)
        except TimeoutError:
            raise ChannelError(
                f"email: no answer from {self.imap_host}:{self.imap_port} within "
                f"{self.timeout:g} s."
            ) from None
        except (imaplib.IMAP4.error, OSError) as exc:
            raise ChannelError(
                f"email: reading the inbox at {self.imap_host}:{self.imap_port} failed "
                f"({type(exc).__name__}: {self._said(exc)})."
            ) from None

    def _poll(self, imap: imaplib.IMAP4, state: dict[str, Any]) -> list[Reply]:
        replies: list[Reply] = []
        validity = self._select(imap)
        last = state.get("last_uid") if state.get("uidvalidity") == validity else 0
        last = last if isinstance(last, int) else 0
        sent = {m for m in state.get("sent", []) if isinstance(m, str)}
        _, data = self._ok(
            imap, "UID SEARCH", imap.uid("SEARCH", "UNSEEN", "FROM", _quote(self.to_addr))
        )
        uids = sorted({int(u) for line in data if isinstance(line, bytes) for u in line.split()})
        uids = [uid for uid in uids if uid > last][:_FETCH_LIMIT]
        handled: list[int] = []
        for uid in uids:
            message = self._fetch(imap, uid)
            reply = self._reply(uid, message, sent) if message is not None else None
            if reply is not None:
                replies.append(reply)
                handled.append(uid)
        if uids:
            state.update(uidvalidity=validity, last_uid=max(uids))
            self._save_state(state)
        for uid in handled:
            self._ok(imap, "UID STORE", imap.uid("STORE", str(uid), "+FLAGS", "(\\Seen)"))
        return replies

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[Reply]:
        raise WebhookRejected(
            "email: the e-mail channel has no webhook; replies are read by polling the inbox."
        )

    # --- messages ------------------------------------------------------------------------

    def _compose(self, texts: list[str]) -> EmailMessage:
        message = EmailMessage(policy=policy.SMTP)
        message["From"] = self.from_addr
        message["To"] = self.to_addr
        message["Subject"] = SUBJECT
        message["Date"] = formatdate(localtime=False, usegmt=True)
        domain = self.from_addr.rpartition("@")[2].strip(">") or "tighten.invalid"
        message["Message-ID"] = make_msgid("tighten", domain=domain)
        message["Auto-Submitted"] = "auto-generated"
        if _HTML_DOC.match(texts[0]):
            plain = "\n\n".join(texts[1:]) or _html_to_text(texts[0])
            message.set_content(plain)
            message.add_alternative(texts[0], subtype="html")
        else:
            message.set_content("\n\n".join(texts))
        return message

    def _reply(self, uid: int, message: Message, sent: set[str]) -> Reply | None:
        """The reply in the owner's message ``uid``, or ``None`` (logged) if it is not one."""
        senders = [a.lower() for _, a in getaddresses(message.get_all("From", [])) if a]
        message_id = str(message.get("Message-ID", "")).strip() or None
        if senders != [self.to_addr.lower()]:
            logger.warning(
                "email: left message UID %s from %s alone (the channel reads mail from %s)",
                uid, ", ".join(senders) or "nobody", self.to_addr,
            )  # fmt: skip
            return None
        if message_id in sent:
            return None  # our own digest, when the owner mails themself
        if str(message.get("Auto-Submitted", "no")).strip().lower() != "no":
            logger.warning("email: left auto-submitted message UID %s alone", uid)
            return None
        text = strip_quoted(_body_text(message))
        if not text:
            logger.warning("email: message UID %s from the owner has no text; skipped", uid)
            return None
        return Reply(
            channel=self.name,
            sender=senders[0],
            text=text,
            received_at=_date(message.get("Date")),
            message_id=message_id,
            chat=self.to_addr.lower(),
        )

    # --- SMTP ----------------------------------------------------------------------------

    def _smtp_send(self, message: EmailMessage) -> None:
        where = f"{self.smtp_host}:{self.smtp_port}"
        try:
            smtp: smtplib.SMTP
            if self.smtp_port == 465:
                smtp = smtplib.SMTP_SSL(
                    self.smtp_host, self.smtp_port, timeout=self.timeout,
                    context=ssl.create_default_context(),
                )  # fmt: skip
            else:
                smtp = smtplib.SMTP(self.smtp_host, self.smtp_port, timeout=self.timeout)
            with smtp:
                smtp.ehlo()
                if self.starttls and self.smtp_port != 465:
                    smtp.starttls(context=ssl.create_default_context())
                    smtp.ehlo()
                if self.username and self._password:
                    smtp.login(self.username, self._password)
                refused = smtp.send_message(message, self.from_addr, [self.to_addr])
            if refused:
                raise ChannelError(f"email: {where} refused the recipient {self.to_addr}.")
        except smtplib.SMTPNotSupportedError:
            raise ChannelError(
                f"email: {where} does not offer STARTTLS; use a server that does, or port 465."
            ) from None
        except smtplib.SMTPAuthenticationError as exc:
            raise ChannelError(
                f"email: {where} refused the login for {self.username!r} "
                f"({exc.smtp_code} {self._said(exc.smtp_error)}); check "
                "TIGHTEN_EMAIL_USERNAME and TIGHTEN_EMAIL_PASSWORD."
            ) from None
        except smtplib.SMTPResponseException as exc:
            raise ChannelError(
                f"email: {where} refused the message ({exc.smtp_code} "
                f"{self._said(exc.smtp_error)})."
            ) from None
        except smtplib.SMTPRecipientsRefused:
            raise ChannelError(f"email: {where} refused the recipient {self.to_addr}.") from None
        except TimeoutError:
            raise ChannelError(
                f"email: no answer from {where} within {self.timeout:g} s."
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise ChannelError(
                f"email: cannot send through {where} ({type(exc).__name__}: {self._said(exc)})."
            ) from None

    # --- IMAP ----------------------------------------------------------------------------

    def _imap(self) -> imaplib.IMAP4:
        where = f"{self.imap_host}:{self.imap_port}"
        imap: imaplib.IMAP4
        try:
            if self.imap_ssl:
                imap = imaplib.IMAP4_SSL(
                    self.imap_host, self.imap_port, timeout=self.timeout,
                    ssl_context=ssl.create_default_context(),
                )  # fmt: skip
            else:
                imap = imaplib.IMAP4(self.imap_host, self.imap_port, timeout=self.timeout)
        except TimeoutError:
            raise ChannelError(
                f"email: no answer from {where} within {self.timeout:g} s."
            ) from None
        except (imaplib.IMAP4.error, OSError) as exc:
            raise ChannelError(
                f"email: cannot reach {where} ({type(exc).__name__}: {self._said(exc)})."
            ) from None
        if self.username and self._password:
            try:
                imap.login(self.username, self._password)
            except (imaplib.IMAP4.error, OSError) as exc:
                _shutdown(imap)
                raise ChannelError(
                    f"email: {where} refused the login for {self.username!r} "
                    f"({self._said(exc)}); check TIGHTEN_EMAIL_USERNAME and "
                    "TIGHTEN_EMAIL_PASSWORD."
                ) from None
        return imap

    def _select(self, imap: imaplib.IMAP4) -> int | None:
        self._ok(imap, "SELECT INBOX", imap.select("INBOX"))
        _, data = imap.response("UIDVALIDITY")
        try:
            return int(data[0]) if data and data[0] is not None else None
        except (TypeError, ValueError):
            return None

    def _fetch(self, imap: imaplib.IMAP4, uid: int) -> Message | None:
        """Message ``uid`` without setting ``\\Seen`` (``BODY.PEEK``)."""
        _, data = self._ok(imap, "UID FETCH", imap.uid("FETCH", str(uid), "(BODY.PEEK[])"))
        for item in data:
            if isinstance(item, tuple) and len(item) == 2:
                found = _SEARCH_UID.search(item[0])
                if found and int(found.group(1)) != uid:
                    continue
                return BytesParser(policy=policy.default).parsebytes(item[1])
        logger.warning("email: message UID %s has gone from the inbox; skipped", uid)
        return None

    def _ok(self, imap: imaplib.IMAP4, what: str, answer: tuple[str, Any]) -> tuple[str, Any]:
        typ, data = answer
        if typ != "OK":
            said = b" ".join(d for d in data if isinstance(d, bytes)).decode("utf-8", "replace")
            raise ChannelError(f"email: {self.imap_host}: {what} failed ({self._said(said)}).")
        return typ, list(data or [])

    # --- the state file ------------------------------------------------------------------

    def _load_state(self) -> dict[str, Any]:
        try:
            state = json.loads(self.state_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise ChannelError(
                f"email: cannot read the polling state {self.state_path} ({exc}); delete it "
                "to read every unseen reply again."
            ) from None
        return state if isinstance(state, dict) else {}

    def _save_state(self, state: Mapping[str, Any]) -> None:
        """Write the state file atomically: a reader sees the old or the new state."""
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.state_path.parent, prefix=".email-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(dict(state), out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.state_path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _said(self, what: object) -> str:
        """A server's words on one short line, with the password masked."""
        if isinstance(what, bytes):
            what = what.decode("utf-8", "replace")
        text = " ".join(str(what).split())[:160]
        if self._password:
            text = text.replace(self._password, "<password>")
        return text.rstrip(".")


def _shutdown(imap: imaplib.IMAP4) -> None:
    with contextlib.suppress(OSError):
        imap.shutdown()


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _body_text(message: Message) -> str:
    """The first text/plain part that is not an attachment; else the HTML part as text."""
    html_text = None
    for part in message.walk():
        if part.is_multipart() or part.get_content_disposition() == "attachment":
            continue
        kind = part.get_content_type()
        if kind not in ("text/plain", "text/html"):
            continue
        try:
            payload = part.get_payload(decode=True)
            charset = part.get_content_charset() or "utf-8"
            text = payload.decode(charset, "replace") if isinstance(payload, bytes) else ""
        except LookupError:
            text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
        if kind == "text/plain":
            return text
        html_text = html_text if html_text is not None else _html_to_text(text)
    return html_text or ""


def _html_to_text(document: str) -> str:
    document = re.sub(r"(?is)<(script|style|head)\b.*?</\1>", "", document)
    document = re.sub(r"(?i)<(br|/p|/div|/li|/h\d)\b[^>]*>", "\n", document)
    return html.unescape(_TAG.sub("", document))


def _date(value: object) -> datetime:
    try:
        when = parsedate_to_datetime(str(value)) if value else None
    except (TypeError, ValueError, IndexError):
        when = None
    if when is None:
        return datetime.now(UTC)
    return when if when.tzinfo else when.replace(tzinfo=UTC)
