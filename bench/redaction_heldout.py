"""A held-out generator of secret FORMATS the rules were not written from, and look-alikes that must
survive: recall of the redaction engine on what an outside corpus will hold.

    python bench/redaction_heldout.py [--texts 2000] [--seed 11]

Independent of bench/redaction_values.py and bench/redaction_corpus.py (no shared code, no shared
value shapes). Vendors are invented per value: a plausible lowercase prefix (``qz_``, ``nimbus-``,
``acme_pat_``, ``vlt-prod-``), an optional kind/environment segment, a random body over base62, hex,
base64url or base32 of varied length; dotted multi-segment tokens; credentials in command lines;
passphrases in prose; connection strings whose values hold ``&``, ``;``, ``%`` and quotes; random
values under names no keyword list holds; 32/40-hex values after credential words in prose.
Look-alikes (~40 styles): snake_case names, paths, package names, git SHAs, UUIDs, 64-hex digests
of our own telemetry, provider object ids (``msg_…``, ``call_…``, ``chatcmpl-…``), versions, CSS
classes, pod names, image digests, model names, data: URIs of images, URLs without credentials,
password-policy prose. Lenient: the value no longer appears. Strict: no run of 4+ alphanumerics of it
survives either. Last line: JSON with the figures.
"""
from __future__ import annotations

import base64
import json
import random
import re
import string
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable

from redaction_scoring import Tally, outcome
from redaction_scoring import main as scoring_main

LOW = string.ascii_lowercase
B62 = string.ascii_letters + string.digits
HEX = "0123456789abcdef"
B64U = B62 + "-_"
B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
CONTEXTS = ("prose", "shell", "json", "config", "log", "markdown")
KINDS = ("vendor_token", "dotted_token", "cli_credential", "prose_passphrase", "connection_string",
         "unlisted_key_name", "hex_after_credential_word")


def rs(r: random.Random, alphabet: str, n: int) -> str:
    return "".join(r.choice(alphabet) for _ in range(n))


def body(r: random.Random) -> str:
    """A random token body: varied alphabet and length, always with some letters and digits."""
    alpha, n = r.choice([(B62, r.randint(20, 64)), (HEX, r.choice([32, 40, 48, 64])),
                         (B64U, r.randint(24, 72)), (B32, r.randint(24, 52)),
                         (LOW + string.digits, r.randint(22, 48))])
    while True:
        b = rs(r, alpha, n)
        if any(c.isdigit() for c in b) and any(c.isalpha() for c in b):
            return b


def vendor(r: random.Random) -> str:
    # a made-up name: a syllable or two, or an initialism; never one of the rules' prefixes
    syl = ["zo", "qa", "vel", "nim", "bus", "kor", "ta", "lix", "pra", "mo", "den", "ux", "fy", "ark", "so", "ri"]
    while True:
        v = r.choice([rs(r, LOW, r.randint(2, 4)), "".join(r.choice(syl) for _ in range(r.randint(1, 3)))])
        if v not in ("sk", "rk", "gh", "ghp", "xox", "run", "msg", "call", "req", "evt", "sha", "id"):
            return v


def vendor_token(r: random.Random) -> str:
    v, b = vendor(r), body(r)
    k = r.randrange(6)
    if k == 0:
        return f"{v}_{b}"
    if k == 1:
        return f"{v}-{b}"
    if k == 2:
        return f"{v}_{r.choice(['pat', 'api', 'key', 'sec', 'live', 'tok', 'svc', 'bot', 'oat', 'rt'])}_{b}"
    if k == 3:
        return f"{v}-{r.choice(['prod', 'dev', 'stg', 'eu', 'us1', 'live'])}-{b}"
    if k == 4:
        return f"{v.upper()}{rs(r, HEX, 32)}" if len(v) <= 3 else f"{v}_{b}"  # glued: AB + 32 hex
    return f"{v}{r.choice(['_', '-'])}{rs(r, B62, r.randint(4, 8))}_{b}"  # key id segment then secret


def dotted_token(r: random.Random) -> str:
    head = r.choice([rs(r, string.ascii_uppercase, 2), vendor(r), rs(r, B62, r.randint(6, 12))])
    segs = [rs(r, B64U, r.randint(16, 48)) for _ in range(r.randint(2, 3))]
    for i, s in enumerate(segs):  # a random segment of that length has digits; make sure
        if not any(c.isdigit() for c in s):
            segs[i] = s[:-1] + r.choice(string.digits)
    return ".".join([head, *segs])


def password(r: random.Random) -> str:
    words = ["Tr0ub4dor", "blue", "Falcon", "winter", "S3cret", "dragon", "Mango", "zebra", "n1ght", "Orbit"]
    k = r.randrange(4)
    if k == 0:
        return r.choice(words) + r.choice("&;%!#@$^*") + rs(r, B62, r.randint(3, 8))
    if k == 1:
        return rs(r, B62 + "!#%&*+-.^_~", r.randint(10, 24))
    if k == 2:
        return f"{r.choice(words)}{r.randint(10, 9999)}{r.choice('!?#&%')}"
    return rs(r, B62, r.randint(12, 20))


PASSPHRASE_WORDS = ("correct horse battery staple lamp river copper violet orbit tundra maple quartz "
                    "saddle glacier pepper ribbon walnut harbor lantern cactus velvet falcon meadow").split()


def passphrase(r: random.Random) -> str:
    return " ".join(r.sample(PASSPHRASE_WORDS, r.randint(3, 6)))


@dataclass
class Planted:
    kind: str
    value: str   # what must vanish
    text: str    # the fragment that carries it


def plant(r: random.Random) -> Planted:
    k = r.choice(KINDS)
    if k == "vendor_token":
        t = vendor_token(r)
        return Planted(k, t, r.choice([t, f"token {t}", f"export {vendor(r).upper()}_CONFIG={t}",
                                       f'"value": "{t}"', f"use {t} for the upload"]))
    if k == "dotted_token":
        t = dotted_token(r)
        return Planted(k, t, r.choice([t, f"sent with {t}", f'"cred": "{t}"']))
    if k == "cli_credential":
        u, p = r.choice(["admin", "root", "deploy", "svc_ci", "jane"]), password(r)
        p = p.replace("'", "").replace('"', "")
        forms = [f"curl -u {u}:{p} https://api.internal/v2/items", f"curl --user {u}:{p} -X POST https://h/x",
                 f"mysql -h db.local -u {u} -p{p} app", f"mysqldump -u{u} --password={p} shop",
                 f"PGPASSWORD={p} psql -h db -U {u} app", f"sshpass -p '{p}' ssh {u}@bastion", f"redis-cli -h cache -a {p} ping",
                 f"docker login -u {u} -p {p} registry.local", f"smbclient //fs/share -U {u}%{p}",
                 f"openssl pkcs12 -in cert.p12 -passin pass:{p}", f"wget --http-password={p} https://h/f",
                 f"git clone https://{u}:{p}@git.local/r.git", f"mongo --username {u} --password '{p}' db"]
        return Planted(k, p, r.choice(forms))
    if k == "prose_passphrase":
        v = passphrase(r) if r.random() < 0.6 else password(r)
        forms = [f"the password is: {v}", f"The passphrase is '{v}'.", f"my password is {v}",
                 f"wifi password: {v}", f"Password for the VPN is {v}. Don't share it.",
                 f"passphrase = \"{v}\"", f"the admin pw is {v}", f"login with password \"{v}\" then",
                 f"Your temporary password: {v}", f"the master passphrase was {v}, now rotated"]
        if r.random() < 0.15:
            v = str(r.randint(1000, 999999))
            forms = [f"my PIN is {v}", f"card pin: {v}", f"the passcode is {v}"]
        return Planted(k, v, r.choice(forms))
    if k == "connection_string":
        p = password(r)
        forms = [f"Server=tcp:db.example.net,1433;Database=app;User Id=app;Password={p};Encrypt=True;",
                 f"Data Source=sql01;Initial Catalog=crm;User ID=sa;Pwd={p}",
                 f"Host=pg;Username=app;Password={p};SSL Mode=Require",
                 f"DRIVER={{ODBC Driver 18}};SERVER=s;UID=u;PWD={{{p}}};",
                 f"AccountName=stor01;AccountKey={rs(r, B62 + '+/', 86)}==;EndpointSuffix=core.windows.net",
                 f"jdbc:postgresql://db:5432/app?user=app&password={p.replace('&', '%26').replace(';', '%3B')}"
                 f"&sslmode=require",
                 f"Password='{p}';Server=x"]
        f = r.choice(forms)
        if "AccountKey=" in f:
            p = f.split("AccountKey=")[1].split(";")[0]
        elif "jdbc:" in f:
            p = f.split("password=")[1].split("&sslmode")[0]
        return Planted(k, p, f)
    if k == "unlisted_key_name":
        name = r.choice(["mfa_seed", "totp_seed", "recovery_code", "unlock_code", "kek", "dek", "hmac",
                         "sig_material", "webhook_signing", "license", "master", "enrollment_code",
                         "shared_material", "vault_unseal", "otpauth_seed", "backup_codes", "sealing_material"])
        v = rs(r, B32, 32) if "seed" in name else body(r)
        return Planted(k, v, r.choice([f"{name}={v}", f'"{name}": "{v}"', f"{name}: {v}", f"{name.upper()}='{v}'"]))
    v = rs(r, HEX, r.choice([32, 40]))
    gcp = f'"private_key_id": "{v}"'
    return Planted(k, v, r.choice([f"auth token {v}", f"the api key is {v}", f"secret {v} rotated",
                                   f"token: {v}", gcp, f"use access key {v}", f"session secret {v}"]))


def lookalike(r: random.Random) -> str:
    k = r.randrange(40)
    uuid = "-".join(rs(r, HEX, n) for n in (8, 4, 4, 4, 12))
    choices: list[Callable[[], str]] = [
        lambda: "_".join(r.sample(["user", "profile", "cache", "retry", "policy", "handler", "batch", "queue",
                                   "token", "count", "session", "store", "async", "worker"], r.randint(2, 4))),
        lambda: f"/var/lib/{r.choice(['app', 'agent', 'kafka'])}/data_{r.randint(2019, 2026)}_{rs(r, LOW, 6)}.db",
        lambda: r.choice(["scikit-learn", "python-dateutil", "types-requests", "opentelemetry-exporter-otlp-proto-grpc",
                          "sentence-transformers", "pydantic-settings", "faust-streaming", "clickhouse-connect"]),
        lambda: rs(r, HEX, 40), lambda: rs(r, HEX, 7), lambda: uuid, lambda: rs(r, HEX, 64),
        lambda: f"args_digest={rs(r, HEX, 64)}", lambda: f"fingerprint: {rs(r, HEX, 64)}",
        lambda: f"msg_01{rs(r, B62, 22)}", lambda: f"call_{rs(r, B62, 24)}", lambda: f"chatcmpl-{rs(r, B62, 29)}",
        lambda: f"toolu_01{rs(r, B62, 22)}", lambda: f"run_{rs(r, HEX, 16)}", lambda: f"req_{rs(r, B62, 24)}",
        lambda: f"v{r.randint(0, 9)}.{r.randint(0, 40)}.{r.randint(0, 99)}-rc.{r.randint(1, 9)}+build.{r.randint(1, 999)}",
        lambda: r.choice(["btn btn-primary col-md-6", "hover:bg-blue-500 text-sm", "navbar-expand-lg",
                          "css-1x2y3z4 MuiButton-root", "sc-bdVaJa-2 kLmnOp"]),
        lambda: f"{r.choice(['checkout-api', 'worker', 'agent-runner'])}-{rs(r, LOW + string.digits, 10)}-"
                f"{rs(r, LOW + string.digits, 5)}",
        lambda: f"registry.local/agent@sha256:{rs(r, HEX, 64)}",
        lambda: r.choice(["gpt-4o-2024-08-06", "claude-3-5-sonnet-20241022", "meta-llama/Llama-3.1-8B-Instruct",
                          "text-embedding-3-large", "mistral-large-2407"]),
        lambda: "data:image/png;base64," + base64.b64encode(bytes(r.randrange(256) for _ in range(60))).decode(),
        lambda: f"https://huggingface.co/{rs(r, LOW, 6)}/{rs(r, LOW, 5)}-{r.randint(1, 70)}b/resolve/main/"
                f"model-0000{r.randint(1, 4)}-of-00004.safetensors",
        lambda: f"https://github.com/{rs(r, LOW, 7)}/{rs(r, LOW, 5)}/commit/{rs(r, HEX, 40)}",
        lambda: r.choice(["the password is incorrect", "password reset link sent", "token limit exceeded",
                          "passphrase must be at least 12 words", "the password was changed yesterday",
                          "invalid token, please log in again", "secret rotation completed",
                          "the key is missing from the request", "enter your PIN to continue"]),
        lambda: f"trace_id={rs(r, HEX, 32)} span_id={rs(r, HEX, 16)}",
        lambda: f"main.{rs(r, HEX, 8)}.js", lambda: f"chunk-vendors.{rs(r, HEX, 8)}.css",
        lambda: f"{r.choice(['us-east-1', 'eu-west-2'])}:{r.randint(10**11, 10**12 - 1)}:function:ingest_{rs(r, LOW, 5)}",
        lambda: f"sha512-{base64.b64encode(bytes(r.randrange(256) for _ in range(64))).decode()}",
        lambda: f"01{rs(r, '0123456789ABCDEFGHJKMNPQRSTVWXYZ', 24)}",  # ULID
        lambda: "x86_64-unknown-linux-gnu", lambda: "en_US.UTF-8",
        lambda: f"test_{r.choice(['redaction', 'sink', 'api'])}_{rs(r, LOW, 5)}.py::test_{rs(r, LOW, 8)}",
        lambda: f"node-{r.randint(1, 99)}.{rs(r, LOW, 4)}.svc.cluster.local",
        lambda: f"cus_{rs(r, B62, 14)}", lambda: f"idempotency-key: {uuid}",
        lambda: f"org.apache.kafka:kafka-clients:{r.randint(2, 3)}.{r.randint(0, 9)}.{r.randint(0, 9)}",
        lambda: f"etag W/\"{rs(r, HEX, 32)}\"", lambda: f"s3://agent-logs/{r.randint(2019, 2026)}/{rs(r, LOW, 8)}.jsonl.gz",
        lambda: f"build-{r.randint(1000, 99999)}-{rs(r, HEX, 7)}", lambda: f"api_version=2024-{r.randint(1, 12):02d}-01",
    ]
    return choices[k % len(choices)]()


@dataclass
class Case:
    id: int
    context: str
    text: str
    planted: list[Planted]
    lookalikes: list[str] = field(default_factory=list)


def place(r: random.Random, ctx: str, items: list[str]) -> str:
    if ctx == "json":
        return json.dumps({"tool": "shell", "notes": items, "step": r.randint(1, 40)})
    if ctx == "shell":
        return "$ " + "\n$ ".join(items)
    if ctx == "config":
        return "\n".join(f"{rs(r, LOW, 5)}_{i} = {it}" if r.random() < 0.3 else it for i, it in enumerate(items))
    if ctx == "log":
        return "\n".join(f"2026-0{r.randint(1, 9)}-1{r.randint(0, 9)}T0{r.randint(0, 9)}:12:00Z INFO {it}"
                         for it in items)
    if ctx == "markdown":
        return "\n".join(f"- `{it}`" if r.random() < 0.5 else f"* {it}" for it in items)
    fill = ["Here you go:", "I ran", "note that", "and then", "OK,", "as requested,"]
    return " ".join(f"{r.choice(fill)} {it}" for it in items)


def generate(n: int, seed: int) -> list[Case]:
    r = random.Random(seed)
    out = []
    for i in range(n):
        ctx = CONTEXTS[i % len(CONTEXTS)]
        planted = [plant(r) for _ in range(r.randint(0, 2))]
        looks = [lookalike(r) for _ in range(r.randint(1, 3))]
        items = [p.text for p in planted] + looks
        r.shuffle(items)
        if ctx == "json":  # a look-alike with a quote is escaped in the text: look for what is there
            looks = [json.dumps(x)[1:-1] for x in looks]
        out.append(Case(i, ctx, place(r, ctx, items), planted, looks))
    return out


def evaluate(cases: list[Case], redact: Callable[[str], str]) -> dict:
    per = Tally()
    kept, lost = [0, 0], defaultdict(int)
    misses: list[tuple[str, str]] = []
    lost_examples: list[str] = []
    for c in cases:
        out = redact(c.text)
        for p in c.planted:
            lenient, strict = outcome(c.text, out, p.value)
            per.add((p.kind, "overall"), lenient, strict)
            if not strict and len(misses) < 60:
                misses.append((p.kind, p.text))
        for x in c.lookalikes:
            kept[1] += 1
            ok = x in out
            kept[0] += ok
            if not ok:
                lost[re.sub(r"[0-9a-f]{6,}|\d+", "#", x)[:30]] += 1
                if len(lost_examples) < 40:
                    lost_examples.append(x)
    return {"per_kind": per.rates(), "lookalikes_kept": kept[0] / max(kept[1], 1), "lookalikes": kept[1],
            "misses": misses, "lost": lost_examples}


if __name__ == "__main__":
    scoring_main(generate, evaluate, 2000, 11, ("per_kind",), "min_kind_recall")
