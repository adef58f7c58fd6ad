"""The librdkafka configuration the SDK's producer is created with (producer/transport_delivery.py).

Why these settings matter is in docs/sdk.md ("The Kafka producer"); the behaviour they buy,
against a real broker slowed by a proxy, is tests/integration/test_producer_broker_spin.py.
"""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from agentstream.producer.settings import ProducerSettings
from agentstream.producer.transport_delivery import Delivery


def _conf(**kw) -> dict:
    return Delivery(ProducerSettings(**kw), "agentstream.raw").conf()


def test_idempotent_and_at_most_two_requests_in_flight_by_default():
    conf = _conf()
    assert conf["enable.idempotence"] is True
    assert conf["acks"] == "all"
    assert conf["max.in.flight.requests.per.connection"] == 2
    assert conf["linger.ms"] == 50


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_max_in_flight_setting_reaches_librdkafka(n):
    assert _conf(max_in_flight=n)["max.in.flight.requests.per.connection"] == n


@pytest.mark.parametrize("n", [0, 6, 1000])
def test_max_in_flight_outside_what_idempotence_allows_is_refused(n):
    # librdkafka refuses an idempotent producer with more than 5 in flight at creation, inside
    # the transport thread where the agent would never see it: refuse it at the settings
    with pytest.raises(ValidationError, match="max_in_flight"):
        ProducerSettings(max_in_flight=n)


def test_max_in_flight_from_the_environment(monkeypatch):
    monkeypatch.setenv("AGENTSTREAM_PRODUCER_MAX_IN_FLIGHT", "1")
    assert Delivery(ProducerSettings(), "t").conf()["max.in.flight.requests.per.connection"] == 1


def test_client_conf_still_has_the_last_word():
    conf = _conf(client_conf={"max.in.flight.requests.per.connection": "5", "linger.ms": "50"})
    assert conf["max.in.flight.requests.per.connection"] == "5"
    assert conf["linger.ms"] == "50"
