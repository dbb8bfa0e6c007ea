"""PII redaction for whatever leaves the system: e-mails, card numbers, IBANs and phone numbers.

Candidates are found by shape, then checked: a card number must pass the Luhn check (and start like
a real card, 2-6), an IBAN its mod-97 check, and a phone-shaped run of digits is left alone when it
is a date, a time, an IP address, a version, an amount next to a currency sign or code, or an id
right after a word such as "order", "Bestellung" or "订单". Card-like numbers failing the checksum
stay readable: they are order or tracking numbers far more often than mistyped cards. Measured on a
generated multilingual set with ``python -m eval.redaction`` (eval/redaction.py). The phone checks are
ours rather than libphonenumber's: it takes IP addresses, dates and prices for valid numbers (phone
precision 0.52 against our 0.95; docs/privacy.md).

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
IBAN_TOKEN = "[IBAN]"
PHONE_TOKEN = "[PHONE]"
REDACTED_TOKEN = "[REDACTED]"

# Letters and digits of an address, except CJK: Chinese and Japanese text runs right into it.
_ADDRESS_CHAR = r"[\p{L}\p{N}--\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}]"
_EMAIL = regex.compile(
    rf"[{_ADDRESS_CHAR}._%+-]+@{_ADDRESS_CHAR}[{_ADDRESS_CHAR}-]*(?:\.[{_ADDRESS_CHAR}-]+)+", regex.V1
)
# Latin and Cyrillic letters (not CJK ones, which are written right next to numbers) bound a number.
_WORD_BEFORE = r"\p{Latin}\p{Cyrillic}\d_"
# All upper or all lower case (mixed would glue a word to the number); the checksum decides.
_IBAN = regex.compile(
    r"(?<![\p{Latin}\d])(?:[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?"
    r"|[a-z]{2}\d{2}(?: ?[a-z0-9]{4}){2,7}(?: ?[a-z0-9]{1,3})?)(?![\p{Latin}\d])"
)
# 13-19 digits, plain or in groups joined by one kind of separator (space, dash or dot). A number
# that goes on after a separator is longer than a card (e.g. a tracking id), but a trailing expiry
# ("12/27") is fine.
_CARD = regex.compile(
    rf"(?<![{_WORD_BEFORE}]|\d[ .-])\d{{3,6}}(?:([ .-]?)\d{{3,6}})(?:\1\d{{1,6}}){{1,4}}"
    rf"(?![{_WORD_BEFORE}/]|[ .-]\d(?!\d?/))"
)
_PHONE_GROUP = r"(?:\(\d{1,5}\)|\d{1,5})"
# An optional international prefix, then digit groups joined by single separators or brackets. It
# must not continue a longer number (dates, times, versions, tracking ids) on either side.
_PHONE = regex.compile(
    rf"(?:(?<=tel:)|(?<![{_WORD_BEFORE}/#.,:+-]|\d[ .-]))"
    rf"(?:\(\+\d{{1,4}}\)[ .-]?|\+|00)?{_PHONE_GROUP}(?:[ .-]?{_PHONE_GROUP}){{1,6}}"
    rf"(?![{_WORD_BEFORE}]|[.,:/-]?[\p{{Latin}}\d]| \d)"
)
_DATE = regex.compile(r"\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{2,4}")
_YEARS = regex.compile(r"(?:19|20)\d\d ?[-–] ?(?:19|20)\d\d")  # 2019-2024
_IP_ADDRESS = regex.compile(r"\d{1,3}(?:\.\d{1,3}){3}")
_VERSION = regex.compile(r"\d+(?:\.\d+)*\.\d(?:\.\d+)*")  # dotted with a one-digit part: 10.0.19045.3693
_AMOUNT = regex.compile(r"\d{1,3}(?:[ .,]\d{3})+(?:[.,]\d{1,2})?|\d+[.,]\d{1,2}")
_CURRENCY_AFTER = regex.compile(r"\s?(?:[€$£¥₽元]|EUR|USD|GBP|RUB|CHF|CNY|руб|eur|euro|eiro)", regex.IGNORECASE)
_CURRENCY_BEFORE = regex.compile(r"(?:[€$£¥₽]|EUR|USD|GBP|CHF)\s?$")
# Words right before a number that make it an id, in the languages we serve ("phone no." is not one).
_ID_BEFORE = regex.compile(
    r"(?:(?<!\p{L})(?:order|invoice|ticket|ref(?:erence)?|tracking|заказ\w*|сч[её]т\w*|pasūtījum\w*|rēķin\w*|"
    r"bestell\w*|rechnung\w*|sendung\w*|auftrag\w*|kundennummer|commande|facture|pedido|factura)|"
    r"订单|发票|单号|包裹|编号)[\s.:#№-]*$",
    regex.IGNORECASE,
)
# Words of a customer-metadata key that make its whole value personal, whatever the rest of the key
# says ("customer_name", "Full Name", "billingEmail", "phone-number"); the values of other keys are
# redacted by what they look like.
PERSONAL_KEY_WORDS = frozenset(
    {
        "name", "fullname", "firstname", "lastname", "surname", "username", "email", "mail", "phone", "mobile",
        "tel", "telephone", "address", "street", "birthday", "birthdate", "dob", "passport", "ssn",
    }
)  # fmt: skip
# Splits a key into words: snake_case, kebab-case, spaces and camelCase.
_KEY_WORD = regex.compile(r"\p{Lu}?\p{Ll}+|\p{Lu}+(?!\p{Ll})|\d+")


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
    text: str = match.group()
    digits = regex.sub(r"\D", "", text)
    if 13 <= len(digits) <= 19 and digits[0] in "23456" and luhn_valid(digits):
        return CARD_TOKEN
    return text


def _iban(match: regex.Match[str]) -> str:
    text: str = match.group()
    return IBAN_TOKEN if iban_valid(text) else text


def _phone(match: regex.Match[str]) -> str:
    text: str = match.group()
    digits = sum(char.isdigit() for char in text)
    international = text.startswith(("+", "00", "(+"))
    # E.164 allows 15 digits with the country code; a national number is at most 12.
    if not 7 <= digits <= (15 if international else 12):
        return text
    if not international and text.isdigit() and digits < 8:
        return text  # a bare 7-digit number is more often an id than a phone
    if any(shape.fullmatch(text) for shape in (_DATE, _YEARS, _IP_ADDRESS, _VERSION)):
        return text
    before = match.string[max(0, match.start() - 30) : match.start()]
    if _AMOUNT.fullmatch(text) and (
        _CURRENCY_AFTER.match(match.string, match.end()) or _CURRENCY_BEFORE.search(before)
    ):
        return text
    if _ID_BEFORE.search(before):
        return text
    return PHONE_TOKEN


def redact_text(text: str) -> str:
    """``text`` with e-mails, card numbers, IBANs and phone numbers replaced by tokens."""
    text = _EMAIL.sub(EMAIL_TOKEN, text)
    text = _IBAN.sub(_iban, text)
    text = _CARD.sub(_card, text)
    return str(_PHONE.sub(_phone, text))


def is_personal_key(key: str) -> bool:
    """Whether a metadata key names personal data (a name, an e-mail, a phone, an address…)."""
    return any(word.lower() in PERSONAL_KEY_WORDS for word in _KEY_WORD.findall(key))


def redact_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Customer metadata: values of personal keys masked whole; every other value redacted by what it
    is (a number too: an integer phone or card number), nested objects and lists included."""
    redacted: dict[str, Any] = {}
    for key, value in metadata.items():
        if is_personal_key(str(key)) and value not in (None, ""):
            redacted[key] = REDACTED_TOKEN
        else:
            redacted[key] = _redact_value(str(key), value)
    return redacted


def _redact_value(key: str, value: Any) -> Any:
    if isinstance(value, Mapping):
        return redact_metadata(value)
    if isinstance(value, list):
        return [_redact_value(key, item) for item in value]
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return value
    text = str(value)
    masked = redact_text(text)
    identifier = bool(_KEY_WORD.findall(key)) and _KEY_WORD.findall(key)[-1].lower() == "id"
    if masked == text or (identifier and masked == PHONE_TOKEN):
        return value  # an account or customer id is not a phone number, however it looks
    return masked
