"""PII redaction for whatever leaves the system: e-mails, card numbers, IBANs and phone numbers.

Redaction errs on the safe side: a run of digits that looks like a phone number is masked even when
it is an order number, and 13-19 digits that fail the card checksum (a mistyped card?) become
``[NUMBER]``. IBANs are masked when their checksum holds (else the digit rules still apply).

Example::

    >>> redact_text("Call me on +371 2612 3456 or mail anna@example.com")
    'Call me on [PHONE] or mail [EMAIL]'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import regex

EMAIL_TOKEN = "[EMAIL]"
CARD_TOKEN = "[CARD]"
NUMBER_TOKEN = "[NUMBER]"
IBAN_TOKEN = "[IBAN]"
PHONE_TOKEN = "[PHONE]"
REDACTED_TOKEN = "[REDACTED]"

_EMAIL = regex.compile(r"[\p{L}\p{N}._%+-]+@[\p{L}\p{N}-]+(?:\.[\p{L}\p{N}-]+)+")
# 13-19 digits, optionally grouped by single spaces or dashes.
_CARD = regex.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_IBAN = regex.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")
# An optional international prefix, then digit groups joined by single separators or brackets.
# Latin and Cyrillic letters (not CJK ones, which are written right next to numbers) bound a number.
_PHONE = regex.compile(
    r"(?<![\p{Latin}\p{Cyrillic}\d_/#.,-])(?:\+|00)?\(?\d{1,5}\)?(?:[ .-]?\(?\d{1,5}\)?){1,6}"
    r"(?![\p{Latin}\p{Cyrillic}\d_])"
)
_DATE = regex.compile(r"\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{2,4}")
# Customer-metadata keys whose whole value is personal.
PERSONAL_KEYS = frozenset(
    {"name", "full_name", "first_name", "last_name", "email", "e_mail", "phone", "phone_number", "mobile", "address"}
)


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum every payment card number satisfies."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def iban_valid(text: str) -> bool:
    """ISO 13616 mod-97 check of an IBAN (spaces ignored)."""
    compact = text.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34 or not compact[:2].isalpha() or not compact[2:4].isdigit():
        return False
    rearranged = compact[4:] + compact[:4]
    numeric = "".join(str(int(char, 36)) for char in rearranged)
    return int(numeric) % 97 == 1


def _card(match: regex.Match[str]) -> str:
    digits = regex.sub(r"\D", "", match.group())
    # A failing checksum may be a mistyped card: too long for a phone, still masked.
    return CARD_TOKEN if luhn_valid(digits) else NUMBER_TOKEN


def _iban(match: regex.Match[str]) -> str:
    text: str = match.group()
    return IBAN_TOKEN if iban_valid(text) else text


def _phone(match: regex.Match[str]) -> str:
    text: str = match.group()
    digits = sum(char.isdigit() for char in text)
    if _DATE.fullmatch(text.strip()) or not 7 <= digits <= 15:
        return text
    international = text.startswith(("+", "00"))
    grouped = any(not char.isdigit() for char in text)
    if not international and not grouped and digits < 8:
        return text  # a bare 7-digit number is more often an id than a phone
    return PHONE_TOKEN


def redact_text(text: str) -> str:
    """``text`` with e-mails, card numbers, IBANs and phone numbers replaced by tokens."""
    text = _EMAIL.sub(EMAIL_TOKEN, text)
    text = _IBAN.sub(_iban, text)
    text = _CARD.sub(_card, text)
    return str(_PHONE.sub(_phone, text))


def redact_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Customer metadata: personal keys (name, email, phone…) masked whole, other strings pattern-redacted."""
    redacted: dict[str, Any] = {}
    for key, value in metadata.items():
        if key.lower().replace("-", "_") in PERSONAL_KEYS and value not in (None, ""):
            redacted[key] = REDACTED_TOKEN
        elif isinstance(value, str):
            redacted[key] = redact_text(value)
        else:
            redacted[key] = value
    return redacted
