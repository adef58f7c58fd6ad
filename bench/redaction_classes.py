"""Recall on the secret classes earlier rounds let slip, and the near-misses that must survive.

    python bench/redaction_classes.py [--texts 4000] [--seed 6] [--records 20000]

Classes: vendor tokens of documented formats (59 vendors: cloud, CI, chat, payment, LLM providers),
random secret bodies with NO digits after a credential name (six alphabets, fifteen syntaxes), and
one plain word as a password in prose. Near-misses (UUIDs, SHAs, base64 images, hex digests,
identifiers, password-policy prose) must survive. Also times the raw-record prefilter with and
without the vendor triggers side by side on the same clean records. Last line: JSON of the figures.

Each generator draws a random body of the documented alphabet and length (never a fixed example),
and ``surround`` puts it in the places an agent's telemetry carries it: JSON, ``key=value``, prose,
URLs, log lines, YAML and multi-line text. Shapes follow the vendors' documented formats (and the
public gitleaks rule list); they are facts about the tokens, no code is shared with the rules.
"""
from __future__ import annotations

import argparse
import base64
import json
import random
import string
import sys
from dataclasses import dataclass
from typing import Callable

from redaction_scoring import Tally, outcome

LOW, UP, DIG = string.ascii_lowercase, string.ascii_uppercase, string.digits
HEX, B62 = "0123456789abcdef", string.ascii_letters + string.digits
B64U = B62 + "-_"
B64 = B62 + "+/"


def rs(r: random.Random, alphabet: str, n: int) -> str:
    return "".join(r.choice(alphabet) for _ in range(n))


def mixed(r: random.Random, alphabet: str, n: int) -> str:
    """A draw that holds a letter and a digit (a real token of that length almost always does)."""
    while True:
        v = rs(r, alphabet, n)
        if any(c.isdigit() for c in v) and any(c.isalpha() for c in v):
            return v


def _discord(r: random.Random) -> str:
    uid = str(r.randint(10**16, 10**19 - 1))
    head = base64.b64encode(uid.encode()).decode().rstrip("=")
    return f"{head}.{rs(r, B64U, 6)}.{mixed(r, B64U, r.randint(27, 38))}"


def _atlassian(r: random.Random) -> str:
    return "ATATT3x" + mixed(r, B64U, r.randint(170, 186)) + "=" + rs(r, "0123456789ABCDEF", 8)


def _telegram(r: random.Random) -> str:
    tail = ("AA" + mixed(r, B64U, 33)) if r.random() < 0.7 else mixed(r, B64U, 35)
    return f"{r.randint(10**7, 10**10 - 1)}:{tail}"


# (vendor, generator): cloud, CI, chat, payment and LLM-provider credentials an agent may print.
VENDORS: tuple[tuple[str, object], ...] = (
    ("databricks", lambda r: "dapi" + rs(r, HEX, 32) + r.choice(["", "-2", "-3"])),
    ("atlassian", _atlassian),
    ("discord_bot", _discord),
    ("telegram_bot", _telegram),
    ("age_secret_key", lambda r: "AGE-SECRET-KEY-1" + rs(r, "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L", 58)),
    ("onepassword_secret_key", lambda r: f"A3-{rs(r, UP + DIG, 6)}-{rs(r, UP + DIG, 11)}-"
                                         f"{rs(r, UP + DIG, 5)}-{rs(r, UP + DIG, 5)}-{rs(r, UP + DIG, 5)}"),
    ("alibaba_key_id", lambda r: "LTAI" + mixed(r, B62, 20)),
    ("bedrock_long_lived", lambda r: "ABSK" + mixed(r, B64, r.randint(109, 160))),
    ("azure_ad_client_secret", lambda r: f"{rs(r, B62, 3)}{r.choice(DIG)}Q~{mixed(r, B62 + '_~.-', 34)}"),
    ("cloudflare_origin_ca", lambda r: f"v1.0-{rs(r, HEX, 24)}-{rs(r, HEX, 146)}"),
    ("digitalocean", lambda r: r.choice(["doo", "dop", "dor"]) + "_v1_" + rs(r, HEX, 64)),
    ("doppler", lambda r: "dp." + r.choice(["pt", "st", "ct", "sa", "scim"]) + "." + mixed(r, B62, 43)),
    ("flyio", lambda r: r.choice(["fo1_" + mixed(r, B64U, 43), "fm2_" + mixed(r, B64, 120)])),
    ("gitlab", lambda r: r.choice(["glpat-", "gldt-", "glft-", "glrt-", "glsoat-", "glffct-", "gloas-"])
     + mixed(r, B64U, 20)),
    ("gitlab_runner_registration", lambda r: "GR1348941" + mixed(r, B64U, 20)),
    ("grafana", lambda r: r.choice(["glc_" + mixed(r, B64, 48), f"glsa_{mixed(r, B62, 32)}_{rs(r, HEX, 8)}"])),
    ("harness", lambda r: f"{r.choice(['pat', 'sat'])}.{mixed(r, B64U, 22)}.{mixed(r, B62, 24)}.{mixed(r, B62, 20)}"),
    ("terraform_cloud", lambda r: f"{rs(r, LOW + DIG, 14)}.atlasv1.{mixed(r, B64U, 67)}"),
    ("heroku_v2", lambda r: r.choice(["HRKU-AA" + mixed(r, B64U, 58), "HRKU-" + "-".join(
        rs(r, "0123456789ABCDEF", n) for n in (8, 4, 4, 4, 12))])),
    ("huggingface", lambda r: r.choice(["hf_", "api_org_"]) + rs(r, string.ascii_letters, 34)),
    ("infracost", lambda r: "ico-" + mixed(r, B62, 32)),
    ("linear", lambda r: "lin_api_" + mixed(r, B62, 40)),
    ("new_relic", lambda r: r.choice(["NRAK-" + mixed(r, UP + DIG, 27), "NRJS-" + mixed(r, HEX, 19),
                                      "NRII-" + mixed(r, LOW + DIG, 32)])),
    ("notion", lambda r: r.choice([f"ntn_{rs(r, DIG, 11)}{mixed(r, B62, 35)}", "secret_" + mixed(r, B62, 43)])),
    ("npm", lambda r: "npm_" + mixed(r, B62, 36)),
    ("perplexity", lambda r: "pplx-" + mixed(r, B62, 48)),
    ("planetscale", lambda r: r.choice(["pscale_tkn_", "pscale_oauth_", "pscale_pw_"]) + mixed(r, B64U, 43)),
    ("postman", lambda r: f"PMAK-{rs(r, HEX, 24)}-{rs(r, HEX, 34)}"),
    ("prefect", lambda r: "pnu_" + mixed(r, B62, 36)),
    ("pulumi", lambda r: "pul-" + rs(r, HEX, 40)),
    ("rubygems", lambda r: "rubygems_" + rs(r, HEX, 48)),
    ("sentry", lambda r: "sntryu_" + rs(r, HEX, 64)),
    ("shopify", lambda r: r.choice(["shpat_", "shpca_", "shppa_", "shpss_"]) + rs(r, HEX, 32)),
    ("slack_app", lambda r: f"xapp-1-{rs(r, UP + DIG, 11)}-{rs(r, DIG, 13)}-{rs(r, HEX, 64)}"),
    ("sourcegraph", lambda r: r.choice([f"sgp_{rs(r, HEX, 16)}_{rs(r, HEX, 40)}", "sgp_" + rs(r, HEX, 40)])),
    ("square", lambda r: r.choice(["EAAA" + mixed(r, B64U, 60), "sq0atp-" + mixed(r, B64U, 22),
                                   "sq0csp-" + mixed(r, B64U, 43)])),
    ("stripe_more", lambda r: r.choice(["sk_prod_", "rk_prod_", "whsec_"]) + mixed(r, B62, 32)),
    ("vault", lambda r: r.choice(["hvs.", "hvb."]) + mixed(r, B64U, 100)),
    ("sendinblue", lambda r: f"xkeysib-{rs(r, HEX, 64)}-{mixed(r, B62, 16)}"),
    ("mailgun", lambda r: "key-" + rs(r, HEX, 32)),
    ("braintree", lambda r: f"access_token$production${rs(r, LOW + DIG, 16)}${rs(r, HEX, 32)}"),
    ("razorpay", lambda r: r.choice(["rzp_live_", "rzp_test_"]) + mixed(r, B62, 14)),
    ("azure_sas_signature", lambda r: mixed(r, B62, 43) + "%3D"),
    ("discord_webhook", lambda r: f"https://discord.com/api/webhooks/{rs(r, DIG, 18)}/{mixed(r, B64U, 68)}"),
    ("teams_webhook", lambda r: f"https://acme.webhook.office.com/webhookb2/{rs(r, HEX, 8)}-{rs(r, HEX, 4)}-"
                                f"{rs(r, HEX, 4)}-{rs(r, HEX, 4)}-{rs(r, HEX, 12)}@{rs(r, HEX, 8)}/IncomingWebhook/"
                                f"{rs(r, HEX, 32)}/{rs(r, HEX, 8)}"),
    # LLM providers and agent tooling
    ("anthropic_admin", lambda r: "sk-ant-admin01-" + mixed(r, B64U, 93) + "AA"),
    ("openrouter", lambda r: "sk-or-v1-" + rs(r, HEX, 64)),
    ("groq", lambda r: "gsk_" + mixed(r, B62, 52)),
    ("xai", lambda r: "xai-" + mixed(r, B62, 80)),
    ("replicate", lambda r: "r8_" + mixed(r, B62, 37)),
    ("langsmith", lambda r: f"lsv2_{r.choice(['pt', 'sk'])}_{rs(r, HEX, 32)}_{rs(r, HEX, 10)}"),
    ("langfuse", lambda r: f"sk-lf-{rs(r, HEX, 8)}-{rs(r, HEX, 4)}-{rs(r, HEX, 4)}-{rs(r, HEX, 4)}-{rs(r, HEX, 12)}"),
    ("pinecone", lambda r: f"pcsk_{mixed(r, B62, 6)}_{mixed(r, B62, 63)}"),
    ("tavily", lambda r: "tvly-" + r.choice(["", "dev-", "prod-"]) + mixed(r, B62, 32)),
    ("firecrawl", lambda r: "fc-" + rs(r, HEX, 32)),
    ("e2b", lambda r: "e2b_" + rs(r, HEX, 40)),
    ("fireworks", lambda r: "fw_" + mixed(r, B62, 24)),
    ("buildkite", lambda r: "bkua_" + rs(r, HEX, 40)),
    ("circleci", lambda r: "CCIPAT_" + mixed(r, B62, 22) + "_" + rs(r, HEX, 40)),
    ("twilio_sk", lambda r: "SK" + rs(r, HEX, 32)),
    ("mailchimp", lambda r: rs(r, HEX, 32) + f"-us{r.randint(1, 21)}"),
    ("twitter_bearer", lambda r: "A" * 22 + mixed(r, B62 + "%", r.randint(60, 100))),
    ("adyen", lambda r: "AQE" + mixed(r, B64, r.randint(90, 140))),
    ("aws_session_token", lambda r: r.choice(["IQoJb3JpZ2luX2Vj", "FwoGZXIvYXdzE"]) + mixed(r, B64, r.randint(200, 400))),
    ("nvidia", lambda r: "nvapi-" + mixed(r, B64U, 64)),
    ("supabase", lambda r: r.choice(["sbp_" + rs(r, HEX, 40), "sb_secret_" + mixed(r, B64U, 31)])),
    ("openai_admin", lambda r: "sk-admin-" + mixed(r, B64U, 60)),
    ("docker_pat", lambda r: "dckr_pat_" + mixed(r, B64U, 27)),
    # drawn with rs, not mixed: SendGrid's 22-character segment holds no digit in ~3 % of keys
    ("sendgrid", lambda r: f"SG.{rs(r, B64U, 22)}.{rs(r, B64U, 43)}"),
    ("meta_graph", lambda r: "EAA" + r.choice("BCGIJd") + mixed(r, B62, r.randint(96, 240))),
)


def vendor_token(r: random.Random) -> tuple[str, str]:
    name, gen = r.choice(VENDORS)
    return name, gen(r)  # type: ignore[operator]


def carried(r: random.Random, name: str, v: str) -> str:
    """The token as it travels: a SAS signature only ever inside its URL."""
    if name == "azure_sas_signature":
        return (f"https://acct{r.randint(1, 99)}.blob.core.windows.net/c/b.txt?sv=2022-11-02&ss=b&srt=o&sp=r"
                f"&se=2026-12-31T00:00:00Z&spr=https&sig={v}")
    return v


_NAMES = ("token", "api_key", "API_TOKEN", "secret", "credential", "auth", "value", "key", "bot_token", "pat")
_WORDS = ("deploy", "upload", "the nightly job", "the webhook", "billing", "the staging cluster")


def surround(r: random.Random, v: str, kind: str = "any") -> str:
    """``v`` somewhere an agent's telemetry carries it. ``kind='shape'`` keeps out the forms where
    a credential name stands next to the value, so only the value's own shape can give it away."""
    forms = [
        lambda: f"use {v} for {r.choice(_WORDS)}",
        lambda: json.dumps({"tool": "http", "args": {"note": f"got {v}", "retry": r.randint(0, 3)}}),
        lambda: f"2026-12-06T1{r.randint(0, 9)}:0{r.randint(0, 9)}:11Z INFO client ready id={r.randint(1, 99)} {v}",
        lambda: f"Here it is:\n\n    {v}\n\nkeep it safe.",
        lambda: f"- `{v}`",
        lambda: f"https://api.example.com/v2/items?limit=10&k={v}&page=2",
        lambda: f"echo {v} | tee /tmp/out.txt",
        lambda: f"'{v}'",
        lambda: v,
    ]
    if kind != "shape":
        n = r.choice(_NAMES)
        forms += [lambda: f"{n}={v}", lambda: json.dumps({n: v}), lambda: f"{n}: {v}\nnext: 1",
                  lambda: f"export {n.upper()}=\"{v}\""]
    return r.choice(forms)()


# ---- class 2: random bodies with no digits --------------------------------------------------

NO_DIGIT_ALPHABETS = {
    "alpha": string.ascii_letters, "alpha_sep": string.ascii_letters + "_-", "lower": LOW, "upper": UP,
    "lower_sep": LOW + "_-", "base64": string.ascii_letters + "+/",
}
CRED_NAMES = ("secret", "token", "api_key", "apiKey", "access_token", "auth_token", "client_secret",
              "SECRET_KEY", "x-api-key", "key", "private_key", "signing_key", "GITHUB_TOKEN", "OPENAI_API_KEY",
              "encryption_key", "session_token", "refresh_token", "webhook_secret", "license_key", "hmac_key")


def no_digit_body(r: random.Random, alphabet: str) -> str:
    while True:
        v = rs(r, alphabet, r.randint(24, 64))
        if v[0] not in "-_+/" and v[-1] not in "-_+/":
            return v


def no_digit_case(r: random.Random) -> tuple[str, str, str]:
    """(alphabet name, value, text): a digit-free random body after a credential name."""
    an, alphabet = r.choice(sorted(NO_DIGIT_ALPHABETS.items()))
    v = no_digit_body(r, alphabet)
    k = r.choice(CRED_NAMES)
    words = k.replace("_", " ").replace("-", " ").lower()
    forms = [f"{k}={v}", f"{k}: {v}", f'"{k}":"{v}"', json.dumps({"config": {k: v}}), f'export {k.upper()}="{v}"',
             f"{k} = '{v}'", f"--{k} {v}", f"<{k}>{v}</{k}>", f"{k} => {v}",
             f"https://api.example.com/v1?{k}={v}&page=2", f"config:\n  {k}: {v}\n  retries: 3"]
    if k != "key":  # in prose a bare "key" names too many things (cache key, sort key): not a rule
        forms += [f"the {words} is {v}", f"{words} {v}", f"set the {words} to {v}", f"INFO using {words} {v} for upload"]
    return an, v, r.choice(forms)


# ---- class 3: one lowercase word as a password in prose --------------------------------------

WORDS = ("hunter tangerine sunflower dragon monkey shadow pumpkin sparrow meadow velvet lantern "
         "walnut harbor quartz falcon tundra maple saddle glacier pepper ribbon cactus orbit violet "
         "copper river winter summer autumn rainbow banana cookie puppy kitten trombone mustang "
         "baseball football letmein welcome princess sunshine butterfly chocolate jasmine").split()
PROSE_FORMS = ("my password is {w}", "the passphrase is {w}", "pw: {w}", "PW: {w}", "password: {w}",
               "the wifi password is {w}.", "Her password was {w}, I think.", "password is {w}",
               "passcode: {w}", "pwd = {w}", "the admin password is {w} and the user is root",
               "login: admin / password: {w}", "Password for the router is {w}",
               "the vpn pw is {w}", "the password will be {w}",
               "password = {w}\nuser = admin", "passwort ist {w}")


def prose_password(r: random.Random) -> tuple[str, str]:
    w = r.choice(WORDS)
    if r.random() < 0.2:
        w = rs(r, LOW, r.randint(5, 10))  # a made-up word: the rule may not know the word list
    return w, r.choice(PROSE_FORMS).format(w=w)


# ---- near-misses that must survive --------------------------------------------------------

BENIGN_PROSE = ("the password policy is strict", "the password is incorrect", "password is required",
                "the password was changed yesterday", "my password is too short",
                "the password is case sensitive", "password: required", "pw: none", "passwd: files", "password_encryption: none",
                "the passphrase is optional", "the password field is empty", "password reset link sent",
                "the password is stored in vault", "the password expired", "pwd: /home/agent/work",
                "the password is wrong", "the password is invalid", "password is missing",
                "password: ********", "the password is hidden", "the password is saved",
                "the pin is locked", "pw: n/a", "password is set",
                "the password is ok", "the password is fine", "password: changeme",
                "the password is below", "the password is managed by the admin", "the password is expiring",
                "the password is secret", "the password is pending", "PWD=/home/agent/work", "the pin is stuck")


def benign_near_miss(r: random.Random) -> str:
    uuid = "-".join(rs(r, HEX, n) for n in (8, 4, 4, 4, 12))
    picks = [
        lambda: uuid, lambda: rs(r, HEX, 40), lambda: rs(r, HEX, 64), lambda: rs(r, HEX, 7),
        lambda: "data:image/png;base64," + base64.b64encode(bytes(r.randrange(256) for _ in range(60))).decode(),
        lambda: f"sha256:{rs(r, HEX, 64)}", lambda: f"md5 {rs(r, HEX, 32)}",
        lambda: r.choice(BENIGN_PROSE),
        lambda: f"commit {rs(r, HEX, 40)} by jane", lambda: f"trace_id={rs(r, HEX, 32)}",
        lambda: r.choice(["TokenRefreshHandlerFactory", "AuthenticationRequiredError", "SecretManagerClient",
                          "get_access_token_from_cache", "apiKeyHeaderName", "tokenizer_config_json"]),
        lambda: f"token_type=bearer expires_in={r.randint(60, 86400)}",
        lambda: f"the api key is {r.choice(['missing', 'invalid', 'expired', 'revoked', 'not set'])}",
        lambda: f"key={r.choice(['user_profile_settings', 'checkout-session-cache', 'primary'])}",
        lambda: f"the token is {r.choice(['expired', 'invalid', 'valid until tomorrow'])}",
        lambda: f"secret_name=prod/db/{r.choice(['password', 'main', 'replica'])}",
        lambda: f"auth token refresh failed: {r.choice(['TimeoutError', 'ConnectionResetError'])}",
        lambda: f"max_tokens={r.randint(16, 8192)}", lambda: f"1.2.{r.randint(0, 99)}",
        lambda: f"user {r.randint(10**7, 10**10 - 1)}: {r.choice(['joined', 'left', 'was muted'])}",
        lambda: f"{r.randint(10**7, 10**9)}:{r.randint(10, 59)}", lambda: f"{r.randint(10**7, 10**10 - 1)}:ok",
        lambda: f"https://example.com/{r.choice(['docs', 'blog'])}/{rs(r, LOW, 8)}-{rs(r, LOW, 6)}",
        lambda: r.choice(["the quick brown fox jumps over the lazy dog", "no credentials were printed"]),
        lambda: f"msg_01{rs(r, B62, 22)}", lambda: f"call_{rs(r, B62, 24)}", lambda: f"chatcmpl-{rs(r, B62, 29)}",
        lambda: r.choice(["sentence-transformers", "opentelemetry-exporter-otlp-proto-grpc", "scikit-learn"]),
        lambda: f"v1.0-{r.randint(0, 9)}", lambda: f"dapi/{rs(r, LOW, 6)}",
    ]
    return r.choice(picks)()


# ---- the bench: recall per class, near-misses kept, and what the new triggers cost ----------

@dataclass
class Case:
    cls: str      # vendor_token, no_digit_body, prose_password, or benign
    sub: str      # vendor, alphabet, form
    value: str
    text: str


def generate(n: int, seed: int) -> list[Case]:
    r = random.Random(seed)
    out: list[Case] = []
    for i in range(n):
        k = i % 4
        if k == 0:
            name, v = vendor_token(r)
            out.append(Case("vendor_token", name, v, surround(r, carried(r, name, v), "shape")))
        elif k == 1:
            an, v, t = no_digit_case(r)
            out.append(Case("no_digit_body", an, v, t))
        elif k == 2:
            w, t = prose_password(r)
            out.append(Case("prose_password", t.replace(w, "{w}"), w, t))
        else:
            x = benign_near_miss(r)
            t = r.choice([x, f"2026-12-06T10:00:00Z INFO {x}", json.dumps({"note": x}), f"- {x}"])
            out.append(Case("benign", x[:24], x, t))
    return out


def evaluate(cases: list[Case], redact: Callable[[str], str]) -> dict:
    per_class, per_sub = Tally(), Tally()
    kept, misses, lost = [0, 0], [], []
    for c in cases:
        out = redact(c.text)
        if c.cls == "benign":
            kept[1] += 1
            ok = c.value in out
            kept[0] += ok
            if not ok and len(lost) < 40:
                lost.append((c.text, out))
            continue
        lenient, strict = outcome(c.text, out, c.value)
        per_class.add((c.cls, "overall"), lenient, strict)
        per_sub.add((f"{c.cls}:{c.sub}",), lenient, strict)
        if not strict and len(misses) < 60:
            misses.append((c.cls, c.text))
    return {"per_class": per_class.rates(), "per_sub": per_sub.rates(),
            "lookalikes_kept": kept[0] / max(kept[1], 1), "lookalikes": kept[1], "misses": misses, "lost": lost}


def prefilter_cost(n: int, seed: int) -> dict:
    """The raw-record prefilter with and without vendor_tokens' triggers, side by side on the same
    clean telemetry records: how often it fires (each firing costs the full engine) and µs/record."""
    import time

    from agentstream.schemas import EVENT, Codec
    from agentstream.stream_processors import synthetic as syn
    from agentstream.stream_processors.redaction import prefilter
    from agentstream.stream_processors.redaction.multipattern import compile_any
    try:
        from agentstream.stream_processors.redaction import vendor_tokens
    except ImportError:
        return {}
    r, codec, recs = random.Random(seed), Codec(), []
    for i in range(n):  # the clean step records of bench/processors.py, a tenth with a near-miss note
        attrs = {"http.route": "/v1/search", "note": f"step {i % 9} of the plan"}
        if i % 10 == 0:
            attrs["note"] = benign_near_miss(r)
        ev = syn.step(f"tenant-{i % 5}", f"run-{i}", 1 + i % 9, name=f"tool{i % 7}", args_digest=f"d{i % 9}",
                      attributes=attrs)
        recs.append(codec.encode(EVENT, ev))
    old = compile_any(tuple(p for p in prefilter.PATTERNS if p not in vendor_tokens.PREFILTER))
    new = compile_any(prefilter.PATTERNS)
    best, fired = {"before": float("inf"), "after": float("inf")}, {}
    for _ in range(10):  # alternating, min of ten passes each: the machine is shared and noisy
        for name, fn in (("before", old), ("after", new)):
            t = time.perf_counter()
            fired[name] = sum(1 for v in recs if fn(v))
            best[name] = min(best[name], time.perf_counter() - t)
    res = {k: {"us_per_record": round(best[k] / n * 1e6, 3), "fire_rate": round(fired[k] / n, 4)} for k in best}
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--texts", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=6)
    ap.add_argument("--records", type=int, default=20000)
    args = ap.parse_args()
    from agentstream.stream_processors.redaction import DEFAULT_ACTIONS, Redactor
    red = Redactor(b"bench-key")
    rep = evaluate(generate(args.texts, args.seed), lambda t: red.redact_text(t, DEFAULT_ACTIONS, {}))
    for section in ("per_class", "per_sub"):
        print(section)
        for k, v in rep[section].items():
            if section == "per_class" or v["lenient"] < 1.0:
                print(f"  {k:44s} lenient {v['lenient']:.3f}  strict {v['strict']:.3f}  (n={v['n']})")
    print(f"near-misses kept {rep['lookalikes_kept']:.4f} of {rep['lookalikes']}")
    for m in rep["misses"]:
        print("  miss", m, file=sys.stderr)
    for x in rep["lost"]:
        print("  lost", x, file=sys.stderr)
    cost = prefilter_cost(args.records, args.seed)
    for k, v in cost.items():
        print(f"raw prefilter {k:6s} {v['us_per_record']:.3f} us/record, fires on {v['fire_rate']:.2%} of clean records")
    pc = rep["per_class"]
    fig = {"texts": args.texts, "seed": args.seed, "recall": round(pc["overall"]["lenient"], 4),
           "recall_strict": round(pc["overall"]["strict"], 4),
           **{f"recall_{k}": round(v["lenient"], 4) for k, v in pc.items() if k != "overall"},
           "near_misses_kept": round(rep["lookalikes_kept"], 4)}
    if cost:
        fig["prefilter_us_ratio_after_before"] = round(cost["after"]["us_per_record"] / cost["before"]["us_per_record"], 3)
        fig["prefilter_fire_rate"] = {"before": cost["before"]["fire_rate"], "after": cost["after"]["fire_rate"]}
    print(json.dumps(fig))


if __name__ == "__main__":
    main()
