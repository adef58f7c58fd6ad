"""Token buckets, price table, sequence numbers, body limits, key headers, settings."""
from __future__ import annotations

import gzip
import json
import zlib

import pytest

from agentstream.api.gateway.body import read_body
from agentstream.api.gateway.errors import GatewayError
from agentstream.api.gateway.keys import bearer_key
from agentstream.api.gateway.pricing import PriceTable
from agentstream.api.gateway.ratelimit import TokenBuckets, retry_after_header
from agentstream.api.gateway.sequence import SeqAllocator
from agentstream.api.gateway.settings import GatewaySettings


def test_token_bucket_refills_per_tenant():
    now = [0.0]
    b = TokenBuckets(rate=10, burst=20, clock=lambda: now[0])
    assert b.take("a", 20) == 0.0
    assert b.take("a", 5) == pytest.approx(0.5)
    assert b.take("b", 20) == 0.0  # own bucket
    now[0] = 0.5
    assert b.take("a", 5) == 0.0
    b.refund("a", 5)
    assert b.take("a", 5) == 0.0
    assert b.take("c", 10_000) == 0.0  # bigger than the burst: charged as a full bucket
    assert retry_after_header(0.01) == "1" and retry_after_header(2.1) == "3"


def test_price_table_prefix_and_cache(tmp_path):
    p = PriceTable()
    assert p.find("gpt-4o-mini-2024-07-18") is p.prices["gpt-4o-mini"]
    assert p.find("openai/gpt-4o") is p.prices["gpt-4o"]
    assert p.find("gpt-4o-mini") is not p.prices["gpt-4o"]
    assert p.find("nope") is None and p.cost(("nope",), 1, 1) is None
    # cached tokens are part of input_tokens and priced at their own rate
    assert p.cost(("claude-sonnet-4-5",), 1000, 100, 300, 200) == pytest.approx(
        (500 * 3 + 100 * 15 + 300 * 0.3 + 200 * 3.75) / 1e6)
    f = tmp_path / "prices.json"
    f.write_text(json.dumps({"my-model": {"input": 1, "output": 2}}))
    q = PriceTable.load(str(f))
    assert q.cost((None, "my-model-v2"), 10, 10, 5) == pytest.approx(30 / 1e6)


def test_seq_allocator_gap_free_and_gives_back():
    s = SeqAllocator(max_runs=2)
    assert s.allocate("t", "r", 3) == 0
    assert s.allocate("t", "r", 2) == 3
    s.release("t", "r", 3, 2)
    assert s.allocate("t", "r", 1) == 3
    a = s.allocate("t", "r", 1)
    s.release("t", "r", 3, 1)  # not the last allocation: kept
    assert s.allocate("t", "r", 1) == a + 1
    assert s.allocate("u", "r", 1) == 0  # tenants apart


def _read(body: bytes, limit: int, encoding: str = "gzip") -> bytes:
    """``read_body`` on a request as Starlette hands it to the route (no server needed)."""
    import asyncio

    from starlette.requests import Request

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    headers = [(b"content-encoding", encoding.encode())] if encoding else []
    return asyncio.run(read_body(Request({"type": "http", "method": "POST", "headers": headers}, receive),
                                 limit))


def test_inflate_limit():
    data = b"x" * 5000
    assert _read(gzip.compress(data), 10_000) == data
    with pytest.raises(GatewayError) as e:  # a small bomb must not become a big body
        _read(gzip.compress(data), 1000)
    assert e.value.status == 413
    with pytest.raises(GatewayError) as e:
        _read(b"not gzip", 1000)
    assert e.value.status == 400
    assert _read(zlib.compress(data), 10_000, "deflate") == data
    with pytest.raises(GatewayError) as e:
        _read(zlib.compress(data), 1000, "deflate")
    assert e.value.status == 413
    assert _read(data, 10_000, "") == data
    with pytest.raises(GatewayError) as e:
        _read(data, 1000, "")  # plain bodies are bounded too
    assert e.value.status == 413
    with pytest.raises(GatewayError) as e:
        _read(data, 10_000, "br")
    assert e.value.status == 415


def test_bearer_key():
    assert bearer_key("Bearer abc", None) == "abc"
    assert bearer_key("bearer  abc ", None) == "abc"
    assert bearer_key("Basic abc", None) is None
    assert bearer_key(None, "k") == "k" and bearer_key(None, None) is None


def test_settings_producer_conf_is_durable(monkeypatch):
    monkeypatch.setenv("AGENTSTREAM_GATEWAY_BOOTSTRAP_SERVERS", "k:9092")
    monkeypatch.setenv("AGENTSTREAM_GATEWAY_PRODUCER_CONFIG", '{"sasl.password": "s3cret"}')
    s = GatewaySettings()
    conf = s.producer_conf()
    assert conf["acks"] == "all" and conf["enable.idempotence"] is True
    assert conf["partitioner"] == "murmur2_random"
    assert conf["bootstrap.servers"] == "k:9092" and conf["sasl.password"] == "s3cret"
    assert "s3cret" not in repr(s)
    assert conf["message.timeout.ms"] == s.delivery_timeout_ms


def test_price_override_in_the_sdk_layout(tmp_path):
    f = tmp_path / "prices.json"
    f.write_text(json.dumps({"doc": "x", "providers": {"acme": {"acme-1": {
        "input": 1, "output": 1, "cache_read": 0.5, "cache_write": 0}}}}))
    q = PriceTable.load(str(f))
    assert q.cost(("acme-1-2025",), 10, 0, 4) == pytest.approx((6 + 2) / 1e6)
    assert q.find("gpt-4o") is not None  # defaults kept
