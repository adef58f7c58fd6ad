"""The look-alikes the format rules must leave alone, and every generator by name
(redaction_format_cases.py, redaction_encoding_cases.py)."""
from __future__ import annotations

import json
import random
from typing import Callable

from .redaction_encoding_cases import CARD_SEPS, card, card_digits, contact_uri, grouped, json_line_start, percent_encoded
from .redaction_format_cases import (B62, DIG, HEX, HOSTS, UP, USERS, Case, aws_secret, github_netrc, localized_password,
                                     netrc, pgpass, putty_key, rs, yaml_block)


# ---- look-alikes that must survive -----------------------------------------------------------

def near_miss(r: random.Random) -> tuple[str, str]:
    """(a text, the part of it that must survive verbatim: the whole text unless it holds a real
    secret beside the look-alike, as an AWS key id beside a commit SHA does)."""
    d, groups = card_digits(r)
    while len(d) == 19:  # (4-4-4-4-3 whose first 16 pass Luhn reads as a card and its CVV: taken)
        d, groups = card_digits(r)
    sha, path = rs(r, HEX, 40), "src/components/authentication/LoginForms"
    bad = d[:-1] + str((int(d[-1]) + r.randint(1, 9)) % 10)  # Luhn fails
    num = r.randint(1000, 9999)
    pool: list[Callable[[], str]] = [
        # netrc / pgpass / PuTTY / YAML words in other roles
        lambda: "the build machine rejected the login because the password expired",
        lambda: "machine learning models need no login; password strength is a separate check",
        lambda: f"machine {r.choice(HOSTS[:3])} is up, login succeeded",
        lambda: "# hostname:port:database:username:password",
        lambda: f"{r.choice(['worker', 'app', 'tasks'])}.py:{r.randint(10, 999)}:{r.choice(['run_job', 'main'])}:ERROR:timeout",
        lambda: f"user:{r.randint(1, 999)}:profile:name:{r.choice(['first', 'last'])}",
        lambda: f"session:{r.randint(100, 9999)}:cart:item:{r.randint(1, 9)}",
        lambda: f"postgres://{r.choice(USERS)}@localhost:5432/app",
        lambda: f"localhost:{r.choice([5432, 6379, 8080])}",
        lambda: "fe80:0:0:0:1ff",
        lambda: f"12:{r.randint(10, 59)}:{r.randint(10, 59)}:{r.randint(100, 999)}:INFO",
        lambda: "PuTTY-User-Key-File-3 is the header of a .ppk file; Private-Lines counts the lines that follow",
        lambda: f"description: |\n  This service needs a password to start.\n  Ask the {r.choice(['team', 'on-call'])}.\n",
        lambda: "password_policy: |\n  min 12 characters\n  one digit\n",
        lambda: "password: |\n  ${DB_PASSWORD}\n",
        lambda: "script: |\n  echo starting\n  ./run.sh --verbose\n",
        lambda: "password_hint: >-\n  the usual one\n",
        # AWS: a key id beside 40-char things that are not secrets
        lambda: (f"AKIA{rs(r, UP + DIG, 16)} rotated in commit {sha}", f" rotated in commit {sha}"),
        lambda: (f"AKIA{rs(r, UP + DIG, 16)}, {sha.upper()}", sha.upper()),
        lambda: (f"user AKIA{rs(r, UP + DIG, 16)} path {path}", f" path {path}"),
        lambda: (f"AKIA{rs(r, UP + DIG, 16)} s3://bucket/{path}/index", f"/{path}/index"),
        lambda: (f"AccessKeyId ASIA{rs(r, UP + DIG, 16)} expires 2026-12-07T15:00:00Z", " expires 2026-12-07T15:00:00Z"),
        lambda: f"sha1 {sha.upper()} for the object, aws region eu-west-1",
        # other languages: sentences about a password, placeholders, lengths
        lambda: "mot de passe oublié ?", lambda: "Passwort vergessen?", lambda: "密码错误，请重试",
        lambda: "пароль: неверный", lambda: "contraseña: ********", lambda: "Passwortlänge: 12",
        lambda: "密码长度：12", lambda: "La contraseña debe tener 12 caracteres", lambda: "senha: <redacted>",
        lambda: "パスワードを忘れた場合", lambda: "hasło: ${HASLO}", lambda: "Kennwort: erforderlich",
        lambda: "wachtwoord: onjuist",
        # cards: Luhn failing, versions, dates, addresses with the same separators
        # (a dot between 4-digit groups is the loose phone pattern's already: not a card's to judge)
        lambda: grouped(bad, groups, [r.choice(CARD_SEPS[1:])] * (len(groups) - 1)),
        lambda: f"v{r.randint(1, 9)}.{r.randint(0, 20)}.{num}.{r.randint(1000, 9999)}",
        lambda: f"{r.randint(2020, 2026)}.{r.randint(1, 12):02d}.{r.randint(1, 28):02d}",
        lambda: f"1.3.6.1.4.1.{num}.{r.randint(1, 9)}",
        lambda: f"9{rs(r, DIG, 3)}\u00a0{rs(r, DIG, 4)}\u00a0{rs(r, DIG, 4)}\u00a0{rs(r, DIG, 4)}",
        lambda: f"ticket {num}\u2013{r.randint(1000, 9999)}",
        # percent-encoded text that holds no PII
        lambda: f"https://example.com/search?q=hello%20world&page={r.randint(1, 9)}",
        lambda: "file:///Users/me/My%20Documents/report%202024.pdf",
        lambda: f"?q=order%20%23{r.randint(100000, 999999)}",
        lambda: "?filter=%7B%22status%22%3A%22open%22%7D",
        lambda: "?ts=2024-01-01T12%3A00%3A00Z&tz=Europe%2FParis",
        lambda: f"?size=1920%C3%971080&n={r.randint(1, 99)}",
        lambda: "?range=100-200%2C300-400",
        lambda: "/wiki/Caf%C3%A9_au_lait",
        lambda: f"?page={r.randint(2, 9)}%20of%2010",
        lambda: "?utm_source=news%40letter&utm_medium=email",
        lambda: "?q=password%20reset%20link",
        # URIs that are not contacts
        lambda: "arn:aws:iam::123456789012:role/deploy",
        lambda: "spotify:track:4uLU6hMCjMI75M1A2tKUQC",
        lambda: "urn:isbn:9780306406157",
        lambda: f"geo:37.{r.randint(1000, 9999)},-122.{r.randint(1000, 9999)}",
        lambda: "tel:+10000000000",
        lambda: f"job:{r.randint(1, 999)}:+{r.randint(1, 99)}",
        lambda: "sip:conference-room-4",
        lambda: "whatsapp:status",
        lambda: "callto:support",
        # JSON-encoded lines that start with ids, versions and dates
        lambda: json.dumps({"output": f"ok\nrun_{rs(r, HEX, 16)}\nv{r.randint(1, 9)}.{r.randint(0, 20)}.3\n2026-12-07T15:00:00Z"}),
        lambda: json.dumps({"output": f"sha\n{sha}\n{r.randint(10**12, 2 * 10**12)}\nmsg_01{rs(r, B62, 22)}"}),
    ]
    x = r.choice(pool)()
    return x if isinstance(x, tuple) else (x, x)


GENERATORS: dict[str, Callable[[random.Random], Case]] = {
    "netrc": netrc, "github_netrc": github_netrc, "pgpass": pgpass, "putty_key": putty_key,
    "yaml_block": yaml_block, "aws_secret": aws_secret, "localized_password": localized_password,
    "card": card, "percent_encoded": percent_encoded, "contact_uri": contact_uri, "json_line_start": json_line_start,
}
