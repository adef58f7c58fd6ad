"""Value generators of bench/redaction_corpus.py: cards that pass Luhn, IBANs with valid check
digits, real-numbering-plan mobiles (libphonenumber), SSNs, JWTs and random secrets, each drawn
from the caller's seeded ``random.Random``."""
from __future__ import annotations

import base64
import json
import random
import string

import phonenumbers

A, D, H = string.ascii_letters, string.digits, "0123456789abcdef"


def _s(r: random.Random, alphabet: str, n: int) -> str:
    return "".join(r.choice(alphabet) for _ in range(n))


def _luhn_complete(r: random.Random, prefix: str, length: int) -> str:
    body = prefix + _s(r, D, length - len(prefix) - 1)
    for c in D:
        cand = body + c
        total = sum((d * 2 - 9 if d * 2 > 9 else d * 2) if i % 2 == len(cand) % 2 else d
                    for i, d in enumerate(map(int, cand)))
        if total % 10 == 0:
            return cand
    raise AssertionError


def card(r: random.Random) -> str:
    prefix, length = r.choice([("4", 16), ("51", 16), ("55", 16), ("2221", 16), ("37", 15), ("34", 15),
                               ("6011", 16), ("65", 16), ("4", 19), ("36", 14), ("35", 16)])
    n = _luhn_complete(r, prefix, length)
    style = r.random()
    if length == 15 and style < 0.5:
        return f"{n[:4]} {n[4:10]} {n[10:]}"
    if length == 16 and style < 0.6:
        sep = r.choice(" -")
        return sep.join(n[i:i + 4] for i in range(0, 16, 4))
    return n


def iban(r: random.Random) -> str:
    cc, n = r.choice([("DE", 18), ("GB", 18), ("FR", 23), ("NL", 14), ("ES", 20), ("IT", 23), ("CH", 17)])
    if cc == "GB":
        bban = _s(r, string.ascii_uppercase, 4) + _s(r, D, 14)
    elif cc == "NL":
        bban = _s(r, string.ascii_uppercase, 4) + _s(r, D, 10)
    elif cc == "IT":
        bban = r.choice(string.ascii_uppercase) + _s(r, D, 22)
    else:
        bban = _s(r, D, n)
    num = int("".join(str(int(c, 36)) for c in bban + cc + "00"))
    out = f"{cc}{98 - num % 97:02d}{bban}"
    return " ".join(out[i:i + 4] for i in range(0, len(out), 4)) if r.random() < 0.4 else out


def valid_mobile(r: random.Random, regions: tuple[str, ...]) -> phonenumbers.PhoneNumber:
    """A random number that libphonenumber calls a valid mobile of one of ``regions``."""
    while True:
        ex = phonenumbers.example_number_for_type(r.choice(regions), phonenumbers.PhoneNumberType.MOBILE)
        nsn = str(ex.national_number)
        cand = phonenumbers.parse(f"+{ex.country_code}{nsn[:2]}{_s(r, D, len(nsn) - 2)}", None)
        if phonenumbers.is_valid_number(cand):
            return cand


def phone_intl(r: random.Random) -> str:
    cand = valid_mobile(r, ("GB", "BR", "DE", "IN", "FR", "US", "ES", "IT", "MX", "JP", "AU", "NL", "ZA",
                            "NG", "PL", "SE", "KE", "PH", "AR", "TR", "IE", "SG"))
    style = r.random()
    if style < 0.45:
        return phonenumbers.format_number(cand, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    if style < 0.7:
        return phonenumbers.format_number(cand, phonenumbers.PhoneNumberFormat.E164)
    if style < 0.78:
        intl = phonenumbers.format_number(cand, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
        return "00" + intl[1:] if style < 0.74 else intl.replace(" ", ".")
    nat = phonenumbers.format_number(cand, phonenumbers.PhoneNumberFormat.NATIONAL)
    if nat.startswith("0") and style < 0.85:
        return f"+{cand.country_code} (0){nat[1:]}"
    return f"+{cand.country_code} {str(cand.national_number)[:3]} {str(cand.national_number)[3:]}"


def ssn_digits(r: random.Random) -> tuple[str, str, str]:
    area = r.choice([a for a in range(1, 900) if a != 666])
    return f"{area:03d}", f"{r.randint(1, 99):02d}", f"{r.randint(1, 9999):04d}"


def jwt(r: random.Random) -> str:
    def b64(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")
    head = b64({"alg": r.choice(["HS256", "RS256", "ES256"]), "typ": "JWT"})
    body = b64({"sub": _s(r, D, 8), "iat": r.randint(1_600_000_000, 1_800_000_000)})
    return f"{head}.{body}.{_s(r, A + D + '-_', 43)}"


def rand_secret(r: random.Random) -> str:
    kind = r.random()
    if kind < 0.5:
        return _s(r, A + D, r.randint(16, 40))
    if kind < 0.7:
        return _s(r, A + D + "/+", 40)
    if kind < 0.85:
        return _s(r, A + D + "!@#%^*_-", r.randint(10, 24))
    return _s(r, string.ascii_lowercase, 5) + _s(r, D, 3) + r.choice("!#%") + _s(r, A, 4)
