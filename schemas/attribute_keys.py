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
_LONG = re.compile(LONG_TEXT_RUN)
# A free value that reads as a sentence is content, however short: metadata values are names,
# ids, enums, numbers and paths, not four words in a row ("tell me the refund policy"). Matched
# over the value's UTF-8 bytes (a byte >= 0x80 counts as a letter, so Cyrillic or Greek words
# count, and a long run of them is CJK prose). ``PROSE_RUN`` is ASCII source without
# lookarounds, for the byte prefilter; the verdict also wants the fourth word to end there (so
# "(KHTML, like Gecko) Chrome/120" is not prose), which only narrows it: the prefilter, scanning
# raw records with ``PROSE_RUN``, fires wherever the verdict could.
_WORD = r"[A-Za-z\x80-\xff]+(?:['-][A-Za-z\x80-\xff]+)*[,.;:!?'\")]*"  # s'il, well-known
_FOUR_WORDS = r"%s(?:[ \t]+[(\"']*%s){3}" % (_WORD, _WORD)
PROSE_RUN = r"(?:%s|[\x80-\xff]{36,})" % _FOUR_WORDS
_PROSE = re.compile((r"(?:%s(?:[ \t]|$)|[\x80-\xff]{36,})" % _FOUR_WORDS).encode())


def content_trigger_words() -> frozenset[str]:
    """Words one of which every content key contains: the byte prefilter fires on them."""
    out = set(CONTENT_WORDS)
    for name in CONTENT_KEYS:  # a key under ``name`` holds all its words: one is enough
        out.add(max((w for w in _SPLIT.split(name) if w), key=lambda w: (w not in _COMMON, len(w))))
    return frozenset(out)


# Words of content key names too common in metadata keys to be the one the prefilter looks for.
_COMMON = frozenset(("http", "request", "response", "gen_ai", "llm", "ai", "tool", "db"))

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
)
# Words that mean content as the last word of a name (``my_app.prompt``, ``tool_args``; but
# ``input_tokens`` and ``result_count`` are counts).
CONTENT_WORDS = frozenset((
    "prompt", "prompts", "completion", "completions", "messages", "message", "content", "contents",
    "input", "inputs", "output", "outputs", "arguments", "args", "result", "results", "response",
    "request_body", "body", "payload", "query", "question", "answer", "instructions", "transcript",
    "text", "document", "documents", "json_schema", "schema", "parameters", "params", "stacktrace",
    "statement", "history", "context", "chunk", "chunks", "embedding", "embeddings", "template",
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
METADATA_PREFIXES = ("gen_ai.usage.", "llm.token_count.", "agentstream.", "llm.cost.")
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
    if k in METADATA_KEYS or k.startswith(METADATA_PREFIXES):
        return False
    if _has_prefix(k, CONTENT_KEYS):
        return True
    # split before lowercasing: _SPLIT also cuts camelCase (mlflow's spanInputs, userMessage)
    ws = [w.lower() for w in _SPLIT.split(key) if w and not w.isdigit()]
    return bool(ws) and ws[-1] in CONTENT_WORDS


@functools.lru_cache(maxsize=65536)
def key_class(key: str) -> str:
    """'content', 'metadata' or 'free' (cached: the same few keys come with every event)."""
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
    if mode == "METADATA_ONLY" and kind == "free":
        if len(value) > MAX_FREE_VALUE_CHARS and _LONG.search(value):
            return "free_value_too_long"
        if (" " in value or len(value) >= 12) and _PROSE.search(value.encode("utf-8", "surrogatepass")):
            return "free_value_prose"
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
