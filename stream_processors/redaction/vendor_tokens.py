"""Vendor credentials whose documented format the shape rule (token_shapes.py) cannot see.

The shape rule wants a lowercase issuer, a ``_``/``-`` separator and a body with letters and digits.
These formats break one of those on purpose or by accident: a prefix glued to hex (Databricks
``dapi…``), an uppercase issuer (``ATATT3…``, ``LTAI…``, ``HRKU-AA…``, ``AGE-SECRET-KEY-1…``), a
letters-only body (Hugging Face ``hf_``), a short body cut by separators (GitLab ``gldt-``), a base64
body with ``+``/``/`` (Bedrock ``ABSK…``, Fly.io ``fm2_…``), a dotted form with a short segment
(Discord bot tokens, HCP Terraform ``….atlasv1.…``), no prefix at all (Telegram bot tokens:
``<bot id>:<35 chars>``, also inside the API's ``/bot<token>/`` URLs), or a URL that is itself
the credential (Discord and Teams webhooks).

Each entry is (literals, pattern, validator). A literal is what the byte prefilter looks
for (ASCII, no lookarounds), so a record with none of them skips the table at the cost of one
Hyperscan pass; the pattern and validator run only on strings that hold it. Formats follow the
vendors' documentation and the public gitleaks rule list (shapes are facts; no code is shared).
"""
from __future__ import annotations

import base64
import binascii
import re
from typing import Callable, Iterator

from agentstream.schemas.letter_pairs import random_letters

from .multipattern import compile_which

# A token ends where the alphabet of tokens ends: not inside a longer word or base64 run.
_L = r"(?<![A-Za-z0-9_+/-])"  # "k=<token>" in a query string: "=" and "." may come before
_R = r"(?![A-Za-z0-9_+/=-])"


def _mixed(m: re.Match[str]) -> bool:
    """Letters and digits, more than one case: a machine's draw, not a word or a constant."""
    s = m.group(m.lastindex or 0)
    return any(c.isdigit() for c in s) and any(c.isupper() for c in s) and any(c.islower() for c in s)


def _discord_id(m: re.Match[str]) -> bool:
    # the first part is a Discord snowflake (a 17-20 digit user id) in base64: decoding it is
    # the test, so a dotted base64 look-alike does not pass
    head = m.group("uid")
    try:
        uid = base64.b64decode(head + "=" * (-len(head) % 4), validate=False)
    except (binascii.Error, ValueError):
        return False
    return uid.isdigit() and 17 <= len(uid) <= 20 and _has_letter_digit(m.group("hmac"))


def _has_letter_digit(s: str) -> bool:
    return any(c.isdigit() for c in s) and any(c.isalpha() for c in s)


def _telegram(m: re.Match[str]) -> bool:
    body = m.group("body")
    return _has_letter_digit(body) and body != body.lower() and body != body.upper()


def _letters_random(m: re.Match[str]) -> bool:
    return random_letters(m.group("body"))


def _any(_m: re.Match[str]) -> bool:
    return True


_ENTRIES: tuple[tuple[str, tuple[str, ...], str, Callable[[re.Match[str]], bool]], ...] = (
    # (name, literals one of which every match holds (for the two formats without one, a short
    # regex of their structure), pattern, validator)
    ("databricks", ("dapi",), _L + r"dapi[0-9a-f]{32}(?:-\d)?" + _R, _any),
    ("atlassian", ("ATATT3",), _L + r"ATATT3[A-Za-z0-9_=-]{32,220}(?:%3[Dd][0-9A-Fa-f]{8})?" + _R, _any),
    ("age_secret_key", ("AGE-SECRET-KEY-1",), r"AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}", _any),
    ("onepassword_secret_key", ("A3-",),
     _L + r"A3-[A-Z0-9]{6}-(?:[A-Z0-9]{11}|[A-Z0-9]{6}-[A-Z0-9]{5})-[A-Z0-9]{5}-[A-Z0-9]{5}-[A-Z0-9]{5}" + _R, _any),
    ("onepassword_service_account", ("ops_eyJ",), _L + r"ops_eyJ[A-Za-z0-9+/_-]{100,}={0,3}", _any),
    ("alibaba_key_id", ("LTAI",), _L + r"LTAI[A-Za-z0-9]{20}" + _R, _mixed),
    ("bedrock_api_key", ("ABSK",), _L + r"ABSK[A-Za-z0-9+/]{100,300}={0,2}" + _R, _any),
    ("bedrock_short_lived", ("bedrock-api-key-",), _L + r"bedrock-api-key-[A-Za-z0-9+/=%_-]{40,}", _any),
    ("azure_ad_client_secret", ("Q~",), r"(?<![A-Za-z0-9_~.-])[A-Za-z0-9_~.]{3}\dQ~[A-Za-z0-9_~.-]{31,34}(?![A-Za-z0-9_~.-])",
     _any),
    ("cloudflare_origin_ca", ("v1.0-",), _L + r"v1\.0-[0-9a-f]{24}-[0-9a-f]{146}" + _R, _any),
    ("gitlab_token", ("glpat-", "gldt-", "glft-", "glrt-", "glsoat-", "glffct-", "gloas-", "glcbt-", "glimt-",
                      "glagent-", "glptt-", "glrtr-"), _L + r"gl(?:pat|dt|ft|rt|soat|ffct|oas|cbt|imt|agent|ptt|rtr)-[A-Za-z0-9_-]{20,300}"
     r"(?:\.[0-9a-z]{9})?" + _R, lambda m: _has_letter_digit(m.group(0)[m.group(0).index("-") + 1:])),
    ("gitlab_runner_registration", ("GR1348941",), _L + r"GR1348941[A-Za-z0-9_-]{20,}" + _R, _any),
    ("grafana_cloud", ("glc_",), _L + r"glc_[A-Za-z0-9+/]{32,400}={0,3}" + _R, _any),
    ("terraform_cloud", (".atlasv1.",), _L + r"[A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_=-]{60,70}" + _R, _any),
    ("heroku", ("HRKU-",), _L + r"HRKU-(?:AA[A-Za-z0-9_-]{58}|[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})" + _R, _any),
    ("huggingface", ("hf_", "api_org_"), _L + r"(?:hf|api_org)_(?P<body>[A-Za-z]{34})" + _R, _letters_random),
    ("new_relic", ("NRAK-", "NRJS-", "NRII-", "NRRA-"), _L + r"NR(?:AK|JS|II|RA)-[A-Za-z0-9]{19,32}" + _R, lambda m: _has_letter_digit(m.group(0)[5:])),
    ("planetscale", ("pscale_",), _L + r"pscale_(?:tkn|oauth|pw)_[A-Za-z0-9_=.-]{32,64}" + _R, _any),
    ("square", ("sq0",), _L + r"sq0(?:atp|csp)-[A-Za-z0-9_-]{22,60}" + _R, _any),
    ("square_access", ("EAAA",), _L + r"EAAA[A-Za-z0-9_-]{22,60}" + _R, _mixed),
    # Meta Graph API access tokens (user, page, system user): EAA, then ~100-250 glued letters and
    # digits; shorter than 90 is not one (a Square token above, or a word)
    ("meta_access_token", ("EAA",), _L + r"EAA[A-Za-z0-9]{90,400}" + _R, _mixed),
    ("flyio", ("fo1_", "fm1", "fm2_"), _L + r"(?:fo1_[A-Za-z0-9_-]{43}|fm[12][ar]?_[A-Za-z0-9+/]{64,}={0,3})" + _R, _any),
    ("google_oauth_client_secret", ("GOCSPX-",), _L + r"GOCSPX-[A-Za-z0-9_-]{28}" + _R, _any),
    ("braintree", ("access_token$",), r"access_token\$(?:production|sandbox)\$[a-z0-9]{16}\$[a-f0-9]{32}", _any),
    ("discord_webhook", ("/api/webhooks/",),
     r"https?://(?:ptb\.|canary\.)?discord(?:app)?\.com/api/webhooks/\d{15,20}/[A-Za-z0-9_-]{60,}", _any),
    ("teams_webhook", (".webhook.office.com/",), r"https://[A-Za-z0-9-]+\.webhook\.office\.com/webhookb2/[^\s\"'<>`]+", _any),
    ("mailchimp", ("-us",), _L + r"[0-9a-f]{32}-us\d{1,2}" + _R, _any),
    ("twitter_bearer", ("AAAAAAAAAAAAAAAAAAAAA",), r"(?<![A-Za-z0-9])A{22}[A-Za-z0-9%]{40,}" + _R, _mixed),
    ("adyen", ("AQE",), _L + r"AQE[A-Za-z0-9+/=_-]{80,}" + _R, _mixed),
    ("aws_session_token", ("IQoJb3JpZ2luX2Vj", "FwoGZXIvYXdzE"),
     _L + r"(?:IQoJb3JpZ2luX2Vj|FwoGZXIvYXdzE)[A-Za-z0-9+/=%]{100,}", _any),
    # a signed URL's signature is the credential (Azure SAS "sig", S3/GCS presigned): only the value
    ("signed_url_signature", ("sig=", "Signature=", "Security-Token="),
     r"[?&](?:sig|X-Amz-Signature|X-Amz-Security-Token|X-Goog-Signature|Signature)=(?P<v>[A-Za-z0-9%+/=_.-]{20,})",
     _any),
    ("discord_bot", (r"\.[A-Za-z0-9_-]{6}\.",),
     r"(?<![A-Za-z0-9_.-])(?P<uid>[MNO][A-Za-z0-9_-]{22,27})\.[A-Za-z0-9_-]{6}\.(?P<hmac>[A-Za-z0-9_-]{27,38})"
     r"(?![A-Za-z0-9_.-])", _discord_id),
    ("telegram_bot", (r"\d{8}:",), r"(?:(?<=[bB]ot)|(?<![\w:]))\d{8,10}:(?P<body>[A-Za-z0-9_-]{35})(?![A-Za-z0-9_-])", _telegram),
)
_COMPILED = tuple((re.compile(p), ok) for _, _, p, ok in _ENTRIES)
# One Hyperscan pass names the entries whose literal a string holds; only their patterns run.
_KEYS = [(i, lit if lit.startswith(("\\.", "\\d")) else re.escape(lit)) for i, (_, lits, _, _) in enumerate(_ENTRIES)
         for lit in lits]
_which = compile_which([k for _, k in _KEYS])

# Byte-prefilter triggers (ASCII, no lookarounds): each entry's match holds one of these, and a
# record with none of them skips the table for one Hyperscan pass. The two formats without a
# literal are given by a bounded piece of their structure.
PREFILTER = (
    r"dapi[0-9a-f]{8}|ATATT3|AGE-SECRET-KEY-1|A3-[A-Z0-9]{6}-|ops_eyJ|LTAI[A-Za-z0-9]{8}|ABSK[A-Za-z0-9+/]{8}"
    r"|bedrock-api-key-|\dQ~|v1\.0-[0-9a-f]{8}|gl(?:pat|dt|ft|rt|soat|ffct|oas|cbt|imt|agent|ptt|rtr)-"
    r"|GR1348941|glc_|pscale_|\.atlasv1\.|HRKU-|(?:hf|api_org)_[A-Za-z]{8}|NR(?:AK|JS|II|RA)-|sq0(?:atp|csp)-|EAA[A-Za-z0-9]{16}"
    r"|fo1_|fm[12][ar]?_|GOCSPX-|access_token\$|/api/webhooks/|\.webhook\.office\.com/|[0-9a-f]{8}-us\d"
    r"|AAAAAAAAAAAAAAAAAAAAA|AQE[A-Za-z0-9+/]{16}|IQoJb3JpZ2luX2Vj|FwoGZXIvYXdzE|sig=|Signature=|Security-Token=",
    r"\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27}",
    r"\d{8}:[A-Za-z0-9_-]{20}",
)


def find_vendor_tokens(text: str) -> Iterator[tuple[int, int]]:
    # (surrogatepass: a lone surrogate from JSON input made this raise, and the event quarantine)
    entries = {_KEYS[k][0] for k in _which(text.encode("utf-8", "surrogatepass"))}
    for i in sorted(entries):
        rx, ok = _COMPILED[i]
        g = "v" if "v" in rx.groupindex else 0
        for m in rx.finditer(text):
            if ok(m):
                yield m.span(g)
