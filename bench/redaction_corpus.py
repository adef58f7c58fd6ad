"""A seeded generator of realistic texts with planted secrets/PII and look-alikes, and the recall
report of ``agentstream redact``'s engine on it, per category and per context, strict and lenient.

    python bench/redaction_corpus.py [--texts 3000] [--seed 7]

Lenient: the planted value no longer appears verbatim. Strict: no alphanumeric run of 4+
characters of it survives either (a half-masked phone number fails strict). Look-alikes (UUIDs,
SHAs, order/run ids, timestamps, versions, prices, ISBNs, token counts…) must survive verbatim.
Every value is drawn fresh from the seed: nothing here is copied from an example.
Last line: JSON with the figures.
"""
from __future__ import annotations

import random
import string
from dataclasses import dataclass, field
from typing import Callable

import phonenumbers

from redaction_scoring import Tally, outcome
from redaction_scoring import main as scoring_main
from redaction_values import A, D, H, _luhn_complete, _s, card, iban, jwt, phone_intl, rand_secret, ssn_digits, valid_mobile

CONTEXTS = ("chat", "env", "locals", "sql", "json_args", "url", "http_headers", "log", "yaml")


SECRET_NAMES = ("password", "db_password", "DB_PASS", "passwd", "private_token", "encryption_key",
                "SECRET", "client_secret", "api_key", "apiKey", "auth_token", "signing_key", "webhook_secret",
                "passphrase", "REDIS_PASSWORD", "access_token", "refresh_token", "x-api-key", "SECRET_KEY",
                "jwtSecret", "smtp_password", "master_key", "session_token", "credentials", "app_secret",
                "adminPassword", "GITHUB_TOKEN", "service_account_key", "hmac_secret", "private_key_passphrase",
                "MYSQL_ROOT_PASSWORD", "stripeSecret", "oauth_client_secret", "Ocp-Apim-Subscription-Key",
                "X-Auth-Token", "db.password", "spring.datasource.password", "licenseKey", "BOT_TOKEN",
                "id_token", "cookie_secret", "sessionToken", "SENDGRID_API_KEY", "PGPASSWORD", "pwd",
                "bearer_token", "deploy_key", "aes_key", "ENCRYPTION_KEY", "secretKey", "api-key", "pass",
                "TWILIO_AUTH_TOKEN", "npm_token", "X-Vault-Token", "signingSecret", "AZURE_CLIENT_SECRET",
                "csrftoken", "mysql_pwd", "ldap_bind_password", "kafka.sasl.password", "ssh_passphrase",
                "DJANGO_SECRET_KEY", "NEXTAUTH_SECRET", "openai_api_key", "HF_TOKEN", "slack_signing_secret")
NATIONAL_ID_NAMES = ("cpf", "aadhaar", "SIN", "bsn", "pesel", "steuer_id", "tax_id", "passport_number",
                     "national_id", "nhs_number", "personnummer", "dni")
AWS_SECRET_NAMES = ("secret_access_key", "aws_secret_access_key", "AWS_SECRET_ACCESS_KEY", "secretAccessKey",
                    "aws_secret_key", "SecretAccessKey")
SSN_NAMES = ("ssn", "SSN", "social_security_number", "socialSecurityNumber", "ssn_number", "customer_ssn")
PHONE_NAMES = ("phone", "CALLBACK_NUMBER", "mobile", "phone_number", "contactPhone", "tel", "whatsapp")


@dataclass
class Planted:
    category: str
    value: str
    key: str | None = None  # a name to assign it to, or None for prose


def plant(r: random.Random) -> Planted:
    c = r.choice(["email", "phone_intl", "payment_card", "iban", "us_ssn", "us_ssn_keyed", "aws_access_key_id",
                  "aws_secret_keyed", "us_ssn_prose", "openai_key", "github_token", "slack_token", "stripe_key", "google_api_key",
                  "jwt", "bearer_token", "url_credentials", "secret_keyed", "ipv4", "ipv6", "uk_nino",
                  "phone_keyed", "private_key", "national_id_keyed", "phone_national_prose"])
    if c == "national_id_keyed":
        key = r.choice(NATIONAL_ID_NAMES)
        shape = r.choice(["###.###.###-##", "#### #### ####", "### ### ###", "#########", "###########",
                          "########A", "##########"])
        if r.random() < 0.35:  # in prose: "my CPF is …", "Aadhaar no. …"
            key = r.choice([f"my {key} is", f"{key} no.", f"{key} number", f"{key} #"])
        return Planted("national_id_other", "".join(r.choice(D) if ch == "#" else ch for ch in shape), key)
    if c == "phone_national_prose":
        cand = valid_mobile(r, ("GB", "DE", "FR", "US", "IN", "BR", "ES", "IT"))
        nat = phonenumbers.format_number(cand, phonenumbers.PhoneNumberFormat.NATIONAL)
        return Planted("phone_intl", nat, r.choice(["call me on", "my number is", "ring", "mobile:", "tel.",
                                                    "mi teléfono es", "Telefonnummer:", "Handy:", "celular:",
                                                    "número:", "telefono", "Tel.:"]))
    if c == "email":
        return Planted(c, f"{r.choice(['jane', 'li.wei', 'o.brien', 'ana-maria', 'k.tanaka', 'ops+alerts'])}"
                          f"{r.randint(1, 999)}@{r.choice(['example.com', 'mail.co.uk', 'corp.io', 'gmx.de'])}")
    if c == "phone_intl":
        return Planted(c, phone_intl(r))
    if c == "phone_keyed":
        return Planted("phone_intl", phone_intl(r), r.choice(PHONE_NAMES))
    if c == "payment_card":
        return Planted(c, card(r))
    if c == "iban":
        return Planted(c, iban(r))
    if c == "us_ssn":
        return Planted(c, "-".join(ssn_digits(r)))
    if c == "us_ssn_prose":
        return Planted("us_ssn", r.choice(["", " "]).join(ssn_digits(r)), r.choice(
            ["my social security number is", "SSN", "Social Security No.", "ssn#"]))
    if c == "us_ssn_keyed":
        return Planted("us_ssn", r.choice(["", " ", "-"]).join(ssn_digits(r)), r.choice(SSN_NAMES))
    if c == "aws_access_key_id":
        return Planted("api_key", r.choice(["AKIA", "ASIA"]) + _s(r, string.ascii_uppercase + D, 16))
    if c == "aws_secret_keyed":
        return Planted("aws_secret_key", _s(r, A + D + "/+", 40), r.choice(AWS_SECRET_NAMES))
    if c == "openai_key":
        return Planted("api_key", r.choice(["sk-proj-", "sk-"]) + _s(r, A + D, 48))
    if c == "github_token":
        return Planted("api_key", r.choice(["ghp_", "gho_", "ghs_"]) + _s(r, A + D, 36))
    if c == "slack_token":
        return Planted("api_key", f"xoxb-{_s(r, D, 11)}-{_s(r, D, 12)}-{_s(r, A + D, 24)}")
    if c == "stripe_key":
        return Planted("api_key", f"{r.choice(['sk', 'rk'])}_{r.choice(['live', 'test'])}_{_s(r, A + D, 24)}")
    if c == "google_api_key":
        return Planted("api_key", "AIza" + _s(r, A + D + "_-", 35))
    if c == "jwt":
        return Planted(c, jwt(r))
    if c == "bearer_token":
        return Planted(c, _s(r, A + D + "._-", r.randint(24, 48)), "Authorization: Bearer")
    if c == "url_credentials":
        return Planted(c, f"{r.choice(['svc', 'admin', 'app_user'])}:{rand_secret(r).replace('@', 'a').replace('/', 'b')}")
    if c == "secret_keyed":
        return Planted("secret_assignment", rand_secret(r), r.choice(SECRET_NAMES))
    if c == "ipv4":
        return Planted(c, f"{r.randint(11, 223)}.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(1, 254)}")
    if c == "ipv6":
        return Planted(c, ":".join(_s(r, H, 4) for _ in range(8)) if r.random() < 0.5 else
                       f"2001:db8:{_s(r, H, 4)}::{_s(r, H, 3)}")
    if c == "uk_nino":
        prefix = r.choice([a + b for a in "ABCEHJKLMNPRSTWXYZ" for b in "ABCEHJKLMNPRSTWXYZ"
                           if a + b not in ("BG", "GB", "NK", "KN", "TN", "NT", "ZZ")])
        digits = _s(r, D, 6)
        if r.random() < 0.4:
            digits = " ".join(digits[i:i + 2] for i in (0, 2, 4)) + " "
        return Planted("national_id_other", f"{prefix}{' ' if digits[-1] == ' ' else ''}{digits}{r.choice('ABCD')}")
    body = "\n".join(_s(r, A + D + "+/", 64) for _ in range(r.randint(2, 4)))
    return Planted("private_key", f"-----BEGIN RSA PRIVATE KEY-----\n{body}\n-----END RSA PRIVATE KEY-----")


def _not_luhn(r: random.Random, n: int, prefix: str = "") -> str:
    """A long number that is no card: a number passing Luhn with a card prefix IS card-shaped."""
    good = _luhn_complete(r, prefix or r.choice("123456789"), n)
    return good[:-1] + str((int(good[-1]) + 1) % 10)


def lookalike(r: random.Random) -> str:
    k = r.randrange(16)
    if k == 0:
        return "-".join(_s(r, H, n) for n in (8, 4, 4, 4, 12))
    if k == 1:
        return _s(r, H, r.choice([40, 64, 7, 12]))
    if k == 2:
        return f"{r.choice(['ORD', 'INV', 'PO', 'ord'])}-{r.randint(2019, 2026)}-{r.randint(100000, 999999)}"
    if k == 3:
        return f"{r.randint(2019, 2026)}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}T{r.randint(0, 23):02d}:" \
               f"{r.randint(0, 59):02d}:{r.randint(0, 59):02d}.{r.randint(0, 999):03d}Z"
    if k == 4:
        return f"run_{_s(r, H, 16)}" if r.random() < 0.5 else f"{r.choice(['run', 'sess', 'step', 'evt'])}-{_s(r, A + D, 12)}"
    if k == 5:
        return f"v{r.randint(0, 12)}.{r.randint(0, 40)}.{r.randint(0, 200)}"
    if k == 6:
        return f"${r.randint(1, 99999)}.{r.randint(0, 99):02d}"
    if k == 7:
        return f"978-{r.randint(0, 9)}-{r.randint(100, 999)}-{r.randint(10000, 99999)}-{r.randint(0, 9)}"
    if k == 8:
        return str(r.randint(1_600_000_000_000, 1_800_000_000_000))
    if k == 9:
        return _not_luhn(r, 16, "4")
    if k == 10:
        return f"{r.choice(['max_tokens', 'token_count', 'input_tokens', 'prompt_tokens'])}={r.randint(1, 200000)}"
    if k == 11:
        return f"trace_id={_s(r, H, 32)}"
    if k == 12:
        return f"{r.choice(['gpt-4o-2024-08-06', 'claude-3-5-sonnet-20241022', 'llama-3.1-70b'])}"
    if k == 13:
        return f"pod/{r.choice(['api', 'worker'])}-{_s(r, H, 10)}-{_s(r, string.ascii_lowercase + D, 5)}"
    if k == 14:
        return r.choice([f"{r.randint(1, 23)}:{r.randint(0, 59):02d}:{r.randint(0, 59):02d}",
                         f"sha256:{_s(r, H, 64)}", f"v{r.randint(1, 3)}.{r.randint(0, 9)}.{r.randint(0, 9)}-"
                         f"{r.randint(1, 99)}-g{_s(r, H, 7)}", f"{r.choice('45')}{_s(r, D, 12)}",
                         f"{r.uniform(-80, 80):.4f},{r.uniform(-170, 170):.4f}",
                         ":".join(_s(r, H, 2) for _ in range(6)), f"2024{_s(r, D, 10)}",
                         f"{r.randint(1_600_000_000, 1_800_000_000)}", f"#{_s(r, H, 6)}",
                         f"etag {_s(r, H, 32)}", f"order {_not_luhn(r, 16)}",
                         f"build {r.randint(2019, 2026)}.{r.randint(1, 12):02d}.{r.randint(1, 28):02d}.{r.randint(1000, 2359)}",
                         f"PR #{r.randint(100, 99999)}", f"latency_ms={r.uniform(1, 9999):.2f}",
                         f"bytes={r.randint(1, 10**9)}", f"port {r.randint(1024, 65535)}",
                         f"{r.randint(2019, 2026)}-W{r.randint(1, 52):02d}", f"JIRA-{r.randint(1, 99999)}",
                         f"ts={r.randint(1_600_000_000_000, 1_800_000_000_000)}", f"pid={r.randint(2, 4_000_000)}",
                         f"0x{_s(r, H, 12)}", f"chrome/{r.randint(90, 130)}.0.{r.randint(1000, 9999)}.{r.randint(10, 250)}",
                         f"exit code {r.randint(0, 255)}", f"UTC+{r.randint(1, 12)}:{r.choice(['00', '30'])}"])
    if r.random() < 0.5:  # settings under sensitive-sounding names that hold no secret
        return r.choice([f"auth_method: {r.choice(['oauth2', 'saml', 'basic'])}", "token_type=bearer",
                         f"cookie_max_age={r.randint(60, 86400)}", f"password_min_length={r.randint(8, 16)}",
                         f"secret_name=prod/{r.choice(['db', 'api', 'smtp'])}", f"session_timeout={r.randint(5, 120)}",
                         f"api_key_id=key_{_s(r, H, 8)}", f"max_tokens={r.randint(64, 8192)}",
                         f"signature_method=HMAC-SHA{r.choice(['1', '256'])}", "cookie_samesite=Lax",
                         f"token_count: {r.randint(1, 99999)}", f"secret_rotation_days={r.randint(7, 90)}"])
    return f"idempotency_key={'-'.join(_s(r, H, n) for n in (8, 4, 4, 4, 12))}"


def _assign(r: random.Random, ctx: str, key: str, value: str) -> str:
    if key == "Authorization: Bearer":
        return f"Authorization: Bearer {value}" if ctx != "json_args" else f'"authorization": "Bearer {value}"'
    if " " in key or "#" in key or key.endswith((":", ".")) or key == "SSN" and r.random() < 0.3:  # prose words
        return f"{key} {value}" if r.random() < 0.5 or key[-1] in ":." else f"{key}: {value}"
    forms = {
        "env": [f"{key.upper()}={value}", f'export {key.upper()}="{value}"', f"{key}='{value}'"],
        "locals": [f"{key} = '{value}'", f"'{key}': '{value}'", f"{key}={value!r}"],
        "sql": [f"SET {key} = '{value}';", f"UPDATE users SET {key} = '{value}' WHERE id = 42;",
                f"WHERE {key} = '{value}'"],
        "json_args": [f'"{key}": "{value}"', f'\\"{key}\\": \\"{value}\\"', f'"{key}":"{value}"'],
        "url": [f"https://api.example.com/v1/cb?user=9&{key}={value}&page=2", f"?{key}={value}"],
        "http_headers": [f"{key}: {value}", f"X-{key}: {value}"],
        "log": [f"level=info msg=login {key}={value} took=12ms", f"[WARN] {key}: {value}"],
        "yaml": [f"{key}: {value}", f"  {key}: \"{value}\""],
        "chat": [f"my {key} is {key}={value}", f"use {key}: {value} for now", f"{key} = '{value}'"],
    }[ctx] + [f"{key} => '{value}'", f'{key} := "{value}"', f"<{key}>{value}</{key}>", f"--{key} {value}",
              f"-e {key.upper()}={value}", f'{key}: "{value}"', f"{key}={value}"]
    if ctx in ("json_args", "url", "http_headers", "sql") and r.random() < 0.7:
        return r.choice(forms[:len(forms) - 7])
    return r.choice(forms)


def _place(r: random.Random, ctx: str, items: list[str]) -> str:
    """A text of the context's shape around the given fragments."""
    if ctx == "json_args":
        inner = ", ".join(f'\\"note{i}\\": \\"{it}\\"' if '"' not in it else it.replace('"', '\\"')
                          for i, it in enumerate(items))
        return '{"tool": "lookup", "arguments": "{' + inner + '}", "call_id": "c_' + _s(r, A + D, 8) + '"}'
    if ctx == "env":
        return "\n".join(["PATH=/usr/local/bin:/usr/bin", "HOME=/home/app", *items, "LANG=en_US.UTF-8"])
    if ctx == "locals":
        return "Traceback (most recent call last):\n  File \"app/handler.py\", line 88, in handle\n" \
               "    locals: " + "; ".join(items)
    if ctx == "sql":
        return " ".join(["-- migration", *items, "COMMIT;"])
    if ctx == "url":
        return "GET " + " ".join(items) + " HTTP/1.1"
    if ctx == "http_headers":
        return "\r\n".join(["POST /v1/chat HTTP/1.1", "Host: api.example.com", *items, "Accept: */*"])
    if ctx == "log":
        return "\n".join(f"2025-0{r.randint(1, 9)}-1{r.randint(0, 9)} 10:0{r.randint(0, 9)}:00 {it}" for it in items)
    if ctx == "yaml":
        return "service:\n  name: billing\n" + "\n".join("  " + it for it in items)
    fill = ["Sure, here are the details:", "Please check", "and also", "thanks!", "FYI", "as discussed"]
    return " ".join(f"{r.choice(fill)} {it}" for it in items)


@dataclass
class Case:
    id: int
    context: str
    text: str
    planted: list[Planted]
    lookalikes: list[str] = field(default_factory=list)


def generate(n: int, seed: int) -> list[Case]:
    r = random.Random(seed)
    out = []
    for i in range(n):
        ctx = CONTEXTS[i % len(CONTEXTS)]
        planted = [plant(r) for _ in range(r.randint(1, 2))]
        looks = [lookalike(r) for _ in range(r.randint(1, 3))]
        items: list[str] = []
        for p in planted:
            if p.key:
                items.append(_assign(r, ctx, p.key, p.value))
            elif p.category == "url_credentials":
                items.append(f"postgres://{p.value}@db.internal:5432/app")
            else:
                items.append(p.value)
        items += [f"ref {x}" if ctx in ("chat", "log") else x for x in looks]
        r.shuffle(items)
        out.append(Case(i, ctx, _place(r, ctx, items), planted, looks))
    return out


def evaluate(cases: list[Case], redact: Callable[[str], str]) -> dict:
    cat, ctx = Tally(), Tally()
    kept = [0, 0]
    misses: list[tuple[str, str, str]] = []
    for c in cases:
        out = redact(c.text)
        for p in c.planted:
            lenient, strict = outcome(c.text, out, p.value)
            cat.add((p.category, "overall"), lenient, strict)
            ctx.add((c.context,), lenient, strict)
            if not strict and len(misses) < 40:
                misses.append((p.category, c.context, p.value))
        for x in c.lookalikes:
            kept[1] += 1
            kept[0] += x in out
    return {"per_category": cat.rates(), "per_context": ctx.rates(),
            "lookalikes_kept": kept[0] / max(kept[1], 1), "lookalikes": kept[1], "misses": misses}


if __name__ == "__main__":
    scoring_main(generate, evaluate, 3000, 7, ("per_category", "per_context"), "min_category_recall")
