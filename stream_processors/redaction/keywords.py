"""Key-name-aware detection: a value assigned to a sensitive name is a secret, whatever the syntax.

Learned from detect-secrets' keyword plugin: find an assignment first (``k=v``, ``k: v``,
``"k": "v"``, ``k = 'v'``, ``export K="v"``, ``&k=v``, ``SET k = 'v'``, ``k => v``, ``k := v``,
``--k v``, JSON escaped inside a string, an HTTP header), then judge the NAME by its words
(``AWS_SECRET_ACCESS_KEY`` → aws/secret/access/key) rather than listing spellings, and the VALUE
by what it must look like: any non-placeholder for a password or secret, something random-looking
(entropy, character classes) for a name that is only weakly sensitive (``encryption_key`` yes,
``cache_key=user:42`` no), digits of the right shape for a national id.
"""
from __future__ import annotations

import json
import math
import re
from typing import Iterator

# The name vocabulary lives with the attribute keys, so that an attribute's key is judged by the
# same words as a name in text.
from agentstream.schemas.attribute_keys import (
    PASSWORD_WORDS_LOCALIZED, STRONG, classify, credential_key, names_password_localized, words)
from agentstream.schemas.letter_pairs import random_letters, shannon_bits

# Names whose value a person chose: one short word is a password ("pw: maple"), unless it is how a
# password is handled ("password: none", "passwd: files", "pwd: ask").
PASSWORD_WORDS = frozenset(("password", "passwd", "pwd", "pw", "pass", "passphrase", "passcode"))
SETTING_WORDS = frozenset((
    "none", "null", "nil", "auto", "true", "false", "yes", "no", "on", "off", "plain", "text", "md5", "sha1",
    "file", "files", "env", "ask", "prompt", "stdin", "vault", "hidden", "empty", "blank", "unset", "set",
    "basic", "trust", "peer", "ident", "ldap", "scram", "pam", "kerberos", "oauth", "oidc", "saml", "sso",
    "local", "shadow", "compat", "db", "hash", "salt", "bcrypt", "argon", "mask", "masked", "same",
    "admin_only", "keep", "skip", "read", "write", "show", "hide", "allow", "deny", "sent", "fail",
    "ok", "okay", "done", "good", "bad", "weak", "strong", "long", "short", "reset", "valid", "wrong",
))
# Words that say something ABOUT a password rather than being it ("the password is incorrect",
# "Kennwort: erforderlich"): prose_credentials reads the first word of a value by them.
ABOUT = frozenset((
    "incorrect", "correct", "wrong", "invalid", "valid", "required", "expired", "missing", "empty", "weak",
    "strong", "too", "not", "being", "been", "set", "unset", "changed", "reset", "updated", "rotated",
    "needed", "optional", "mandatory", "ok", "okay", "fine", "good", "bad", "same", "different", "also",
    "still", "now", "very", "the", "a", "an", "your", "my", "our", "their", "its", "this", "that", "what",
    "which", "in", "on", "at", "from", "saved", "visible", "hidden", "shown", "masked", "redacted", "blank",
    "null", "none", "known", "unknown", "accepted", "rejected", "locked", "disabled", "enabled", "active",
    "generated", "random", "new", "old", "sent", "emailed", "managed", "stored", "kept", "case", "only",
    "case-sensitive", "sensitive", "encrypted", "hashed", "used", "reused", "shared", "long",
    "short", "complex", "simple", "easy", "hard", "secure", "insecure", "unchanged", "provided", "given",
    "entered", "typed", "available", "unavailable", "please", "must", "should", "will", "can", "cannot",
    "may", "has", "had", "have", "to", "for", "of", "and", "or", "but", "if", "when", "here", "there",
    "below", "above", "attached", "identical", "stale", "outdated", "leaked", "last", "yesterday", "today",
    "recently", "already", "again", "successfully", "about", "like", "probably", "just",
    # the same in the other languages the rule reads
    "falsch", "richtig", "ungültig", "abgelaufen", "erforderlich", "zu", "sehr", "nicht", "kurz", "lang",
    "geändert", "incorrecto", "incorrecta", "inválido", "inválida", "requerido", "requerida", "muy",
    "demasiado", "corto", "corta", "no", "caducado", "caducada", "faux", "fausse", "invalide",
    "requis", "obligatoire", "trop", "très", "pas", "court", "courte", "expiré", "incorreto", "incorreta",
    "obrigatória", "não", "muito", "curta", "onjuist", "ongeldig", "niet", "te", "verplicht",
    "fel", "ogiltigt", "inte", "för", "väärä", "virheellinen", "ei", "liian", "sbagliata", "errata",
    "obbligatoria", "troppo", "non", "obligatoria", "obligatorio", "requise", "obrigatório", "vereist", "krävs",
    "pakollinen", "kötelező", "helytelen", "wymagane", "nieprawidłowe", "błędne", "errato", "hatalı",
    "gerekli", "yanlış", "povinné", "nesprávné", "vergessen", "oublié", "olvidada", "esquecida",
    # "none" in those languages: "Contraseña de prueba: ninguna" says there is no password
    "ninguna", "ninguno", "aucun", "aucune", "kein", "keine", "keins", "nenhuma", "nenhum", "geen", "ingen",
    "brak", "nessuna", "nessuno", "yok", "žádné", "nincs",
    # more words that describe rather than are ("the password is secret", "is pending", "is mine")
    "secret", "public", "private", "protected", "ready", "pending", "compromised", "mine", "yours", "his",
    "hers", "ours", "theirs", "great", "right", "fixed", "temporary", "permanent", "unique", "common",
    "obvious", "easy-to-guess", "guessable", "predictable", "complicated", "enough", "unsafe", "safe",
    "plaintext", "plain", "cleartext", "readable", "unreadable", "invalidated", "expiring", "working",
    "wrong", "incorrect", "different", "nothing", "something", "anything", "everything", "unclear",
    "forgotten", "lost", "there", "sensitive", "case-insensitive", "insensitive", "protected", "needed",
    "what", "whatever", "mandatory", "inside", "elsewhere", "somewhere", "unset", "pwned", "absent",
    "present", "never", "always", "usually", "often", "sometimes", "rarely", "typically", "generally",
))
# Type names: in code an agent prints, "password: bytes | None" annotates a parameter, it holds no value.
_TYPE_NAMES = frozenset((
    "str", "string", "bytes", "bytearray", "int", "bool", "boolean", "any", "object", "optional", "union",
    "none", "secretstr", "secretbytes", "hiddentext", "callable", "final", "annotated", "notrequired",
    "required", "readonly", "dict", "list", "tuple", "mapping", "sequence", "char", "varchar", "text",
))
_TYPE_HEAD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_NO_LITERAL_CALL = re.compile(r"\((?:[ \t]*[A-Za-z_][\w.]*[ \t]*(?:,[ \t]*[A-Za-z_][\w.]*[ \t]*)*)?\)")
# the default after an annotation: password: str = "Hunter2!x"
_DEFAULT = re.compile(r"[^=\n,;()]{0,80}?(?<![=!<>])=(?!=)[ \t]*(?P<q>[\"'`])(?P<d>[^\n\"'`]{1,512})(?P=q)")


def type_annotation(v: str) -> bool:
    """``bytes``, ``Optional[str]``, ``str | None``, ``typing.Final``, ``SecretStr``, a call or a lookup:
    code an agent printed names where a value comes from, it holds none."""
    m = _TYPE_HEAD.match(v)
    if m is None:
        return False
    name, rest = m.group(0).rsplit(".", 1)[-1], v[m.end():].lstrip()
    if _NO_LITERAL_CALL.match(rest) or "." in m.group(0) and rest.startswith("["):
        return True  # a call without a literal or a lookup: getpass(), os.environ["DB_PASSWORD"]
    if name.lower() not in _TYPE_NAMES:
        # a class name in a union or generic: "OAuthFlowPassword | None", "ModuleType | None"
        return name[:1].isupper() and rest.startswith(("| None", "|None", "[")) and not any(c.isdigit() for c in name)
    return rest == "" or rest.startswith(("[", "|", "=", "<", ")", ","))


# Every word stem a sensitive name can hold: the trigger and the byte prefilter are built from it, so
# a text the assignment rule can flag always passes both.
TRIGGER_WORDS = ("pass", "pw", "secret", "cred", "key", "token", "bearer", "cookie", "signature",
                 "salt", "dsn", "otp", "pin", "auth", "session", "sid", "jwt", "conn", "pat",
                 "ssn", "social", "sin", "nino", "national", "tax", "tin", "passport", "aadhaar", "cpf",
                 "nif", "nie", "dni", "bsn", "steuer", "idnr", "personnummer", "pesel", "fiscal",
                 "insee", "nir", "curp", "rfc", "medicare", "nhs", "seed", "kek", "dek", "hmac", "unseal",
                 "recover", "unlock", "enrol", "backup", "material", "mnemonic", "master", "signing",
                 "licen", "mfa", "2fa", "wrapping", "keyring", "keystore", "truststore", "cipher",
                 "activation", "kennw", "contrase", "senha", "wachtw", "senord", "salasan")
TRIGGER = re.compile("|".join(TRIGGER_WORDS), re.IGNORECASE | re.ASCII)
# "Password" in other languages (attribute_keys.PASSWORD_WORDS_BY_LANGUAGE), as literal spellings:
# as written, Capitalised, Title Case and UPPER. Literal, not (?i): the byte prefilter's Hyperscan
# folds ASCII case only, so a rule that finds these names by this source fires exactly where the
# prefilter does (a name written ``HaSłO`` is neither's).
LOCALIZED_SPELLINGS = tuple(sorted({f(w) for w in PASSWORD_WORDS_LOCALIZED
                                    for f in (str, str.capitalize, str.title, str.upper)}, key=lambda w: (-len(w), w)))
LOCALIZED_SOURCE = "|".join(re.escape(w) for w in LOCALIZED_SPELLINGS)
LOCALIZED_TRIGGER = re.compile(LOCALIZED_SOURCE)

_Q = r"(?:\\{0,3}[\"'`])?"  # an optional quote, possibly escaped once or twice (JSON in a string)
ASSIGNMENT = re.compile(
    r"(?<![A-Za-z0-9_])(?:(?P<dash>--?)|(?P<lt><))?(?P<key>[A-Za-z_][A-Za-z0-9_.\-]{0,80})" + _Q +
    r"[ \t]*(?:=>|:=|==|=|:|[ \t](?=\\{0,3}[\"'])|(?(dash)[ \t]|(?!))|(?(lt)>|(?!)))[ \t]*"
    r"(?:(?i:basic|bearer|token|digest|apikey|key|sso-key)[ \t]+)?"
    r"(?:(?P<qq>\\{0,3}[\"'`])(?P<qv>(?:(?!(?P=qq)).){1,512}?)(?P=qq)"
    r"|(?P<v>\d{1,6}(?: \d{1,6}){1,5}(?![\w.-])|[^\s\"'`\\,;&}<>)\]]{1,512}))",
    re.ASCII)
_PLACEHOLDER = re.compile(
    r"^(?:\*+|x+|X+|•+|\.+|-+|_+|\?+|#+|0+|<.*>|\[.*\]|\{.*\}|\$\{.*\}|\$[A-Z_]+|%\(\w+\)[sd]|%[sd]|"
    r"\(?(?:none|null|nil|true|false|yes|no|on|off|required|redacted|hidden|masked|omitted|"
    r"changeme|example|placeholder|undefined|unset|empty|string|str|int|bool|optional|secret|"
    r"password|token|your[-_ ]?\w*|env|default|test|dummy|n/?a|tbd|todo)\)?)$", re.IGNORECASE)


def looks_random(v: str) -> bool:
    """A token a person did not write: long enough, several character classes, high entropy; a
    value without digits must also read as random letters rather than words."""
    if len(v) < 8 or " " in v:
        return False
    if not any(c.isdigit() for c in v):
        return len(v) >= 16 and random_letters(v)
    classes = sum((any(c.islower() for c in v), any(c.isupper() for c in v), True,
                   any(c in "+/=_-~." for c in v)))
    if v.isdigit() or classes < 2:
        return False
    return shannon_bits(v) >= min(3.0, math.log2(len(v)) - 0.3)


def placeholder(v: str) -> bool:
    return bool(_PLACEHOLDER.match(v)) or v.startswith(("${", "{{", "$(", "%(", "<", "[REDACTED", "[DROPPED"))


_NAT_VALUE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ./-]{4,30}[A-Za-z0-9]")
_DECIMAL = re.compile(r"-?\d+\.\d+")
_HEX_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{40}|[0-9a-f]{64}",
                     re.IGNORECASE)


_UUID_ONLY = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)


_NEXT_FIELD = re.compile(r"[&;](?:[ \t]*[A-Za-z_][\w.\-\[\] ]{0,40}=|[ \t]|$|[\r\n])")
_VALUE_RUN = re.compile(r"[^\s\"'`\\<>&;]*")


_ENV_NAME = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")
_CALL_LITERAL = re.compile(r"[A-Za-z_][\w.]*\([ \t]*(?P<q>[\"'])(?P<d>[^\"'\n]{1,512})(?P=q)")


def code_literal(text: str, at: int) -> tuple[int, int] | tuple[()] | None:
    """For a value at ``at`` that is code: the span of the literal it holds, ``()`` if none; None
    when it is not code. ``password: str = "Hunter2!x"`` holds one, ``SecretStr("…")`` too;
    ``password: bytes | None = None`` and ``getpass()`` none."""
    if (call := _CALL_LITERAL.match(text, at)) is not None:
        # os.environ.get("OPENAI_API_KEY"), secret("DB_PASSWORD"): the literal names a variable
        return () if _ENV_NAME.fullmatch(call.group("d")) else call.span("d")
    if not type_annotation(text[at:at + 80]):
        return None
    d = _DEFAULT.match(text, at)
    if d is not None and not placeholder(d.group("d")) and not type_annotation(d.group("d")):
        return d.span("d")
    return ()


def find_assignments(text: str, want: str) -> Iterator[tuple[int, int]]:
    """Spans of values assigned to sensitive names; ``want`` is 'secret' or 'national_id'."""
    pos, search = 0, ASSIGNMENT.search
    while (m := search(text, pos)) is not None:
        kind = classify(m.group("key"))
        # a benign name's "value" may be the next assignment (``locals: ssn='…'``): go on from
        # the end of the name, not of the value
        pos = m.end() if kind is not None else max(m.end("key"), m.start() + 1)
        if kind is None:
            continue
        g = "qv" if m.group("qv") is not None else "v"
        v = m.group(g)
        if kind == "national_id":
            if want != "national_id":
                continue
            digits = sum(c.isdigit() for c in v)
            if digits >= 7 and _NAT_VALUE.fullmatch(v) and not _DECIMAL.fullmatch(v) and not placeholder(v):
                yield m.start(g), m.end(g)
            continue
        if want != "secret":
            continue
        if kind == "strong" and (code := code_literal(text, m.start(g))) is not None:
            if code:
                yield code
            continue
        if placeholder(v) or len(v) < 3:
            continue
        if kind == "key" and (not looks_random(v) or _HEX_ID.fullmatch(v)):
            continue  # an unqualified "key" holding a UUID or a SHA names a thing, not a secret
        if kind == "material" and (not looks_random(v) or _UUID_ONLY.fullmatch(v) or any(c in ":/@" for c in v)):
            continue  # "signing: enabled", "backup: daily", "master: node-3"
        end = m.end(g)
        if g == "v" and kind != "key" and end < len(text) and text[end] in "&;" and \
                not _NEXT_FIELD.match(text, end):
            # "PGPASSWORD=Tr0ub&4xyz", "--http-password=blue;vf9": the separator is not followed
            # by another name=value (a query string, a connection string), so it is part of the value
            while end < len(text) and text[end] in "&;" and not _NEXT_FIELD.match(text, end):
                run = _VALUE_RUN.match(text, end + 1)  # "*": always matches
                end = run.end() if run else end + 1
            v = text[m.start(g):end]
        ws = words(m.group("key"))
        if v.lower() in ABOUT and names_password_localized(ws) and not STRONG & set(ws):
            continue  # "Kennwort: erforderlich", "wachtwoord: onjuist": a name in another language, described
        if ws in (["pwd"], ["oldpwd"]) and v[:1] in "/~":
            continue  # the shell's working directory (PWD=/home/agent), not a password
        if kind == "strong" and len(v) < 6 and v.isalpha() and not (
                len(v) >= 4 and PASSWORD_WORDS & set(ws) and v.lower() not in SETTING_WORDS):
            continue  # "auth: none", "cookie_samesite=Lax": a short bare word reads as a setting
        yield m.start(g), end


def _list_items(v: str) -> list[str]:
    """The strings of a JSON list (OTLP array attributes travel as ``["Basic dXNl…"]``), or [v]."""
    if v[:1] == "[" and v[-1:] == "]":
        try:
            items = json.loads(v)
        except ValueError:
            return [v]
        if isinstance(items, list):
            return [x if isinstance(x, str) else json.dumps(x) for x in items]
    return [v]


def assigned_secret(key: str, value: str) -> str | None:
    """An attribute judged as ``key=value`` (the map entry is the assignment, no syntax to find):
    'secret' or 'national_id' when the value under this name is one, by the rules
    ``find_assignments`` applies to a value it found in text, else None. The caller replaces the
    whole value: under a credential name a value has no part that is safe to keep.

    Only keys the ``TRIGGER`` words or ``LOCALIZED_SPELLINGS`` reach can be judged, so the byte
    prefilter, which holds the same words, fires on every record whose attributes this could change."""
    kind = credential_key(key) if TRIGGER.search(key) or LOCALIZED_TRIGGER.search(key) else None
    if kind is None:
        return None
    ws = words(key)
    for v in _list_items(value.strip()):
        v = v.strip()
        if kind == "national_id":
            if sum(c.isdigit() for c in v) >= 7 and _NAT_VALUE.fullmatch(v) and not _DECIMAL.fullmatch(v) \
                    and not placeholder(v):
                return "national_id"
            continue
        if placeholder(v) or len(v) < 3 or ws in (["pwd"], ["oldpwd"]) and v[:1] in "/~":
            continue
        if kind == "key" and (not looks_random(v) or _HEX_ID.fullmatch(v)):
            continue  # cache_key=user:42, a UUID or a SHA under a bare "key" names a thing
        if kind == "material" and (not looks_random(v) or _UUID_ONLY.fullmatch(v) or any(c in ":/@" for c in v)):
            continue
        if kind == "strong" and len(v) < 6 and v.isalpha() and not (
                len(v) >= 4 and PASSWORD_WORDS & set(ws) and v.lower() not in SETTING_WORDS):
            continue  # "auth: none", "cookie_samesite=Lax": a short bare word is a setting
        return "secret"
    return None
