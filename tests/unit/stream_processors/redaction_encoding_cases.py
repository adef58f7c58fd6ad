"""Seeded generators, continued (redaction_format_cases.py): card numbers with other separators,
PII in percent-encoded text, phone numbers as contact URIs, and values at a line's start in
JSON-encoded output."""
from __future__ import annotations

import base64
import json
import random
import urllib.parse

import phonenumbers

from .redaction_format_cases import B62, DIG, HOSTS, LOW, USERS, Case, aws_pair, password, rs


# ---- 4. payment cards with other separators --------------------------------------------------

def luhn_complete(prefix: str, n: int, r: random.Random) -> str:
    body = prefix + rs(r, DIG, n - len(prefix) - 1)
    for check in DIG:
        d = body + check
        total = 0
        for i, ch in enumerate(reversed(d)):
            x = int(ch)
            if i % 2 == 1:
                x = x * 2 - 9 if x > 4 else x * 2
            total += x
        if total % 10 == 0:
            return d
    raise AssertionError


CARD_SEPS = (".", "\u2013", "\u00a0", "\u2009", "\u202f", "\u2007", "\u2011", "\u2010", "\u2212", "\u2002", "  ")


def card_digits(r: random.Random) -> tuple[str, tuple[int, ...]]:
    kind = r.randrange(6)
    if kind == 0:
        return luhn_complete("4", 16, r), (4, 4, 4, 4)
    if kind == 1:
        return luhn_complete(r.choice(["51", "53", "55", "2221", "2720"]), 16, r), (4, 4, 4, 4)
    if kind == 2:
        return luhn_complete(r.choice(["34", "37"]), 15, r), (4, 6, 5)
    if kind == 3:
        return luhn_complete(r.choice(["6011", "65"]), 16, r), (4, 4, 4, 4)
    if kind == 4:
        return luhn_complete(r.choice(["36", "38"]), 14, r), (4, 6, 4)
    return luhn_complete("62", 19, r), (4, 4, 4, 4, 3)


def grouped(digits: str, groups: tuple[int, ...], seps: list[str]) -> str:
    out, at = [], 0
    for i, g in enumerate(groups):
        out.append(digits[at:at + g])
        at += g
        if i < len(groups) - 1:
            out.append(seps[i])
    return "".join(out)


def card(r: random.Random) -> Case:
    d, groups = card_digits(r)
    sep = r.choice(CARD_SEPS)
    seps = [sep] * (len(groups) - 1)
    if r.random() < 0.2:  # HTML and word processors mix no-break and plain spaces
        seps = [r.choice([" ", "\u00a0", "\u202f"]) for _ in seps]
    v = grouped(d, groups, seps)
    form = r.choice(["card: {v}", "paid with {v} exp 11/27", "Kartennummer {v}", "CB n° {v} — merci",
                     '{{"pan": "{v}"}}', "card={v}&cvv=123", "{v}"])
    return form.format(v=v), [v]


# ---- 5. PII and credentials in percent-encoded text ------------------------------------------

def email_address(r: random.Random) -> str:
    return (f"{rs(r, LOW, r.randint(3, 8))}{r.choice(['.', '_', '+', ''])}{rs(r, LOW, r.randint(2, 6))}"
            f"@{r.choice(['example.com', 'corp.io', 'mail.co.uk', 'acme-industries.de'])}")


def e164(r: random.Random) -> tuple[str, str]:
    """(an E.164 number, a spaced international form of it): a valid number of one of a few
    countries' plans (libphonenumber decides validity, as the rules do)."""
    while True:
        cc, n = r.choice([("1", lambda: f"{r.choice(['415', '212', '646'])}{r.randint(200, 999)}{r.randint(0, 9999):04d}"),
                          ("44", lambda: f"7{r.choice(['400', '911', '700'])}{r.randint(100000, 999999)}"),
                          ("49", lambda: f"15{r.choice(['1', '2', '7'])}{r.randint(10000000, 99999999)}"),
                          ("33", lambda: f"6{r.randint(10000000, 99999999)}"),
                          ("91", lambda: f"9{r.randint(100000000, 999999999)}")])
        national = n()
        if phonenumbers.is_valid_number(phonenumbers.parse(f"+{cc}{national}")):
            return f"+{cc}{national}", f"+{cc} {national[:3]} {national[3:6]} {national[6:]}"


def quote(v: str, plus: bool) -> str:
    return urllib.parse.quote_plus(v) if plus else urllib.parse.quote(v, safe="")


def percent_encoded(r: random.Random) -> Case:
    kind = r.randrange(6)
    plus = r.random() < 0.4
    if kind == 0:
        e = email_address(r)
        text = f"GET /v1/invite?email={quote(e, plus)}&role=viewer HTTP/1.1"
        return text, [e.split("@")[0]]
    if kind == 1:
        user, pw = r.choice(USERS), password(r)
        inner = f"https://{user}:{pw}@{r.choice(HOSTS)}/repo.git"
        return f"https://sso.example.com/login?next={quote(inner, plus)}", [pw]
    if kind == 2:
        _, spaced = e164(r)
        v = quote(spaced, plus)
        return f"https://api.example.com/callback?phone={v}&ok=1", [spaced.replace(" ", "")[-7:]]
    if kind == 3:
        e = email_address(r)
        # encoded twice: a redirect that carries an encoded URL
        inner = f"/welcome?to={quote(e, False)}"
        return f"location: /login?next={quote(inner, False)}", [e.split("@")[0]]
    if kind == 4:
        pw = password(r)
        return f"POST body: username=jdoe&password={quote(pw, True)}&remember=1", [quote(pw, True)]
    e = email_address(r)
    return f"mailto%3A{quote(e, False)}", [e.split("@")[0]]


# ---- 6. phone numbers and addresses as URI identifiers ---------------------------------------

def contact_uri(r: random.Random) -> Case:
    num, spaced = e164(r)
    kind = r.randrange(9)
    if kind == 0:
        return f"whatsapp:{num}", [num[1:]]
    if kind == 1:
        return f"tel:{spaced.replace(' ', '-')}", [spaced.split()[-1]]
    if kind == 2:
        return f"sip:{num}@sip.{r.choice(['twilio.com', 'carrier.net'])};user=phone", [num[1:]]
    if kind == 3:
        return f"sms:{num}?body=hello", [num[1:]]
    if kind == 4:
        e = email_address(r)
        return f"mailto:{e}?subject=Invoice", [e]
    if kind == 5:
        return f"https://wa.me/{num[1:]}?text=hi", [num[1:]]
    if kind == 6:
        return f"whatsapp:{num[1:]}", [num[1:]]
    if kind == 7:
        e = email_address(r)
        return f"sips:{e}", [e]
    return f"callto:{num}", [num[1:]]


# ---- 7. a value at the start of a line of JSON-encoded output ---------------------------------

def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def line_start_value(r: random.Random) -> str:
    kind = r.randrange(9)
    if kind == 0:
        d, groups = card_digits(r)
        return d if r.random() < 0.5 else grouped(d, groups, [" "] * (len(groups) - 1))
    if kind == 1:
        return e164(r)[r.randrange(2)]
    if kind == 2:
        return email_address(r)
    if kind == 3:
        return "ghp_" + rs(r, B62, 36)
    if kind == 4:
        return "sk-proj-" + rs(r, B62, 48)
    if kind == 5:
        return "AIza" + rs(r, B62 + "_-", 35)
    if kind == 6:
        claims = _b64url(json.dumps({"sub": rs(r, DIG, 8), "exp": r.randint(10**9, 2 * 10**9)}).encode())
        return f"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.{claims}.{_b64url(r.randbytes(32))}"
    if kind == 7:
        return aws_pair(r)[0]
    return "xoxb-" + rs(r, DIG, 12) + "-" + rs(r, DIG, 12) + "-" + rs(r, B62, 24)


def json_line_start(r: random.Random) -> Case:
    """Tool output as ``json.dumps`` writes it: each line after the first follows a ``\\n``
    escape, whose ``n`` glued to a value at a line's start for every boundary-anchored rule."""
    v = line_start_value(r)
    lines = [r.choice(["result:", "Found 2 matches", "OK", "---"]), v, r.choice(["done", "", "exit 0"])]
    return json.dumps({"tool": "read_file", "output": r.choice(["\n", "\r\n", "\t"]).join(lines)}), [v]
