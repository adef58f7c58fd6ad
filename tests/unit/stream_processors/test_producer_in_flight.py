"""The processors' idempotent producer keeps at most 2 requests in flight per
broker: librdkafka otherwise spins on its broker thread while a request is out and the next batch
has lingered (a broker slower than linger.ms: 41% of a core at +10 ms with linger 5 against 0.8%;
tests/integration/test_producer_broker_spin.py shows the mechanism on the SDK's producer)."""
from __future__ import annotations

from agentstream.stream_processors.emitter import producer_conf


def test_the_processors_producer_keeps_two_requests_in_flight_and_extra_config_wins():
    conf = producer_conf("b:9092", errors_only=True)
    assert conf["max.in.flight.requests.per.connection"] == 2 and conf["enable.idempotence"] is True
    assert conf["delivery.report.only.error"] is True and conf["linger.ms"] == 5
    assert producer_conf("b:9092", extra={"max.in.flight.requests.per.connection": 5})[
        "max.in.flight.requests.per.connection"] == 5


def test_the_processors_producer_compresses_its_batches():
    assert producer_conf("b:9092")["compression.type"] == "lz4"
    assert producer_conf("b:9092", extra={"compression.type": "zstd"})["compression.type"] == "zstd"
