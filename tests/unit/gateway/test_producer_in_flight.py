"""The gateway's idempotent producer keeps at most 2 requests in flight per broker (the spin it
avoids: tests/unit/stream_processors/test_producer_in_flight.py, docs/sdk.md)."""
from __future__ import annotations

from agentstream.api.gateway.settings import GatewaySettings


def test_the_gateways_producer_keeps_two_requests_in_flight():
    conf = GatewaySettings(bootstrap_servers="b:9092").producer_conf()
    assert conf["max.in.flight.requests.per.connection"] == 2 and conf["enable.idempotence"] is True
