"""Detection rules for secrets and PII: a pattern, a cheap trigger, and a validator.

Every rule names a category; a tenant's policy picks the action (mask, hash, drop) per category.
Validators (Luhn, mod-97, SSN ranges, JWT header, IP parsing) turn look-alikes away: a 16-digit
order id that fails Luhn, a git SHA, a UUID or ``sk-learn`` must survive untouched.

Why our own rules rather than a library: presidio needs spaCy models (hundreds of MB, slow per
call) and detect-secrets scans line by line with entropy plugins that flag git SHAs and hashes;
both are far from the per-event budget of the hot path. The patterns below follow the public
formats the vendors document (and gitleaks' rule set) and are tested against a labelled corpus.
"""
from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
from dataclasses import dataclass
from typing import Callable, Iterator

from agentstream.schemas.redaction_summary import RULE_NAMES

from . import aws_keys as aws
from . import checksummed as checksums
from . import credential_files as files
from . import prose_credentials as prose
from . import token_shapes as shapes
from . import vendor_tokens as vendors
from .escapes import PREFILTER as ESCAPES_PREFILTER
from .folding import PREFILTER as FOLDING_PREFILTER
from .keywords import LOCALIZED_SOURCE, SETTING_WORDS, TRIGGER_WORDS, code_literal, find_assignments, placeholder
from .localized_passwords import find_localized
from .multipattern import compile_any, words_trigger
from .phones import CONTACT_PREFILTER, PHONE_CONTEXT_SOURCE, find_contact_uris, find_phones

CATEGORIES = (
    "email", "phone", "payment_card", "iban", "national_id", "ip_address",
    "api_key", "jwt", "private_key", "bearer_token", "url_credentials", "credential_assignment",
)


@dataclass(frozen=True)
class Rule:
    name: str
    category: str
    pattern: re.Pattern[str]
    # A substring test or regex that must hold before the (costlier) pattern runs at all.
    trigger: Callable[[str], bool]
    validate: Callable[[re.Match[str]], bool] | None = None
    group: int = 0  # which group is the secret (e.g. only the value of ``password=...``)
    # A rule that is code rather than one pattern (key-aware assignments, libphonenumber).
    finder: Callable[[str], Iterator[tuple[int, int]]] | None = None
    # Whether an id-shaped envelope id is checked against it (fields.IdChecker): the shape-based
    # token rules stay out, an id like ``agentrun-<random>`` has exactly their shape.
    in_ids: bool = True

    def find(self, text: str) -> Iterator[tuple[int, int]]:
        if self.trigger(text):
            yield from self.matches(text)

    def matches(self, text: str) -> Iterator[tuple[int, int]]:
        """``find`` once the trigger holds. Callers that test the trigger first skip making a
        generator for the rules it rules out (most of them, on most strings: ~0.3 µs each)."""
        if self.finder is not None:
            yield from self.finder(text)
            return
        for m in self.pattern.finditer(text):
            if self.validate is None or self.validate(m):
                yield m.start(self.group), m.end(self.group)


# ---- validators -------------------------------------------------------------------------

UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def is_uuid(text: str) -> bool:
    """Exactly a UUID: hex groups of at most 12 digits between dashes, which no rule matches (card
    and phone validators reject spans inside one; no token format is that short). The engine
    exempts these strings from its scan and its id check, and the byte prefilter (the C field
    reader's ``is_uuid``) leaves the same strings out of a record's text."""
    return len(text) == 36 and UUID.fullmatch(text) is not None
_HEX_DASH = frozenset("0123456789abcdefABCDEF-")


def inside_uuid(m: re.Match[str]) -> bool:
    """True when the match lies within a UUID-shaped token: its digit groups joined by dashes
    (``a07-8224-123456789012``) can pass Luhn by chance, about one UUID in a few thousand."""
    return _in_uuid(m.string, m.start(), m.end())


def _in_uuid(text: str, s: int, e: int) -> bool:
    while s > 0 and text[s - 1] in _HEX_DASH:
        s -= 1
    while e < len(text) and text[e] in _HEX_DASH:
        e += 1
    return e - s == 36 and UUID.fullmatch(text, s, e) is not None


def _find_cards(text: str) -> Iterator[tuple[int, int]]:
    return ((s, e) for s, e in checksums.find_cards(text) if not _in_uuid(text, s, e))


def _national_value_ok(m: re.Match[str]) -> bool:
    v = m.group(1)
    digits = sum(c.isdigit() for c in v)
    return 7 <= digits <= 16 and not re.fullmatch(r"\d+\.\d+", v)


def _ssn_ok(m: re.Match[str]) -> bool:
    return _ssn_ok_groups(m.group(1), m.group(2), m.group(3))


def _ssn_ok_groups(area: str, group: str, serial: str) -> bool:
    return not (area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000")


def _ipv4_ok(m: re.Match[str]) -> bool:
    text = m.string
    s = m.start()
    # "v1.2.3.4" and "version 1.2.3.4" are versions, not addresses.
    if s > 0 and text[s - 1] in "vV":
        return False
    try:
        ip = ipaddress.IPv4Address(m.group(0))
    except ValueError:
        return False
    return not (ip.is_unspecified or str(ip).startswith("0."))


def _ipv6_ok(m: re.Match[str]) -> bool:
    cand = m.group(0)
    if cand.count(":") < 2 or "::::" in cand:
        return False
    try:
        ipaddress.IPv6Address(cand)
    except ValueError:
        return False
    # Bare hex runs with colons (e.g. "a:b:c") are too ambiguous; want at least 3 groups with digits.
    return sum(1 for g in cand.split(":") if g) >= 3


def _phone_ok(m: re.Match[str]) -> bool:
    if inside_uuid(m):
        return False
    digits = re.sub(r"\D", "", m.group(0))
    return 10 <= len(digits) <= 15 and len(set(digits)) > 2


def _jwt_ok(m: re.Match[str]) -> bool:
    head = m.group(0).split(".", 1)[0]
    try:
        obj = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except (binascii.Error, ValueError):
        return False
    return isinstance(obj, dict) and "alg" in obj


def _has_digit_and_letter(m: re.Match[str]) -> bool:
    s = m.group(m.re.groups and 1)
    return any(c.isdigit() for c in s) and any(c.isalpha() for c in s)


def _openai_ok(m: re.Match[str]) -> bool:
    body = m.group(0)[3:]
    digits = sum(c.isdigit() for c in body)
    # a 48-character key may by chance hold one digit or none; mixed case over that length is
    # not a word ("sk-learn-…" slugs are lowercase)
    return (digits >= 2 or len(body) >= 40 and body != body.lower() and body != body.upper()) and \
        sum(c.isalpha() for c in body) >= 8


def _assignment_ok(m: re.Match[str]) -> bool:
    value = m.group(2)
    # PWD=/home/agent is a directory, "passwd: files" (nsswitch) a setting, "password: str" or
    # getpass() code (find_assignments redacts a literal that code holds)
    if m.group(1).lower() == "pwd" and value[:1] in "/~" or value.lower() in SETTING_WORDS \
            or code_literal(m.string, m.start(2)) is not None:
        return False
    # "password: ********" or "token=<redacted>" are already safe; placeholders survive.
    return not (set(value) <= set("*x•.") or value.startswith(("[", "<", "${", "{{"))
                or value.lower() in {"none", "null", "true", "false", "required", "redacted"}
                or placeholder(value.rstrip(")")))  # "(using password: YES)" is MySQL's error text


def _contains(*needles: str) -> Callable[[str], bool]:
    if len(needles) == 1:
        n = needles[0]
        return lambda s: n in s
    return lambda s: any(n in s for n in needles)


_WORDS = re.compile(r"\(\?(a?)i\)((?:\w+\|)*\w+)", re.ASCII)


def _regex_trigger(p: str) -> Callable[[str], bool]:
    words = _WORDS.fullmatch(p)
    if words and "|" in words.group(2):
        # A case-insensitive list of words: Hyperscan, with re's answer (words_trigger); one
        # word alone is cheaper in re on the short strings ids are (0.4 against 0.6 µs).
        return words_trigger(tuple(words.group(2).split("|")), ascii_only=bool(words.group(1)))
    r = re.compile(p)
    return lambda s: r.search(s) is not None


_TRIGGER_WORD = words_trigger(TRIGGER_WORDS, ascii_only=True)
_DIGITS = _regex_trigger(r"\d\d")
_I = re.IGNORECASE


def _hyperscan_trigger(*patterns: str) -> Callable[[str], bool]:
    """Whether any of ``patterns`` (prefilter sources: no lookarounds) matches, from one Hyperscan
    pass: re tries a long alternation at every position (~5 µs a text for the localized names)."""
    match = compile_any(patterns)
    return lambda s: match(s.encode("utf-8", "surrogatepass"))


_LOCALIZED = _hyperscan_trigger(LOCALIZED_SOURCE)
# a credential file holds a credential name (a TRIGGER word, ASCII-caseless as words_trigger's) or
# a pgpass line: one pass for the three
_CREDENTIAL_FILE = _hyperscan_trigger("(?i:" + "|".join(TRIGGER_WORDS) + ")", LOCALIZED_SOURCE, files.PGPASS_PREFILTER)
_AWS_TRIGGER = _hyperscan_trigger(r"(?i:aws|secret)", *aws.KEY_ID_PREFIXES)
_CONTACT_ANY = _hyperscan_trigger(*CONTACT_PREFILTER)


def _contact(s: str) -> bool:
    # every contact holds ":" or "wa.me/": most ids (this rule runs on them) are out for 0.08 µs
    return (":" in s or "wa.me/" in s) and _CONTACT_ANY(s)


RULES: tuple[Rule, ...] = (
    Rule("pem_private_key", "private_key",
         re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY( BLOCK)?-----[\s\S]*?"
                    r"(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY( BLOCK)?-----|\Z)"),
         _contains("PRIVATE KEY")),
    Rule("putty_private_key", "private_key", re.compile(""), _contains("Private-Lines"), finder=files.find_putty),
    Rule("jwt", "jwt",
         # the signature may be empty (alg "none": an unsigned token still carries its claims),
         # or absent with the claims segment (header.claims, cut before the signature)
         re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.(?:[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*|eyJ[A-Za-z0-9_-]{5,})"),
         _contains("eyJ"), _jwt_ok),
    Rule("aws_access_key_id", "api_key", aws.KEY_ID, _contains(*aws.KEY_ID_PREFIXES)),
    # its secret: named in any syntax, or beside a key id (aws_keys.py)
    Rule("aws_secret_access_key", "api_key", re.compile(""), _AWS_TRIGGER, finder=aws.find_secret_keys),
    Rule("anthropic_api_key", "api_key", re.compile(r"\bsk-ant-[A-Za-z0-9]{2,8}\d{0,3}-[A-Za-z0-9_-]{20,}"),
         _contains("sk-ant-")),
    Rule("openai_api_key", "api_key",
         re.compile(r"\bsk-(?!ant-)(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}"),
         _contains("sk-"), _openai_ok),
    Rule("github_token", "api_key",
         re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{60,255})\b"),
         _contains("gh", "github_pat_")),
    Rule("slack_token", "api_key", re.compile(r"\bxox[abposre]-(?:[A-Za-z0-9]+-){1,4}[A-Za-z0-9]{6,}"),
         _contains("xox")),
    Rule("slack_webhook", "api_key",
         re.compile(r"https://hooks\.slack\.com/(?:services|workflows)/[A-Za-z0-9_/]{20,}"),
         _contains("hooks.slack.com")),
    Rule("stripe_key", "api_key", re.compile(r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}\b"),
         _contains("_live_", "_test_")),
    Rule("google_api_key", "api_key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])"), _contains("AIza")),
    Rule("google_oauth_token", "api_key", re.compile(r"\bya29\.[0-9A-Za-z_-]{20,}"), _contains("ya29.")),
    # vendors no rule above names, by the shape of their tokens (token_shapes.py)
    Rule("prefixed_token", "api_key", re.compile(""), _regex_trigger(f"{shapes.PREFILTER[0]}|{shapes.PREFILTER[1]}"),
         finder=shapes.find_prefixed, in_ids=False),
    Rule("glued_hex_token", "api_key", re.compile(""), _regex_trigger(shapes.PREFILTER[2]),
         finder=shapes.find_glued_hex, in_ids=False),
    Rule("dotted_token", "api_key", re.compile(""), _regex_trigger(shapes.PREFILTER[3]),
         finder=shapes.find_dotted, in_ids=False),
    # documented formats the shape rule cannot see: glued, uppercase, letters-only or dotted bodies,
    # Discord/Telegram bot tokens, webhook URLs (vendor_tokens.py)
    Rule("vendor_token", "api_key", re.compile(""), lambda s: True,  # its finder is its own trigger
         finder=vendors.find_vendor_tokens),  # documented formats: no id has them
    Rule("bearer_token", "bearer_token",
         # not "token_type=bearer <next field>": there Bearer is a value, not a scheme
         re.compile(r"(?i)(?<!=)(?<!= )\bbearer[ \t]+([A-Za-z0-9\-._~+/]{16,}=*)"),
         _regex_trigger(r"(?i)bearer"), _has_digit_and_letter, group=1),
    Rule("url_credentials", "url_credentials",
         # an empty user name is a password alone (redis://:pass@cache:6379)
         re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]{1,15}://([^\s:/@]*:[^\s@/]+)@"),
         _contains("://"), group=1),
    Rule("credential_assignment", "credential_assignment",
         re.compile(r"(?i)(?<![A-Za-z0-9])[\"']?((?:db_|app_|admin_|user_)?(?:password|passwd|pwd|secret|"
                    r"client_secret|api[_-]?key|apikey|access[_-]?token|auth[_-]?token|refresh[_-]?token|"
                    r"secret[_-]?key|private[_-]?key))[\"']?\s*[:=]\s*[\"']?([^\s\"',;&}]{4,})"),
         _regex_trigger(r"(?i)pass|pwd|secret|key|token"), _assignment_ok, group=2),
    Rule("sensitive_assignment", "credential_assignment", re.compile(""),
         _TRIGGER_WORD, finder=lambda t: find_assignments(t, "secret")),
    # "mot de passe : X", "Passwort: X", "пароль: X", "密码：X" (localized_passwords.py)
    Rule("localized_password", "credential_assignment", re.compile(""), _LOCALIZED, finder=find_localized),
    # .netrc, .pgpass, YAML block scalars under a credential name (credential_files.py)
    Rule("credential_file", "credential_assignment", re.compile(""),
         _CREDENTIAL_FILE, finder=files.find_credential_files),
    # credentials outside name=value syntax (prose_credentials.py)
    Rule("cli_credential", "credential_assignment", re.compile(""),
         _regex_trigger(prose.PREFILTER[0] + "|(?i:pass)"), finder=prose.find_cli),
    Rule("prose_password", "credential_assignment", re.compile(""), _regex_trigger(r"(?i)pass|pw|pin|kennw|contrase|senha|wachtw|senord|salasan"),
         finder=prose.find_prose),
    Rule("credential_word_value", "credential_assignment", re.compile(""),
         _regex_trigger(r"(?i)key|token|secret|cred|pass|signature|pat"), finder=prose.find_after_credential_word),
    Rule("connection_string_field", "credential_assignment", re.compile(""),
         _regex_trigger(r"(?i)pass|pwd|key|secret"), finder=prose.find_conn_fields),
    Rule("national_id_assignment", "national_id", re.compile(""),
         _TRIGGER_WORD, finder=lambda t: find_assignments(t, "national_id")),
    Rule("us_ssn_context", "national_id",
         re.compile(r"(?i)\b(?:ssn|social[ _-]?security(?:[ _-]?(?:number|no\.?|num|#))?|soc\.? ?sec\.?)"
                    r"[^0-9\n]{0,30}?(?<!\d)((\d{3})[ -]?(\d{2})[ -]?(\d{4}))(?![\d-])"),
         _regex_trigger(r"(?i)ssn|soc"), lambda m: _ssn_ok_groups(m.group(2), m.group(3), m.group(4)), group=1),
    # other locales' ids after their name in prose ("my CPF is 123.456.789-09", "Aadhaar no.
    # 2345 6789 0123"); key=value forms are the national_id_assignment rule's
    Rule("national_id_context", "national_id",
         re.compile(r"(?i)\b(?:aadhaar|cpf|bsn|pesel|sin|social[ _-]insurance(?:[ _-]number)?|nie|nif|dni|"
                    r"steuer[ _-]?id|tax[ _-]?id|tin|personnummer|insee|nir|curp|nhs(?:[ _-]number)?|"
                    r"passport(?:[ _-](?:no\.?|number|#))?|national[ _-](?:id|insurance)(?:[ _-]number)?)\b"
                    r"(?:[ \t]*(?:is|was|number|no\.?|#|:|=)){0,3}[ \t:#=]*"
                    r"([A-Z]{0,2}\d[\d./-]*(?: \d{2,6}){0,4}[A-Z]?)(?![\w-])"),
         _regex_trigger(r"(?i)aadhaar|cpf|bsn|pesel|sin|social|nie|nif|dni|steuer|tax|tin|personnummer|insee"
                        r"|nir|curp|nhs|passport|national"), _national_value_ok, group=1),
    Rule("phone_international", "phone", re.compile(""), _regex_trigger(r"\+[ \t]?[1-9]|\d\d"),
         finder=find_phones),
    Rule("email", "email",
         re.compile(r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@"
                    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}\b"),
         _contains("@")),
    Rule("iban", "iban", checksums.IBAN, _DIGITS, finder=checksums.find_ibans),
    Rule("payment_card", "payment_card", checksums.CARD, _DIGITS, finder=_find_cards),
    Rule("us_ssn", "national_id", re.compile(r"(?<![\d-])(\d{3})-(\d{2})-(\d{4})(?![\d-])"), _contains("-"),
         _ssn_ok),
    Rule("uk_nino", "national_id",
         re.compile(r"\b(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b"),
         _DIGITS),
    # a number as a contact: whatsapp:+1…, tel:, sip:, wa.me/… (also in ids: fields.py)
    Rule("contact_uri", "phone", re.compile(""), _contact, finder=find_contact_uris),
    Rule("phone", "phone",
         re.compile(r"(?<![\w+.:-])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?|\d{2,4}[ .-])\d{3,4}[ .-]\d{3,5}(?![\w-])"
                    r"|(?<![\w+])\+[1-9]\d{9,14}(?!\w)"),
         _DIGITS, _phone_ok),
    Rule("ipv4", "ip_address",
         re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.]|\.\d)"), _contains("."), _ipv4_ok),
    Rule("ipv6", "ip_address",
         re.compile(r"(?<![0-9A-Fa-f:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{1,4}(?![0-9A-Fa-f:])"),
         lambda s: s.count(":") >= 2, _ipv6_ok),
)

RULES_BY_NAME = {r.name: r for r in RULES}
# The gateway refuses a summary naming anything else (schemas/redaction_summary.py): a rule that
# is not listed there could never be counted, so refuse to start instead.
if not set(RULES_BY_NAME) <= RULE_NAMES:
    raise ImportError(f"rule names missing from schemas/redaction_summary.py: {sorted(set(RULES_BY_NAME) - RULE_NAMES)}")

# One pass that every rule's match needs to pass first: most telemetry strings ("search",
# "/v1/chat", "gpt-4o", "step 3") hit none of these, and skip every rule at once. ASCII, so the
# same source compiled over bytes (prefilter.py) fires on a raw record exactly when it fires on one
# of its strings; a non-ASCII character only as a literal outside a class (the names of
# localized_passwords, the blanks and dashes of checksummed), whose UTF-8 bytes Hyperscan matches
# as re matches the character. A unit test checks that every planted value of the generated corpus
# passes it.
PREFILTER_PATTERNS: tuple[str, ...] = (
    r"[A-Za-z0-9._%+-]@[A-Za-z0-9][A-Za-z0-9-]*\.[A-Za-z0-9]", "://", "PRIVATE KEY", "eyJ",
    "AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA", "sk-", "_live_|_test_", "gh[pousr]_|github_pat_", "xox",
    r"hooks\.slack", "AIza", r"ya29\.", "(?i:bearer|aws|" + "|".join(TRIGGER_WORDS) + ")",
    # digit shapes of cards, phones, SSNs, addresses (no lookarounds: a string's neighbours in a
    # raw record are other bytes, and the byte prefilter must fire wherever this fires on the
    # string alone)
    *checksums.PREFILTER, r"\d\d[ .-]\d{3,4}[ .-]\d{3}",
    r"\)[ .-]?\d{3,4}[ .-]\d{3}", r"\+[ \t]?[1-9]", r"00[ \t]?[1-9][\d \t().\-/]{5}", r"\d{3}-\d{2}-\d{4}", "(?i:soc)",
    r"\d\.\d{1,3}\.\d{1,3}\.\d", "::",
    r"(?:[0-9A-Fa-f]{1,4}:){7}", r"[A-Z]{2} ?\d{2}", PHONE_CONTEXT_SOURCE,
    *shapes.PREFILTER, *prose.PREFILTER, *vendors.PREFILTER, *CONTACT_PREFILTER, LOCALIZED_SOURCE,
    files.PGPASS_PREFILTER, "Private-Lines", *ESCAPES_PREFILTER, *FOLDING_PREFILTER,
)
PREFILTER_SOURCE = "|".join(f"(?:{p})" for p in PREFILTER_PATTERNS)
PREFILTER = re.compile(PREFILTER_SOURCE, re.ASCII)
