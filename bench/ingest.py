"""Ingest throughput: the gateway over HTTP (batches of 100) against producing straight to Kafka.

One run, one embedded broker, the same events both ways. The direct path encodes each event
with the Avro codec and produces with the gateway's own durability settings (acks=all,
idempotent), waiting for every acknowledgement; the gateway path posts pre-serialized JSON
batches from a few concurrent clients to a gateway running in its own process and counts only
events answered 2xx (acknowledged by Kafka). Prints both rates and the ratio; the last line is
JSON: {"gateway_ev_s", "direct_ev_s", "ratio", ...}.

    python bench/ingest.py [--events 20000] [--concurrency 8]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid

import httpx
from confluent_kafka import Producer

from agentstream.api.auth import add_key
from agentstream.api.gateway.server import free_port
from agentstream.api.gateway.settings import GatewaySettings
from agentstream.cli.embedded_broker import EmbeddedBroker
from agentstream.schemas import EVENT, Codec, topic_name
from agentstream.schemas.topics import create_topics

BATCH = 100
T0 = (time.time_ns() // 1000 // 1_000_000 - 3600) * 1_000_000  # within the accepted event times


def make_events(n: int) -> list[dict]:
    out = []
    for i in range(n):
        run = f"run-{i // 50}"
        out.append({
            "event_id": str(uuid.uuid4()), "agent_id": "bench-agent", "agent_version": "1.0",
            "environment": "bench", "run_id": run, "seq": i % 50, "ts_us": T0 + i,
            "sdk_version": "bench/1", "kind": "STEP", "attributes": {"team": "perf"},
            "payload": {"step_id": f"s{i}", "step_kind": "LLM", "name": "chat", "status": "OK",
                        "started_us": T0 + i, "latency_ms": 420.5,
                        "llm": {"provider": "openai", "request_model": "gpt-4o-mini",
                                "input_tokens": 1200, "output_tokens": 240, "cost_usd": 0.00032,
                                "finish_reasons": ["stop"]}},
        })
    return out


def direct(bootstrap: str, topic: str, events: list[dict], tenant: str) -> float:
    conf = GatewaySettings(bootstrap_servers=bootstrap).producer_conf()
    p = Producer(conf)
    codec = Codec()
    failed = []

    def cb(err, msg):
        if err is not None:
            failed.append(err)
    records = [(e["run_id"].encode(), _defaults({**e, "tenant_id": tenant, "emitted_us": T0}))
               for e in events]
    t = time.perf_counter()
    for key, rec in records:
        value = codec.encode(EVENT, rec)
        while True:
            try:
                p.produce(topic, value, key, on_delivery=cb)
                break
            except BufferError:
                p.poll(0.01)
        p.poll(0)
    left = p.flush(60)
    elapsed = time.perf_counter() - t
    if failed or left:
        raise SystemExit(f"direct produce failed: {failed[:3]} left={left}")
    return len(events) / elapsed


_VALIDATOR = None


def _defaults(rec: dict) -> dict:
    # The same normalization the gateway applies, so both paths encode identical records.
    global _VALIDATOR
    if _VALIDATOR is None:
        from agentstream.api.gateway.validation import EventValidator
        _VALIDATOR = EventValidator()
    out, issues = _VALIDATOR.validate(rec, rec["tenant_id"], T0)
    assert not issues, issues
    return out


async def through_gateway(url: str, key: str, bodies: list[bytes], concurrency: int) -> float:
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for b in bodies:
        queue.put_nowait(b)
    accepted = 0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal accepted
        while True:
            try:
                body = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            r = await client.post(url + "/v1/ingest", content=body, headers=headers)
            if r.status_code != 200:
                raise SystemExit(f"gateway answered {r.status_code}: {r.text[:300]}")
            accepted += r.json()["accepted"]

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        t = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - t
    return accepted / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--concurrency", type=int, default=8)
    args = ap.parse_args()
    n = args.events - args.events % BATCH

    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        bootstrap, prefix = broker.bootstrap_servers, "bench."
        create_topics(bootstrap, prefix, partitions=4)
        topic = topic_name("raw", prefix)
        tenant = "bench-tenant"
        key = add_key(os.path.join(tmp, "keys.json"), tenant, scopes=["write"])
        port = free_port()
        gw = subprocess.Popen(
            [sys.executable, "-m", "agentstream.api.gateway", "run", "--port", str(port),
             "--bootstrap-servers", bootstrap, "--topic-prefix", prefix,
             "--api-keys-file", os.path.join(tmp, "keys.json"), "--log-level", "warning"],
            env={**os.environ, "AGENTSTREAM_GATEWAY_RATE_LIMIT_EVENTS_PER_S": "1000000000",
                 "AGENTSTREAM_GATEWAY_RATE_LIMIT_BURST": "1000000000"},
            stdout=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or gw.poll() is not None:
                    raise SystemExit("gateway did not become ready")
                time.sleep(0.1)

            warm = make_events(2 * BATCH)
            direct(bootstrap, topic, warm, tenant)
            asyncio.run(through_gateway(url, key, [json.dumps(warm[i:i + BATCH]).encode()
                                                   for i in range(0, len(warm), BATCH)], 2))

            events = make_events(n)
            direct_ev_s = direct(bootstrap, topic, events, tenant)
            events = make_events(n)  # fresh ids: the same shape, no duplicates on raw
            bodies = [json.dumps({"events": events[i:i + BATCH]}).encode()
                      for i in range(0, n, BATCH)]
            gateway_ev_s = asyncio.run(through_gateway(url, key, bodies, args.concurrency))
        finally:
            gw.terminate()
            gw.wait(30)

    ratio = gateway_ev_s / direct_ev_s
    print(f"events                      {n}")
    print(f"direct  (encode+produce+ack) {direct_ev_s:10.0f} ev/s")
    print(f"gateway (HTTP, batch {BATCH}, {args.concurrency} clients) {gateway_ev_s:10.0f} ev/s")
    print(f"ratio                       {ratio:.2f}x  (target >= 0.30x)")
    print(json.dumps({"gateway_ev_s": round(gateway_ev_s, 1), "direct_ev_s": round(direct_ev_s, 1),
                      "ratio": round(ratio, 3), "events": n, "batch": BATCH,
                      "concurrency": args.concurrency, "target_ratio": 0.3}))


if __name__ == "__main__":
    main()
