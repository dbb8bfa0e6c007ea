"""How well common/redact.py masks personal data: per-kind recall and precision on a generated set.

The set is made here, deterministically from a seed: short support messages in several languages
(en, ru, lv, de, zh, fr, es) built from templates whose slots hold personal data of each kind in
varied formats (e-mails incl. plus-addressing, phones in international and national formats,
Luhn-valid card numbers, IBANs of many countries) and decoys that must stay readable (order numbers,
dates, times, prices, versions, IP addresses, tracking ids, card-like numbers that fail the Luhn
check). Hand-made because no public PII corpus has multilingual decoys, and a real one could not be
shared anyway.

Scoring aligns the redacted text with the case's segments: the text between slots must come back
unchanged and each slot either unchanged or as exactly one token. A case that does not align (a
redaction cut into a slot or spilled into the text around it) counts every slot as wrong: personal
data as missed, decoys as masked.

- recall of kind K: share of K values that came back as a token (any token: the value is gone);
- precision of kind K: share of K tokens that replaced a real K value (a decoy, or another kind's
  value, under a K token counts against K).

Example::

    python -m eval.redaction            # or: answerdesk eval redaction
"""

from __future__ import annotations

import argparse
import random
import re
import string
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated

import regex
import typer

from common import redact

PII_KINDS = ("email", "phone", "card", "iban")
TOKEN_KIND = {
    redact.EMAIL_TOKEN: "email",
    redact.PHONE_TOKEN: "phone",
    redact.CARD_TOKEN: "card",
    redact.IBAN_TOKEN: "iban",
}
_TOKENS = sorted({*TOKEN_KIND, redact.REDACTED_TOKEN})



@dataclass(frozen=True)
class Slot:
    """One filled placeholder: personal data (``kind`` in PII_KINDS) or a decoy."""

    kind: str
    style: str  # the format, e.g. "ru-national" or "price-eu"
    value: str

    @property
    def personal(self) -> bool:
        return self.kind in PII_KINDS


@dataclass(frozen=True)
class Case:
    language: str
    parts: tuple[str | Slot, ...]  # literal text and slots, in order

    @property
    def text(self) -> str:
        return "".join(part if isinstance(part, str) else part.value for part in self.parts)

    @property
    def slots(self) -> list[Slot]:
        return [part for part in self.parts if isinstance(part, Slot)]


# --- personal data --------------------------------------------------------------------------------

_FIRST = ["anna", "ivan", "janis", "li.wei", "maria", "john", "elena", "peteris", "sofia", "max", "olga", "chen"]
_LAST = ["berzina", "petrov", "ozols", "zhang", "schmidt", "smith", "kalnina", "ivanova", "mueller", "garcia"]
_DOMAINS = ["example.com", "mail.ru", "inbox.lv", "gmx.de", "qq.com", "example.co.uk", "posteo.de", "yandex.ru",
            "company.io", "support.tasklane.app"]


def _email(rng: random.Random) -> tuple[str, str]:
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    style = rng.choice(["dot", "plus", "underscore", "digits", "upper", "initial", "hyphen-domain", "cyrillic"])
    if style == "cyrillic":
        return style, f"{rng.choice(['иван', 'ольга', 'пётр'])}.{rng.choice(['петров', 'иванова'])}@почта.рф"
    if style == "hyphen-domain":
        return style, f"{first}@{rng.choice(['my-company', 'tasklane-eu'])}.{rng.choice(['com', 'co.uk', 'lv'])}"
    local = {
        "dot": f"{first}.{last}",
        "plus": f"{first}+{rng.choice(['support', 'billing', 'tasklane', 'x1'])}",
        "underscore": f"{first}_{last}",
        "digits": f"{last}{rng.randint(1, 9999)}",
        "upper": f"{first.capitalize()}.{last.capitalize()}",
        "initial": f"{first[0]}{last}",
    }[style]
    return style, f"{local}@{rng.choice(_DOMAINS)}"


def _digits(rng: random.Random, count: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(count))


def _phone(rng: random.Random) -> tuple[str, str]:
    def d(count: int) -> str:  # a short name keeps the format table readable
        return _digits(rng, count)

    mobile_lv = "2" + d(7)
    mobile_ru = "9" + d(9)
    formats: dict[str, Callable[[], str]] = {
        "lv-intl": lambda: f"+371 {mobile_lv[:4]} {mobile_lv[4:]}",
        "lv-compact": lambda: f"+371{mobile_lv}",
        "lv-national": lambda: mobile_lv,
        "lv-00": lambda: f"00371 {mobile_lv[:2]} {mobile_lv[2:5]} {mobile_lv[5:]}",
        "ru-intl-brackets": lambda: f"+7 ({mobile_ru[:3]}) {mobile_ru[3:6]}-{mobile_ru[6:8]}-{mobile_ru[8:]}",
        "ru-national-brackets": lambda: f"8 ({mobile_ru[:3]}) {mobile_ru[3:6]}-{mobile_ru[6:8]}-{mobile_ru[8:]}",
        "ru-spaces": lambda: f"+7 {mobile_ru[:3]} {mobile_ru[3:6]} {mobile_ru[6:8]} {mobile_ru[8:]}",
        "ru-compact": lambda: f"8{mobile_ru}",
        "de-intl": lambda: f"+49 30 {d(8)}",
        "de-national": lambda: f"030 {d(4)} {d(4)}",
        "de-trunk-brackets": lambda: f"+49 (0)30 {d(4)} {d(4)}",
        "de-mobile-dash": lambda: f"0151-{d(4)} {d(4)}",
        "us-brackets": lambda: f"({rng.randint(201, 989)}) {d(3)}-{d(4)}",
        "us-intl": lambda: f"+1 {rng.randint(201, 989)}-{d(3)}-{d(4)}",
        "us-dots": lambda: f"{rng.randint(201, 989)}.{d(3)}.{d(4)}",
        "cn-intl": lambda: f"+86 138 {d(4)} {d(4)}",
        "cn-compact": lambda: f"1{rng.choice('3589')}{d(9)}",
        "cn-dash": lambda: f"139-{d(4)}-{d(4)}",
        "uk-intl": lambda: f"+44 20 {d(4)} {d(4)}",
        "uk-national": lambda: f"020 {d(4)} {d(4)}",
        "uk-mobile": lambda: f"+44 7700 {d(6)}",
        "fr-national": lambda: f"0{rng.randint(1, 7)} {d(2)} {d(2)} {d(2)} {d(2)}",
        "fr-intl": lambda: f"+33 {rng.randint(1, 7)} {d(2)} {d(2)} {d(2)} {d(2)}",
        "es-intl": lambda: f"+34 6{d(2)} {d(3)} {d(3)}",
        "lv-dashes": lambda: f"+371-{mobile_lv[:4]}-{mobile_lv[4:]}",
        "lv-bracket-cc": lambda: f"(+371) {mobile_lv}",
        "ru-tight": lambda: f"+7({mobile_ru[:3]}){mobile_ru[3:6]}-{mobile_ru[6:8]}-{mobile_ru[8:]}",
        "ru-dashes": lambda: f"8-{mobile_ru[:3]}-{mobile_ru[3:6]}-{mobile_ru[6:8]}-{mobile_ru[8:]}",
        "de-bracket-area": lambda: f"+49 (30) {d(7)}",
        "cn-landline": lambda: f"010-{d(8)}",
        "cn-landline-intl": lambda: f"+86-10-{d(8)}",
        "uk-trunk": lambda: f"+44 (0) 20 {d(4)} {d(4)}",
        "uk-mobile-national": lambda: f"07700 {d(6)}",
        "fr-trunk": lambda: f"+33 (0){rng.randint(1, 7)} {d(2)} {d(2)} {d(2)} {d(2)}",
        "ua-intl": lambda: f"+380 67 {d(3)} {d(4)}",
        "fi-intl": lambda: f"+358 40 {d(7)}",
    }
    style = rng.choice(sorted(formats))
    return style, formats[style]()


def luhn_check_digit(payload: str) -> str:
    """The digit that makes ``payload`` + digit pass the Luhn check."""
    total = 0
    for index, char in enumerate(reversed(payload)):
        value = int(char)
        if index % 2 == 0:  # doubled: these positions are odd once the check digit is appended
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return str((10 - total % 10) % 10)


_CARD_PREFIXES = [("visa", "4", 16), ("mastercard", "51", 16), ("mastercard", "53", 16),
                  ("mastercard-2", "2221", 16), ("amex", "37", 15), ("amex", "34", 15), ("discover", "6011", 16),
                  ("unionpay", "62", 19), ("mir", "2200", 16), ("visa-13", "4", 13), ("jcb", "3530", 16),
                  ("maestro-19", "6759", 19)]


def _group(number: str, sizes: Sequence[int], separator: str) -> str:
    parts, start = [], 0
    for size in sizes:
        parts.append(number[start : start + size])
        start += size
    if start < len(number):
        parts.append(number[start:])
    return separator.join(part for part in parts if part)


def _card_number(rng: random.Random, valid: bool) -> tuple[str, str]:
    brand, prefix, length = rng.choice(_CARD_PREFIXES)
    payload = prefix + _digits(rng, length - len(prefix) - 1)
    check = luhn_check_digit(payload)
    if not valid:
        check = str((int(check) + rng.randint(1, 9)) % 10)
    number = payload + check
    layout = rng.choice(["plain", "spaces", "dashes"])
    sizes = {15: (4, 6, 5), 13: (4, 4, 5)}.get(length, (4, 4, 4, 4, 4))
    text = number if layout == "plain" else _group(number, sizes, " " if layout == "spaces" else "-")
    return f"{brand}-{layout}", text


def _card(rng: random.Random) -> tuple[str, str]:
    return _card_number(rng, valid=True)


# BBAN layouts: a = letter, n = digit, c = letter or digit (ISO 13616 registry, abridged).
_IBAN_LAYOUTS = {
    "LV": "aaaa" + "c" * 13, "DE": "n" * 18, "GB": "aaaa" + "n" * 14, "FR": "n" * 23, "NL": "aaaa" + "n" * 10,
    "EE": "n" * 16, "LT": "n" * 16, "ES": "n" * 20, "CH": "n" * 17, "IT": "a" + "n" * 22, "PL": "n" * 24,
    "BE": "n" * 12, "NO": "n" * 11, "AT": "n" * 16,
}


def iban_check_digits(country: str, bban: str) -> str:
    rearranged = bban + country + "00"
    numeric = int("".join(str(int(char, 36)) for char in rearranged))
    return f"{98 - numeric % 97:02d}"


def _iban(rng: random.Random) -> tuple[str, str]:
    country = rng.choice(sorted(_IBAN_LAYOUTS))
    layout = _IBAN_LAYOUTS[country]
    alphabet = {"a": string.ascii_uppercase, "n": string.digits, "c": string.digits * 3 + string.ascii_uppercase}
    bban = "".join(rng.choice(alphabet[kind]) for kind in layout)
    compact = country + iban_check_digits(country, bban) + bban
    layout_style = rng.choice(["spaces", "compact", "spaces", "compact", "lowercase"])
    text = _group(compact, [4] * 9, " ") if layout_style == "spaces" else compact
    return f"{country}-{layout_style}", text.lower() if layout_style == "lowercase" else text


# --- decoys ---------------------------------------------------------------------------------------


def _date_digits(rng: random.Random) -> str:
    return f"{rng.randint(2019, 2026)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"


def _order(rng: random.Random) -> tuple[str, str]:
    styles: dict[str, Callable[[], str]] = {
        "hash": lambda: f"#{rng.randint(10000, 99999999)}",
        "prefixed": lambda: f"ORD-{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}",
        "invoice": lambda: f"INV-{rng.randint(2019, 2026)}-{rng.randint(1, 99999):05d}",
        "dated": lambda: f"{_date_digits(rng)}-{rng.randint(1, 9999)}",
        "short": lambda: str(rng.randint(10000, 9999999)),
        "ticket": lambda: f"TL-{rng.randint(100000, 999999)}",
    }
    style = rng.choice(sorted(styles))
    return style, styles[style]()


def _date(rng: random.Random) -> tuple[str, str]:
    year, month, day = rng.randint(2019, 2026), rng.randint(1, 12), rng.randint(1, 28)
    styles = {
        "iso": f"{year}-{month:02d}-{day:02d}",
        "dotted": f"{day:02d}.{month:02d}.{year}",
        "us": f"{month:02d}/{day:02d}/{year}",
        "eu-slash": f"{day:02d}/{month:02d}/{year}",
        "iso-time": f"{year}-{month:02d}-{day:02d} {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}",
        "cjk": f"{year}年{month}月{day}日",
    }
    style = rng.choice(sorted(styles))
    return style, styles[style]


def _time(rng: random.Random) -> tuple[str, str]:
    if rng.random() < 0.5:
        return "hh:mm", f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}"
    return "hh:mm:ss", f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}"


def _price(rng: random.Random) -> tuple[str, str]:
    whole = rng.choice([rng.randint(5, 999), rng.randint(1000, 9_999_999)])
    cents = rng.randint(0, 99)
    spaced = f"{whole:,}".replace(",", " ")
    styles = {
        "usd": f"${whole:,}.{cents:02d}",
        "eur-suffix": f"{spaced},{cents:02d} €",
        "eur-prefix": f"€{whole}.{cents:02d}",
        "rub": f"{spaced} ₽",
        "rub-word": f"{spaced} руб.",
        "eur-code": f"{spaced} EUR",
        "cny": f"¥{whole}",
    }
    style = rng.choice(sorted(styles))
    return style, styles[style]


def _version(rng: random.Random) -> tuple[str, str]:
    major, minor, patch = rng.randint(1, 20), rng.randint(0, 30), rng.randint(0, 200)
    styles = {
        "semver": f"v{major}.{minor}.{patch}",
        "prerelease": f"{major}.{minor}.{patch}-beta.{rng.randint(1, 9)}",
        "windows-build": f"10.0.{rng.randint(17000, 22999)}.{rng.randint(100, 9999)}",
        "calendar": f"{rng.randint(2019, 2026)}.{rng.randint(1, 12)}.{rng.randint(1, 30)}",
    }
    style = rng.choice(sorted(styles))
    return style, styles[style]


def _ip(rng: random.Random) -> tuple[str, str]:
    return "ipv4", ".".join(str(rng.randint(1, 254)) for _ in range(4))


def _invalid_card(rng: random.Random) -> tuple[str, str]:
    style, text = _card_number(rng, valid=False)
    return f"luhn-fail-{style}", text


def _tracking(rng: random.Random) -> tuple[str, str]:
    styles: dict[str, Callable[[], str]] = {
        "ups": lambda: f"1Z{_digits(rng, 3)}AA1{_digits(rng, 11)}",
        "upu-s10": lambda: f"RR{_digits(rng, 9)}LV",
        "dhl": lambda: f"JD{_digits(rng, 18)}",
        "usps-22": lambda: _group("94" + _digits(rng, 20), [4] * 6, " "),
        "uuid-ish": lambda: f"{rng.getrandbits(32):08x}-{rng.getrandbits(16):04x}",
    }
    style = rng.choice(sorted(styles))
    return style, styles[style]()


def _figure(rng: random.Random) -> tuple[str, str]:
    """Other numbers support messages carry: counts, standards, codes, timestamps, postcodes."""
    styles: dict[str, Callable[[], str]] = {
        "count-spaced": lambda: f"{rng.randint(1, 99)} {rng.randint(0, 999):03d} users",
        "count-commas": lambda: f"{rng.randint(1, 9)},{rng.randint(0, 999):03d},{rng.randint(0, 999):03d} rows",
        "iso-standard": lambda: f"ISO {rng.choice(['27001', '9001:2015', '27018', '8601'])}",
        "percent": lambda: f"{rng.randint(90, 99)}.{rng.randint(0, 99):02d}%",
        "postcode-lv": lambda: f"LV-{rng.randint(1001, 5799)}",
        "postcode-de": lambda: f"{rng.randint(10115, 99998)} Berlin",
        "error-hex": lambda: f"0x{rng.getrandbits(32):08X}",
        "http-status": lambda: f"HTTP {rng.choice([500, 502, 503, 504])}",
        "port": lambda: f"port {rng.choice([8080, 8443, 5432, 6379])}",
        "unix-time": lambda: str(rng.randint(1_600_000_000, 1_800_000_000)),
        "year-range": lambda: f"{rng.randint(2010, 2020)}-{rng.randint(2021, 2026)}",
        "coordinates": lambda: f"56.{rng.randint(1000, 9999)}, 24.{rng.randint(1000, 9999)}",
    }
    style = rng.choice(sorted(styles))
    return style, styles[style]()


GENERATORS: dict[str, Callable[[random.Random], tuple[str, str]]] = {
    "email": _email,
    "phone": _phone,
    "card": _card,
    "iban": _iban,
    "order": _order,
    "date": _date,
    "time": _time,
    "price": _price,
    "version": _version,
    "ip": _ip,
    "invalid_card": _invalid_card,
    "tracking": _tracking,
    "figure": _figure,
}

TEMPLATES: dict[str, list[str]] = {
    "en": [
        "Hi, I'm locked out. My email is {email} and my phone is {phone}.",
        "Please refund order {order} to my card {card}, charged on {date}.",
        "The invoice for {price} should be paid to IBAN {iban}, copy to {email}.",
        "App version {version} crashes when I type card {invalid_card}. Call me on {phone}.",
        "My parcel {tracking} hasn't arrived since {date}; reach me at {phone} or {email}.",
        "Card {card} was declined at {time} from IP {ip}.",
        "Ticket {order}: {email} wants to pay {price} by transfer from {iban}.",
        "Since {figure} we get errors; my card {card} 12/27 was charged twice. Write to <{email}>.",
        "Our workspace has {figure}. Contact: tel:{phone}, mailto:{email}.",
    ],
    "ru": [
        "Здравствуйте, мой телефон {phone}, почта {email}.",
        "Верните деньги за заказ {order} на карту {card}, оплата была {date}.",
        "Счёт на {price} оплатите на IBAN {iban}.",
        "Приложение версии {version} падает при вводе карты {invalid_card}. Перезвоните на {phone}.",
        "Посылка {tracking} не пришла с {date}, пишите на {email}.",
        "Карта {card} отклонена в {time}, IP {ip}.",
        "Ошибка {figure} при оплате, мой номер {phone}, IBAN {iban}.",
    ],
    "lv": [
        "Labdien, mans tālrunis ir {phone}, e-pasts {email}.",
        "Lūdzu atmaksājiet pasūtījumu {order} uz karti {card}, maksājums {date}.",
        "Rēķinu par {price} apmaksājiet uz kontu {iban}.",
        "Versija {version} avarē, ievadot karti {invalid_card}. Zvaniet {phone}.",
        "Sūtījums {tracking} nav pienācis kopš {date}; rakstiet uz {email}.",
        "Mums ir {figure}, rēķins jāsūta uz {email}, tālr. {phone}.",
    ],
    "de": [
        "Hallo, meine E-Mail ist {email}, Telefon {phone}.",
        "Bitte erstatten Sie Bestellung {order} auf meine Karte {card}, bezahlt am {date}.",
        "Die Rechnung über {price} bitte an IBAN {iban} überweisen.",
        "Version {version} stürzt bei der Kartennummer {invalid_card} ab. Rückruf unter {phone}.",
        "Sendung {tracking} ist seit {date} unterwegs; schreiben Sie an {email}.",
        "Um {time} wurde die Karte {card} abgelehnt (IP {ip}).",
        "Fehler {figure} seit gestern. Tel. {phone}, Konto {iban}.",
    ],
    "zh": [
        "你好，我的邮箱是{email}，电话{phone}。",
        "请把订单{order}退款到我的卡{card}，付款日期{date}。",
        "发票金额{price}，请汇到{iban}。",
        "版本{version}在输入卡号{invalid_card}时崩溃，请打{phone}联系我。",
        "包裹{tracking}自{date}以来一直没到，邮箱{email}。",
        "我的银行卡 {card} 在{time}被拒绝了。",
        "卡号{card}，手机{phone}，出现{figure}错误。",
    ],
    "fr": [
        "Bonjour, mon e-mail est {email} et mon numéro {phone}.",
        "Remboursez la commande {order} sur ma carte {card}, payée le {date}.",
        "Virement de {price} depuis l'IBAN {iban}.",
    ],
    "es": [
        "Hola, mi correo es {email} y mi teléfono {phone}.",
        "Reembolsen el pedido {order} a mi tarjeta {card}, pagado el {date}.",
        "Transferencia de {price} desde el IBAN {iban}, versión {version}.",
    ],
}


def generate_cases(count: int = 600, seed: int = 13) -> list[Case]:
    """``count`` cases, the same for the same seed (templates cycle through the languages)."""
    rng = random.Random(seed)
    templates = [(language, template) for language, items in TEMPLATES.items() for template in items]
    cases = []
    for index in range(count):
        language, template = templates[index % len(templates)]
        parts: list[str | Slot] = []
        for literal, name, _, _ in string.Formatter().parse(template):
            if literal:
                parts.append(literal)
            if name:
                style, value = GENERATORS[name](rng)
                parts.append(Slot(name, style, value))
        cases.append(Case(language, tuple(parts)))
    return cases


# --- scoring --------------------------------------------------------------------------------------


def align(case: Case, redacted: str) -> list[str] | None:
    """What each slot became in ``redacted`` (its value or a token), or None when it does not align."""
    token = "|".join(re.escape(item) for item in _TOKENS)
    pattern = "".join(
        re.escape(part) if isinstance(part, str) else f"({re.escape(part.value)}|{token})" for part in case.parts
    )
    match = re.fullmatch(pattern, redacted, flags=re.DOTALL)
    return list(match.groups()) if match else None


@dataclass
class KindScore:
    total: int = 0  # values of this kind in the set
    caught: int = 0  # of them, masked by a token
    tokens: int = 0  # tokens of this kind in the output
    correct_tokens: int = 0  # of them, over a value of this kind

    @property
    def recall(self) -> float:
        return self.caught / self.total if self.total else 1.0

    @property
    def precision(self) -> float:
        return self.correct_tokens / self.tokens if self.tokens else 1.0


@dataclass
class RedactionReport:
    cases: int = 0
    misaligned: int = 0
    kinds: dict[str, KindScore] = field(default_factory=lambda: {kind: KindScore() for kind in PII_KINDS})
    decoys: Counter[str] = field(default_factory=Counter)  # decoy kind → count
    decoys_masked: Counter[str] = field(default_factory=Counter)
    missed_styles: Counter[str] = field(default_factory=Counter)  # "phone:de-national" → misses
    masked_decoy_styles: Counter[str] = field(default_factory=Counter)
    examples: list[tuple[str, str]] = field(default_factory=list)  # (input, output) of wrong cases

    @property
    def decoys_kept(self) -> float:
        total = sum(self.decoys.values())
        return 1 - sum(self.decoys_masked.values()) / total if total else 1.0


def measure(cases: Sequence[Case], redactor: Callable[[str], str] = redact.redact_text) -> RedactionReport:
    report = RedactionReport()
    for case in cases:
        report.cases += 1
        output = redactor(case.text)
        outcomes = align(case, output)
        if outcomes is None:
            report.misaligned += 1
            # Tokens we cannot place count against their kind.
            for token, kind in TOKEN_KIND.items():
                report.kinds[kind].tokens += output.count(token)
        wrong = False
        for index, slot in enumerate(case.slots):
            became = outcomes[index] if outcomes is not None else None
            masked = became is not None and became != slot.value
            if slot.personal:
                score = report.kinds[slot.kind]
                score.total += 1
                score.caught += masked
                if not masked:
                    report.missed_styles[f"{slot.kind}:{slot.style}"] += 1
                    wrong = True
            else:
                report.decoys[slot.kind] += 1
                if became != slot.value:  # masked, or lost in a misaligned case
                    report.decoys_masked[slot.kind] += 1
                    report.masked_decoy_styles[f"{slot.kind}:{slot.style}"] += 1
                    wrong = True
            token_kind = TOKEN_KIND.get(became or "")
            if token_kind is not None:
                report.kinds[token_kind].tokens += 1
                report.kinds[token_kind].correct_tokens += token_kind == slot.kind
                wrong = wrong or token_kind != slot.kind
        if wrong or outcomes is None:
            report.examples.append((case.text, output))
    return report


def format_report(report: RedactionReport, examples: int = 0) -> str:
    lines = [
        f"{report.cases} generated messages ({', '.join(TEMPLATES)}); {report.misaligned} misaligned",
        "",
        f"{'kind':<8} {'values':>7} {'recall':>7} {'tokens':>7} {'precision':>9}",
    ]
    for kind, score in report.kinds.items():
        lines.append(f"{kind:<8} {score.total:>7} {score.recall:>7.3f} {score.tokens:>7} {score.precision:>9.3f}")
    lines += ["", f"{'decoy':<13} {'count':>6} {'kept':>6}"]
    for kind in sorted(report.decoys):
        total = report.decoys[kind]
        lines.append(f"{kind:<13} {total:>6} {1 - report.decoys_masked[kind] / total:>6.3f}")
    lines.append(f"{'all decoys':<13} {sum(report.decoys.values()):>6} {report.decoys_kept:>6.3f}")
    for title, counter in (("missed", report.missed_styles), ("decoys masked", report.masked_decoy_styles)):
        if counter:
            lines += ["", f"{title}: " + ", ".join(f"{style} ×{n}" for style, n in counter.most_common())]
    for text, output in report.examples[:examples]:
        lines += ["", f"  in:  {text}", f"  out: {output}"]
    return "\n".join(lines)


# --- phone checks compared (docs/privacy.md) -------------------------------------------------------

# Where our customers' national numbers come from, for libphonenumber's per-region rules.
_PHONE_REGIONS = ("LV", "RU", "DE", "GB", "US", "CN", "FR", "ES")
PHONE_CHECKS = ("ours", "phonenumbers", "ours+phonenumbers")


def _phonenumbers_accepts(text: str, valid: bool) -> bool:
    """Whether libphonenumber (the ``phonenumbers`` wheel, a dev dependency) takes ``text`` for a phone
    number: ``valid`` asks for an assigned range, else only a possible length for the country."""
    import phonenumbers

    check = phonenumbers.is_valid_number if valid else phonenumbers.is_possible_number
    international = text.startswith(("+", "00", "(+"))
    number = "+" + text[2:] if text.startswith("00") else text
    for region in [None] if international else _PHONE_REGIONS:
        try:
            if check(phonenumbers.parse(number, region)):
                return True
        except phonenumbers.NumberParseException:
            continue
    return False


def phone_redactor(check: str) -> Callable[[str], str]:
    """redact_text with its phone check replaced: ``phonenumbers`` (libphonenumber's validity alone,
    instead of our shape and context exclusions) or ``ours+phonenumbers`` (ours, then a possible length
    for the country as well)."""
    if check == "ours":
        return redact.redact_text
    if check not in PHONE_CHECKS:
        raise ValueError(f"unknown phone check {check!r}: use one of {', '.join(PHONE_CHECKS)}")

    def phone(match: regex.Match[str]) -> str:
        text: str = match.group()
        if check == "phonenumbers":
            return redact.PHONE_TOKEN if _phonenumbers_accepts(text, valid=True) else text
        ours = redact._phone(match)
        return ours if ours == text or _phonenumbers_accepts(text, valid=False) else text

    def redactor(text: str) -> str:
        text = redact._EMAIL.sub(redact.EMAIL_TOKEN, text)
        text = redact._IBAN.sub(redact._iban, text)
        text = redact._CARD.sub(redact._card, text)
        return str(redact._PHONE.sub(phone, text))

    return redactor


def redaction_command(
    count: Annotated[int, typer.Option(help="Messages to generate.")] = 600,
    seed: Annotated[int, typer.Option(help="Seed of the generator.")] = 13,
    examples: Annotated[int, typer.Option(help="Print this many wrongly redacted messages.")] = 0,
    phones: Annotated[str, typer.Option(help=f"Phone check: {', '.join(PHONE_CHECKS)} (docs/privacy.md).")] = "ours",
) -> None:
    """Recall and precision of PII redaction per kind, on generated multilingual support messages."""
    print(format_report(measure(generate_cases(count, seed), phone_redactor(phones)), examples))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=600, help="messages to generate (default 600)")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--examples", type=int, default=0, help="print this many wrongly redacted messages")
    parser.add_argument("--phones", choices=PHONE_CHECKS, default="ours", help="phone check (docs/privacy.md)")
    args = parser.parse_args(argv)
    print(format_report(measure(generate_cases(args.count, args.seed), phone_redactor(args.phones)), args.examples))


if __name__ == "__main__":
    main()
