"""PII redaction: what leaves the system has no e-mails, phone numbers, card numbers or IBANs."""

from __future__ import annotations

import pytest

from common.redact import iban_valid, luhn_valid, redact_metadata, redact_text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail anna.berzina+support@example.co.uk now", "mail [EMAIL] now"),
        ("Мой email: иван.петров@почта.рф", "Мой email: [EMAIL]"),
        ("card 4242 4242 4242 4242 exp 12/27", "card [CARD] exp 12/27"),
        ("card 4242-4242-4242-4242", "card [CARD]"),
        ("amex 378282246310005.", "amex [CARD]."),
        ("card 4242 4242 4242 4242 12/27", "card [CARD] 12/27"),
        ("卡号4242424242424242，谢谢", "卡号[CARD]，谢谢"),
        ("IBAN LV80 BANK 0000 4351 9500 1 please", "IBAN [IBAN] please"),
        ("DE89370400440532013000", "[IBAN]"),
        ("iban de89370400440532013000.", "iban [IBAN]."),
        ("请汇到DE89370400440532013000。", "请汇到[IBAN]。"),
        ("call +371 2612 3456", "call [PHONE]"),
        ("call +7 (912) 345-67-89 today", "call [PHONE] today"),
        ("(212) 555-0100", "[PHONE]"),
        ("mobile 26123456", "mobile [PHONE]"),
        ("手机13800138000谢谢", "手机[PHONE]谢谢"),
        ("电话：138 0013 8000", "电话：[PHONE]"),
        ("tālr. (+371) 26123456", "tālr. [PHONE]"),
        ("tel:+37126123456", "tel:[PHONE]"),
        ("邮箱是anna@example.com，电话", "邮箱是[EMAIL]，电话"),
        # Left alone: dates, amounts, short ids, ranges, invoice numbers.
        ("paid on 2024-01-15 and 12.03.2024", "paid on 2024-01-15 and 12.03.2024"),
        ("it costs 1 200 EUR or 49.99", "it costs 1 200 EUR or 49.99"),
        ("order 1234567", "order 1234567"),
        ("5–10 business days", "5–10 business days"),
        ("invoice INV-2024-00123", "invoice INV-2024-00123"),
        # Card-like numbers failing the checksum are ids, not cards; longer digit runs are not cut up.
        ("ref 4242 4242 4242 4241 (typo)", "ref 4242 4242 4242 4241 (typo)"),
        ("usps 9400 1000 0000 0000 0000 00", "usps 9400 1000 0000 0000 0000 00"),
        ("paid at 2024-01-15 14:30 from 192.168.100.200", "paid at 2024-01-15 14:30 from 192.168.100.200"),
        ("Windows 10.0.19045.3693", "Windows 10.0.19045.3693"),
        ("total 7 389 344 EUR or €8010540.71", "total 7 389 344 EUR or €8010540.71"),
        ("Bestellung 20240115-8842", "Bestellung 20240115-8842"),
        ("订单20240115-8842", "订单20240115-8842"),
        ("customers 2019-2024", "customers 2019-2024"),
    ],
)
def test_redact_text(text: str, expected: str) -> None:
    assert redact_text(text) == expected


@pytest.mark.parametrize(("number", "valid"), [("4242424242424242", True), ("4242424242424241", False)])
def test_luhn(number: str, valid: bool) -> None:
    assert luhn_valid(number) is valid


def test_iban_checksum() -> None:
    assert iban_valid("LV80BANK0000435195001")
    assert not iban_valid("LV81BANK0000435195001")


def test_metadata_personal_keys_are_masked_whole_and_other_values_pattern_redacted() -> None:
    metadata = {"Name": "Anna Bērziņa", "email": "a@b.lv", "plan": "team", "note": "call +371 2612 3456", "seats": 12}
    assert redact_metadata(metadata) == {
        "Name": "[REDACTED]",
        "email": "[REDACTED]",
        "plan": "team",
        "note": "call [PHONE]",
        "seats": 12,
    }


@pytest.mark.parametrize(
    "text",
    ["card 4111.1111.1111.1111 please", "card 4111-1111-1111-1111", "card 4111 1111 1111 1111", "4111111111111111."],
)
def test_card_numbers_are_redacted_whatever_joins_their_groups(text: str) -> None:
    assert "[CARD]" in redact_text(text) and "1111" not in redact_text(text)


def test_dotted_figures_that_are_not_cards_stay() -> None:
    for text in ("version 10.0.19045.3693", "ip 192.168.100.200", "1.234.567,89 EUR", "4111.1111.1111.1112"):
        assert redact_text(text) == text


def test_metadata_is_redacted_by_value_whatever_the_key_is_called() -> None:
    metadata = {
        "customer_name": "Anna Bērziņa",
        "Full Name": "Anna Bērziņa",
        "billingEmail": "a@b.lv",
        "contact": 37126123456,  # an integer phone number
        "backup": "anna@example.com",
        "payment": {"last": "4111.1111.1111.1111"},
        "numbers": ["+371 2612 3456", 7],
        "customer_id": 37126123456,  # an id, however it looks
        "seats": 12,
        "vip": True,
    }
    assert redact_metadata(metadata) == {
        "customer_name": "[REDACTED]",
        "Full Name": "[REDACTED]",
        "billingEmail": "[REDACTED]",
        "contact": "[PHONE]",
        "backup": "[EMAIL]",
        "payment": {"last": "[CARD]"},
        "numbers": ["[PHONE]", 7],
        "customer_id": 37126123456,
        "seats": 12,
        "vip": True,
    }
