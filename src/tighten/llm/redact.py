"""Redaction of secrets and personal data, before any text leaves the machine for an LLM.

Trace text is untrusted and may carry credentials and personal data; everything tighten
sends to a model goes through :func:`redact` first. It errs on the side of redacting: an
order number written like a phone number becomes ``[PHONE]``.
"""

from __future__ import annotations

import re

__all__ = ["find_secrets", "redact"]

_SECRET_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (
        re.compile(
            r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----.*?"
            r"(?:-----END [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----|\Z)",
            re.DOTALL,
        ),
        "[PRIVATE_KEY]",
    ),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{20,}"), "[API_KEY]"),
    (re.compile(r"\b[rs]k_(?:live|test)_[A-Za-z0-9]{16,}"), "[API_KEY]"),
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), "[API_KEY]"),
    (re.compile(r"\bAIza[0-9A-Za-z_-]{35}"), "[API_KEY]"),
    (re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})"), "[API_KEY]"),
    (re.compile(r"\bxox[abposre]-[A-Za-z0-9-]{10,}"), "[API_KEY]"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), "[TOKEN]"),
    (re.compile(r"(?i)\b(Bearer|Basic|Token)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 [TOKEN]"),
    (
        re.compile(
            r"(?i)\b([\w-]{0,30}(?:password|passwd|secret|api[_-]?key|access[_-]?key|token)[\w-]{0,30}"
            r"[\"']?\s*[:=]\s*[\"']?)(?!\[)[^\s\"',;}]{6,}"
        ),
        r"\1[SECRET]",
    ),
    (
        re.compile(
            r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*\.[A-Za-z]{2,}"
        ),
        "[EMAIL]",
    ),
]
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,5}(?:[ .-]\d{2,5}){1,4}(?![\w-])"
    r"|(?<![\w+])\+\d{8,15}\b"
)


def find_secrets(text: str) -> list[str]:
    """The kinds of credentials in ``text`` (``"private key"``, ``"API key"``,
    ``"token"``, ``"secret value"``), each once, in the order of the patterns — for
    checks that must refuse, not redact (a deploy guardrail). Personal data is not a
    secret here."""
    kinds = {
        "[PRIVATE_KEY]": "private key",
        "[API_KEY]": "API key",
        "[TOKEN]": "token",
        r"\1 [TOKEN]": "token",
        r"\1[SECRET]": "secret value",
    }
    found: list[str] = []
    for pattern, placeholder in _SECRET_PATTERNS:
        kind = kinds.get(placeholder)
        if kind and kind not in found and pattern.search(text):
            found.append(kind)
    return found


def redact(text: str) -> str:
    """``text`` with secrets and personal data replaced by placeholders: ``[PRIVATE_KEY]``,
    ``[API_KEY]`` (OpenAI, Anthropic, Stripe, AWS, Google, GitHub, Slack), ``[TOKEN]``
    (JWTs, Bearer/Basic credentials), ``[SECRET]`` (values of ``password=``/``api_key:``
    and the like), ``[EMAIL]``, ``[CARD]`` (13 to 19 digits passing the Luhn check) and
    ``[PHONE]`` (9 to 15 digits written as a phone number)."""
    for pattern, placeholder in _SECRET_PATTERNS:
        text = pattern.sub(placeholder, text)
    text = _CARD.sub(lambda m: "[CARD]" if _luhn(m.group()) else m.group(), text)
    return _PHONE.sub(_phone, text)


def _luhn(number: str) -> bool:
    digits = [int(c) for c in number if c.isdigit()]
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for position, digit in enumerate(reversed(digits)):
        if position % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def _phone(match: re.Match[str]) -> str:
    text = match.group()
    digits = sum(c.isdigit() for c in text)
    looks_like_phone = text.startswith("+") or "(" in text or len(re.split(r"[ .-]", text)) >= 3
    return "[PHONE]" if 9 <= digits <= 15 and looks_like_phone else text
