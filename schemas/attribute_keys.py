"""Which event attributes are metadata: the allow-list every path applies under ``metadata_only``.

Content is allow-listed, not deny-listed (DESIGN.md). An attribute survives ``metadata_only`` when
its key is known metadata (the OpenTelemetry GenAI and OpenInference semantic conventions' model,
token, tool-name, status and timing keys, HTTP/RPC/DB operation names, ids) or when it is a short
scalar (≤ ``MAX_FREE_VALUE_CHARS``) that does not read as prose (``PROSE_RUN``) and then passes
redaction. Keys known to carry content
(messages, prompts, completions, tool arguments/results, JSON schemas, invocation parameters,
entity input/output of Traceloop and LangChain) are dropped whatever their length, in every
capture mode except ``redacted``, where the processors redact them like any text.

Pure data and functions, shared by the SDK, the gateway and the processors (all may import
schemas), so the three paths cannot disagree.
"""
from __future__ import annotations

import functools
import re
from typing import Any

# A free-form value with a longer run of text than this is not a "short scalar": dropped under
# metadata_only. Measured as a run without C0 control characters (tab and line breaks count as
# text) so that the byte prefilter can see the same run in a raw record without a schema.
MAX_FREE_VALUE_CHARS = 256
LONG_TEXT_RUN = r"[^\x00-\x08\x0e-\x1f]{%d,}" % (MAX_FREE_VALUE_CHARS + 1)
# A free value that reads as a sentence is content, however short: metadata values are names,
# ids, enums, numbers and paths, not four words in a row ("tell me the refund policy"). Matched
# over the value's UTF-8 bytes (a byte >= 0x80 counts as a letter, so Cyrillic or Greek words
# count, and a long run of them is CJK prose). ``PROSE_RUN`` is ASCII source without
# lookarounds, for the byte prefilter; the verdict also wants the fourth word to end there (so
# "(KHTML, like Gecko) Chrome/120" is not prose), which only narrows it: the prefilter, scanning
# raw records with ``PROSE_RUN``, fires wherever the verdict could.
_WORD = r"[A-Za-z\x80-\xff]+(?:['-][A-Za-z\x80-\xff]+)*[,.;:!?'\")]*"  # s'il, well-known
# Words are apart by any space a text can hold, as UTF-8: ASCII blanks and line breaks, and
# U+00A0, U+2000-200B, U+2028/2029, U+202F, U+205F/2060, U+3000, U+FEFF (a no-break, thin,
# ideographic or zero-width space between the words kept a sentence whole before: its bytes
# read as letters).
_SPACE = r"(?:[ \t\n\r\x0b\x0c]|\xc2\xa0|\xe2\x80[\x80-\x8b\xa8\xa9\xaf]|\xe2\x81[\x9f\xa0]|\xe3\x80\x80|\xef\xbb\xbf)"
_FOUR_WORDS = r"%s(?:%s+[(\"']*%s){3}" % (_WORD, _SPACE, _WORD)
PROSE_RUN = r"(?:%s|[\x80-\xff]{36,})" % _FOUR_WORDS
_PROSE = re.compile((r"(?:%s(?:%s|$)|[\x80-\xff]{36,})" % (_FOUR_WORDS, _SPACE)).encode())


def content_trigger_words() -> frozenset[str]:
    """Words (regex alternatives: a name of common words only is its escaped self) one of which
    every content key contains: the byte prefilter fires on them."""
    out = set(CONTENT_WORDS)
    for name in CONTENT_KEYS:  # a key under ``name`` holds all its words: one is enough
        word = max((w for w in _SPLIT.split(name) if w), key=lambda w: (w not in _COMMON, len(w)))
        # (a name of common words only, ``ai.value``, is looked for whole: a pattern, escaped)
        out.add(re.escape(name) if word in _COMMON else word)
    return frozenset(out)


# Words of content key names too common in metadata keys to be the one the prefilter looks for.
_COMMON = frozenset(("http", "request", "response", "gen_ai", "llm", "ai", "tool", "db", "value", "values"))

# Content keys: exact names or dotted prefixes (an indexed variant ``llm.input_messages.0.message.
# content`` falls under ``llm.input_messages``). Matched case-insensitively.
CONTENT_KEYS = (
    # OpenTelemetry GenAI (current and deprecated spellings)
    "gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions",
    "gen_ai.tool.call.arguments", "gen_ai.tool.call.result", "gen_ai.tool.definitions",
    "gen_ai.prompt", "gen_ai.completion", "gen_ai.content", "gen_ai.choice", "gen_ai.user.message",
    "gen_ai.system.message", "gen_ai.assistant.message", "gen_ai.tool.message",
    "gen_ai.retrieval.documents", "gen_ai.retrieval.query", "gen_ai.embeddings.input",
    # OpenInference
    "input.value", "output.value", "llm.input_messages", "llm.output_messages", "llm.prompts",
    "llm.prompt_template", "llm.invocation_parameters", "llm.tools", "llm.function_call",
    "llm.completions", "tool.parameters", "tool.json_schema", "tool_call.function.arguments",
    "message.content", "message.contents", "message.tool_calls", "retrieval.documents",
    "reranker.input_documents", "reranker.output_documents", "reranker.query", "embedding.embeddings",
    "embedding.text", "document.content", "document.metadata", "prompt.template", "tool.description",
    # Traceloop / OpenLLMetry and LangChain / LangSmith
    "traceloop.entity.input", "traceloop.entity.output", "traceloop.association.properties",
    "langchain.entity.input", "langchain.entity.output", "langchain.inputs", "langchain.outputs",
    "langchain.prompt", "langsmith.inputs", "langsmith.outputs",
    # Other instrumentations' prompt/response fields
    "llm.request.functions", "ai.prompt", "ai.response", "ai.toolcall.args",
    "ai.toolcall.result", "http.request.body", "http.response.body", "db.statement", "db.query.text",
    "exception.stacktrace",
    # Vercel AI SDK, Google ADK, pydantic-ai / Logfire, MLflow
    "ai.value", "ai.values", "ai.result", "gcp.vertex.agent.llm_request", "gcp.vertex.agent.llm_response",
    "gcp.vertex.agent.data", "gcp.vertex.agent.tool_call_args", "gcp.vertex.agent.tool_response",
    "all_messages_events", "logfire.msg", "mlflow.chat.tools", "gen_ai.evaluation.explanation",
)
# Words that mean content as the last word of a name (``my_app.prompt``, ``tool_args``; but
# ``input_tokens`` and ``result_count`` are counts).
CONTENT_WORDS = frozenset((
    "prompt", "prompts", "completion", "completions", "messages", "message", "content", "contents",
    "input", "inputs", "output", "outputs", "arguments", "args", "result", "results", "response",
    "request_body", "body", "payload", "query", "question", "answer", "instructions", "transcript",
    "text", "document", "documents", "json_schema", "schema", "parameters", "params", "stacktrace",
    "statement", "history", "context", "chunk", "chunks", "embedding", "embeddings", "template",
    # what a model or a person wrote: a model's reasoning, an agent's observation, a user's reply
    "reasoning", "thinking", "thought", "thoughts", "observation", "observations", "utterance", "reply",
    "explanation", "rationale",
))
# Known metadata: kept under metadata_only whatever the length (still redacted). Exact names, then
# prefixes whose every key is metadata.
METADATA_KEYS = frozenset((
    "gen_ai.operation.name", "gen_ai.system", "gen_ai.provider.name", "gen_ai.request.model",
    "gen_ai.response.model", "gen_ai.response.id", "gen_ai.response.finish_reasons",
    "gen_ai.request.max_tokens", "gen_ai.request.temperature", "gen_ai.request.top_p",
    "gen_ai.request.top_k", "gen_ai.request.seed", "gen_ai.request.stop_sequences",
    "gen_ai.request.frequency_penalty", "gen_ai.request.presence_penalty", "gen_ai.request.choice.count",
    "gen_ai.output.type", "gen_ai.tool.name", "gen_ai.tool.call.id", "gen_ai.tool.type",
    "gen_ai.agent.id", "gen_ai.agent.name", "gen_ai.agent.role", "gen_ai.conversation.id",
    "gen_ai.data_source.id", "gen_ai.openai.request.service_tier", "gen_ai.openai.response.service_tier",
    "gen_ai.openai.response.system_fingerprint", "openinference.span.kind", "llm.model_name",
    "llm.provider", "llm.system", "tool.name", "tool.id", "session.id", "user.id", "agent.name",
    "graph.node.id", "graph.node.name", "graph.node.parent_id", "embedding.model_name",
    "reranker.model_name", "reranker.top_k", "http.route", "http.method", "http.request.method",
    "http.status_code", "http.response.status_code", "url.scheme", "server.address", "server.port",
    "rpc.system", "rpc.service", "rpc.method", "db.system", "db.system.name", "db.operation",
    "db.operation.name", "db.collection.name", "db.namespace", "error.type", "exception.type",
    "otel.span_name", "otel.span_id", "otel.scope", "otel.status_code", "service.name",
    "service.version", "deployment.environment", "telemetry.sdk.name", "telemetry.sdk.version",
    "user_agent.original", "http.user_agent", "user_agent.name", "os.description", "host.name",
))
# Our own keys (``agentstream.progress_fingerprint``, ``agentstream.budget.limit``…) are digests,
# ids, codes and numbers: metadata, but judged as free values all the same, so that a producer
# writing a prompt under ``agentstream.note`` does not have it kept whatever its length.
METADATA_PREFIXES: tuple[str, ...] = ()
# Usage figures: a number under one of these is metadata; anything else there is judged as a free
# value (``gen_ai.usage.prompt`` holding a sentence is not a usage figure).
NUMERIC_PREFIXES = ("gen_ai.usage.", "llm.token_count.", "llm.cost.")
_NUMBER = re.compile(r"\s*[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\s*")
_SPLIT = re.compile(r"[._\-\s/:]+|(?<=[a-z0-9])(?=[A-Z])")


def _has_prefix(key: str, names: tuple[str, ...]) -> bool:
    for n in names:
        if key == n or (key.startswith(n) and key[len(n)] in "._[/"):
            return True
        # an indexed OpenInference path: llm.output_messages.0.message.tool_calls.0.tool_call.…
        if "." + n in key:
            i = key.index("." + n) + 1 + len(n)
            if i == len(key) or key[i] in "._[/":
                return True
    return False


def is_metadata_key(key: str) -> bool:
    k = key.lower()
    return k in METADATA_KEYS or k.startswith(METADATA_PREFIXES)


def is_content_key(key: str) -> bool:
    """A key whose value is content (prompt, output, arguments…) whatever the value looks like."""
    k = key.lower()
    if k in METADATA_KEYS:
        return False
    if _has_prefix(k, CONTENT_KEYS):
        return True
    # split before lowercasing: _SPLIT also cuts camelCase (mlflow's spanInputs, userMessage)
    ws = [w.lower() for w in _SPLIT.split(key) if w and not w.isdigit()]
    # a metadata prefix (usage counts, our own keys) does not make ``agentstream.prompt`` or
    # ``gen_ai.usage.prompt`` metadata: the name still ends in a content word
    return bool(ws) and ws[-1] in CONTENT_WORDS


@functools.lru_cache(maxsize=65536)
def key_class(key: str) -> str:
    """'numeric', 'content', 'metadata' or 'free' (cached: the same few keys come with every
    event)."""
    if key.lower().startswith(NUMERIC_PREFIXES):
        return "numeric"  # before content words: llm.token_count.prompt is a count
    if is_content_key(key):
        return "content"
    return "metadata" if is_metadata_key(key) else "free"


def attribute_verdict(key: str, value: str, mode: str) -> str | None:
    """None to keep (the caller still redacts), else the reason the attribute is dropped.

    ``mode`` is the wire capture mode (METADATA_ONLY, REDACTED, SECURE_REFERENCE)."""
    if mode == "REDACTED":
        return None  # previews may travel; the processors redact every value
    kind = key_class(key)
    if kind == "content":
        return "content_key"
    if kind == "numeric":
        kind = "metadata" if _NUMBER.fullmatch(value) else "free"
    if mode != "METADATA_ONLY":
        return None
    if kind != "metadata" and (reason := _free_key_verdict(key)) is not None:
        return reason
    return free_value_verdict(value) if kind == "free" else None


def free_value_verdict(value: str) -> str | None:
    """Why a free text may not travel under metadata_only (None: it may): a short scalar that is
    not prose is metadata, anything else content."""
    # Any free value past the bound, whatever it holds: a control character every 250
    # characters kept a long text out of ``LONG_TEXT_RUN`` (the byte prefilter sees such a
    # value by its length: prefilter.text_may_need_redaction).
    if len(value) > MAX_FREE_VALUE_CHARS:
        return "free_value_too_long"
    if len(value) >= 7 and _PROSE.search(value.encode("utf-8", "surrogatepass")):  # 7: "a b c d"
        return "free_value_prose"
    return None


@functools.lru_cache(maxsize=65536)
def _free_key_verdict(key: str) -> str | None:
    """A key that is not a name: a producer that writes a sentence as the key (``note.Patient
    Maria Gonzalez, DOB …``) stores it as surely as a value, so a free key is held to a free
    value's bounds."""
    if len(key) > MAX_FREE_VALUE_CHARS:
        return "free_key_too_long"
    if len(key) >= 7 and _PROSE.search(key.encode("utf-8", "surrogatepass")):
        return "free_key_prose"
    return None


def split_attributes(attrs: dict[str, Any], mode: str) -> tuple[dict[str, Any], dict[str, int]]:
    """(the attributes ``mode`` keeps, {"dropped_attribute:<reason>": count}); the same dict
    back when nothing is dropped."""
    if not attrs or mode == "REDACTED":
        return attrs, {}
    out: dict[str, Any] | None = None
    counts: dict[str, int] = {}
    for k, v in attrs.items():
        reason = attribute_verdict(str(k), v if isinstance(v, str) else str(v), mode)
        if reason is not None:
            if out is None:
                out = dict(attrs)
            del out[k]
            key = "dropped_attribute:" + reason
            counts[key] = counts.get(key, 0) + 1
    return (attrs if out is None else out), counts


# ---- credential names ---------------------------------------------------------------------
# The vocabulary the processors' key-aware rule (stream_processors/redaction/keywords.py) judges
# an assignment's NAME by, here so that every path judges an attribute's KEY by the same words:
# an attribute is ``key=value``, and a secret under ``db.password`` or
# ``http.request.header.authorization`` is a secret whatever the value looks like on its own.

# Words that make a name a credential on their own.
STRONG = frozenset((
    "password", "passwd", "pwd", "pw", "pass", "passphrase", "passcode", "secret", "secrets", "credential",
    "credentials", "creds", "cred", "apikey", "token", "accesstoken", "authtoken", "bearer", "cookie",
    "privatekey", "secretkey", "accesskey", "clientsecret", "otp", "pin",
    "authorization", "sessionid", "jwt", "connstr", "connectionstring", "pat",
))
# Words that name a credential only when the value looks like one (random-looking), as a bare
# "key" does: ``auth=oauth2`` is a scheme, ``function.signature=def f(x)`` code, ``dsn=sentry`` a
# name, while ``X-Amz-Signature=<64 hex>`` and ``auth=<token>`` still are secrets.
WEAK = frozenset(("signature", "auth", "salt", "dsn"))
# Unambiguous inside one unsplit word too (ADMINPASSWORD, dbsecret, myapikey).
_STRONG_STEMS = ("password", "passwd", "passphrase", "secret", "credential", "apikey", "accesstoken",
                 "authtoken", "refreshtoken", "sessiontoken", "privatekey", "secretkey", "accesskey")
# "key" is sensitive next to one of these ("encryption_key"), or when its value looks random.
KEY_QUALIFIERS = frozenset((
    "api", "access", "secret", "private", "encryption", "encrypt", "decryption", "signing", "sign",
    "master", "license", "licence", "client", "app", "service", "account", "crypto", "hmac", "aes",
    "ssh", "gpg", "pgp", "deploy", "admin", "root", "jwt", "session", "webhook", "auth", "subscription",
    "consumer", "shared", "kms", "rsa", "ed25519", "cipher", "x", "ocp", "apim", "storage",
))
# Names that say the value is a count, a type or a public handle, not a credential.
BENIGN = frozenset((
    "count", "counts", "tokens", "usage", "limit", "limits", "max", "min", "total", "num", "budget",
    "type", "types", "kind", "len", "length", "size", "estimate", "expires", "expiry", "exp", "ttl",
    "expiration", "expired", "name", "names", "id", "ids", "field", "format", "version", "public",
    "pub", "primary", "sort", "partition", "cache", "idempotency", "foreign", "routing", "dedup",
    "shard", "lookup", "object", "bucket", "row", "map", "index", "unique", "hint", "path", "file",
    "url", "uri", "endpoint", "header", "param", "policy", "rotation", "rotated", "hash", "fingerprint",
    "prefix", "suffix", "ref", "arn", "location", "store", "vault", "provider", "mode", "strength",
    "min_length", "reset", "page", "next", "cursor", "continuation", "spacing", "placeholder", "label",
    "required", "enabled", "last4", "last", "mask", "masked", "valid", "status",
    "sha", "commit", "digest", "checksum", "algorithm", "alg", "scheme", "scope", "scopes", "audience",
    "method", "methods", "flow", "server", "domain", "host", "realm", "issuer", "strategy", "backend",
    "level", "timeout", "retries", "duration", "at", "time", "date", "created", "updated", "age",
    "samesite", "secure", "httponly", "source", "owner", "user", "username", "email", "headers",
    "region", "zone", "env", "ms", "seconds", "secs", "minutes", "days", "used", "remaining",
    "stdin", "prompt", "fd",  # --password-stdin, password_prompt: how a secret is read, not the secret
))
# Names of key material by what it does rather than "key": a random-looking value under one is a
# secret (``totp_seed``, ``kek``, ``recovery_code``, ``vault_unseal``), hex digests included.
MATERIAL = frozenset((
    "seed", "kek", "dek", "hmac", "unseal", "recovery", "unlock", "enrollment", "enrolment", "backup",
    "material", "mnemonic", "master", "signing", "license", "licence", "otpauth", "totp", "hotp", "mfa",
    "2fa", "wrapping", "keyring", "keystore", "truststore", "cipher", "activation",
))

# The word for "password" in other languages, as people write it (lowercase; the spaces of the
# multi-word ones are the language's own). One table for every path: an attribute key holding one
# is a credential name (``classify``), and the processors' rule finds ``<word>: value`` in text
# with the same words (stream_processors/redaction/localized_passwords.py). The ASCII spellings
# beside a diacritic one are how the word is typed in code and on keyboards without the letter.
# Left out on purpose: Italian "parola" alone (it is "word"), Latvian "parole" (French "speech").
PASSWORD_WORDS_BY_LANGUAGE: dict[str, tuple[str, ...]] = {
    "de": ("passwort", "kennwort"), "fr": ("mot de passe",), "es": ("contraseña", "contrasena"),
    "ca": ("contrasenya",), "pt": ("senha",), "it": ("parola d'ordine",), "nl": ("wachtwoord",),
    "sv": ("lösenord", "losenord"), "da": ("adgangskode",), "no": ("passord",), "fi": ("salasana",),
    "et": ("salasõna",), "lt": ("slaptažodis",), "pl": ("hasło", "haslo"), "cs": ("heslo",),
    "sl": ("geslo",), "hr": ("lozinka",), "hu": ("jelszó", "jelszo"), "ro": ("parolă",),
    "tr": ("şifre", "sifre", "parola"), "ru": ("пароль",), "bg": ("парола",), "sr": ("лозинка",),
    "el": ("κωδικός πρόσβασης", "συνθηματικό"), "zh": ("密码", "密碼", "口令"), "ja": ("パスワード", "暗証番号"),
    "ko": ("비밀번호", "패스워드"), "vi": ("mật khẩu", "mat khau"), "id": ("kata sandi",), "ms": ("kata laluan",),
    "ar": ("كلمة المرور", "كلمة السر"), "fa": ("رمز عبور",), "he": ("סיסמה", "סיסמא"), "hi": ("पासवर्ड",),
    "th": ("รหัสผ่าน",),
}
PASSWORD_WORDS_LOCALIZED: tuple[str, ...] = tuple(sorted({w for ws in PASSWORD_WORDS_BY_LANGUAGE.values() for w in ws}))
# As a key's words see them (``mot_de_passe`` → mot/de/passe): one word, or a run of words.
_LOCALIZED_WORDS = tuple(tuple(_SPLIT.split(w.replace("'", " "))) for w in PASSWORD_WORDS_LOCALIZED)


def names_password_localized(ws: list[str]) -> bool:
    """Whether a name's lowercased words say "password" in another language: one of them is the
    word (``db.Passwort``), the words hold its run (``mot_de_passe_admin``), or the name ENDS with
    it glued (``Datenbankpasswort``, ``数据库密码``): a compound's head comes last, so
    ``Passwortlänge`` (a length) and ``密码长度`` are not credentials, and ``the_slot`` holds no
    ``heslo``."""
    joined = "".join(ws)
    for term in _LOCALIZED_WORDS:
        n = len(term)
        # glued only where words glue: a long word (German, Dutch, Nordic compounds) or a script
        # without spaces (``resenha`` is a review, not a ``senha``)
        if n == 1 and (term[0] in ws or joined.endswith(term[0]) and (len(term[0]) >= 6 or term[0] >= "\u2e80")):
            return True
        if n > 1 and any(tuple(ws[i:i + n]) == term for i in range(len(ws) - n + 1)):
            return True
    return False


NATIONAL_ID = frozenset(("ssn", "socialsecurity", "socialsecuritynumber", "sin", "nino", "nationalid",
                         "nationalinsurance", "taxid", "tin", "itin", "passport", "aadhaar", "cpf",
                         "nif", "nie", "dni", "bsn", "steuerid", "idnr", "personnummer", "pesel",
                         "codicefiscale", "insee", "nir", "curp", "rfc", "medicare", "nhs"))
_LONG_NATIONAL = tuple(n for n in NATIONAL_ID if len(n) >= 5)

def words(key: str) -> list[str]:
    return [w.lower() for w in _SPLIT.split(key) if w]


def classify(key: str) -> str | None:
    """'strong', 'key', 'material', 'national_id' or None for a name that is not sensitive."""
    ws = words(key)
    if not ws:
        return None
    joined = "".join(ws)
    tail = ws[-1]
    if joined in NATIONAL_ID or tail in NATIONAL_ID or any(w in NATIONAL_ID for w in ws) and not (
            set(ws) & BENIGN - {"number"}) or any(joined.endswith(n) for n in _LONG_NATIONAL):
        return "national_id"  # x-tax-id, customer_taxid: the long names also as a suffix
    benign = set(ws) & BENIGN
    if tail == "id" and len(ws) > 1 and {"private", "secret"} & set(ws[:-1]):
        return "strong"  # a GCP private_key_id, a Vault AppRole secret_id
    if benign and tail in BENIGN:
        return None  # token_count, password_policy, key_id, secret_name, api_key_prefix …
    if any(w in STRONG for w in ws) or joined in STRONG or any(st in joined for st in _STRONG_STEMS) \
            or joined.endswith(("token", "secret", "pwd")) or names_password_localized(ws):  # csrftoken, dbpwd
        return "strong"
    if "key" in ws or joined.endswith("key") or tail.endswith("key") or any(w in WEAK for w in ws):
        if any(w in KEY_QUALIFIERS for w in ws[:-1]) or joined in ("apikey", "accesskey", "secretkey"):
            return "strong"
        return None if benign else "key"  # cache_key, primary_key, public_key name things
    if tail not in BENIGN and any(w in MATERIAL for w in ws):
        return "material"
    return None


@functools.lru_cache(maxsize=65536)
def credential_key(key: str) -> str | None:
    """How an attribute key names a credential: 'strong' (any value but a placeholder is a
    secret), 'key' or 'material' (a random-looking value is), 'national_id' (an id-shaped value
    is), or None. Known metadata keys are not credentials (``gen_ai.request.max_tokens``)."""
    k = key.lower()
    # usage figures are never credentials, though llm.token_count.completion_details.reasoning
    # holds the word "token"
    if k in METADATA_KEYS or k.startswith(NUMERIC_PREFIXES):
        return None
    return classify(key)
