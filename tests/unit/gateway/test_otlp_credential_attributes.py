"""OTLP span attributes under a credential name (a database password, an HTTP request's
Authorization or X-Api-Key header, an AWS secret) never reach the raw topic: the gateway drops
them by their key, whatever the value looks like alone, and counts them; token counts stay."""
from __future__ import annotations

from agentstream.api.gateway.otlp_decode import OtlpSpan
from agentstream.api.gateway.otlp_mapping import MappingContext, map_spans
from agentstream.api.gateway.pricing import PriceTable

T = 1_760_000_000_000_000_000


def span(sid: str, parent: str, **attrs) -> OtlpSpan:
    return OtlpSpan("0af7651916cd43dd8448eb211c80319c", sid * 16, parent * 16, "s", T, T + 10_000_000, attrs, 0,
                    "", [], {"service.name": "planner"}, "scope")

SECRETS = {
    "db.password": "Tr0ub4dor&3",
    "http.request.header.authorization": ["Basic dXNlcjpwYXNzd29yZA=="],
    "http.request.header.x-api-key": ["q8ZtR2mN5vL0pK7sW3yH9"],
    "http.response.header.set-cookie": ["sid=abc; HttpOnly"],
    "api_key": "9f8e7d6c5b4a39281706f5e4d3c2b1a0",
    "secret": "0b6f1c1e-5a7d-4c1e-9f2a-3d4b5c6d7e8f",
    "aws.secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
}
KEPT = {"gen_ai.usage.input_tokens": 12, "llm.token_count.prompt": 7, "gen_ai.request.max_tokens": 256,
        "max_tokens": 256, "http.request.header.content-type": ["application/json"], "http.request.method": "GET"}


def test_credential_named_attributes_are_dropped_and_counted():
    ev = map_spans([span("b", "a", **SECRETS, **KEPT)],
                   MappingContext("tenant-1", 123, PriceTable().cost)).runs[0].events[0]
    attrs = ev["attributes"]
    for k, v in SECRETS.items():
        assert k not in attrs
        assert str(v[0] if isinstance(v, list) else v) not in repr(ev)
    for k in KEPT:
        assert k in attrs
    assert ev["redaction"]["rule_counts"]["dropped_attribute:credential_key"] == len(SECRETS)
