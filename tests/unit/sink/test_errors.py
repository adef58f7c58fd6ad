"""The sink's errors by class: which ClickHouse/Kafka failures are retried (transient), which
stop the sink (bugs), through ``classify`` and through ``Sink.run`` with a faulty client."""
from __future__ import annotations

import socket
import threading

import pytest
import urllib3
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError, ProgrammingError
from confluent_kafka import KafkaError, KafkaException
from prometheus_client import REGISTRY

from agentstream.schemas.consumer_errors import ConsumerCrash, ErrorClass
from agentstream.sink.errors import TransientError, classify, clickhouse_code
from agentstream.sink.service import Sink
from agentstream.sink.settings import SinkSettings


def ch(code: int, name: str) -> DatabaseError:
    return DatabaseError(f"Code: {code}. DB::Exception: something. ({name})", code=code, name=name)


@pytest.mark.parametrize("exc", [
    ch(252, "TOO_MANY_PARTS"), ch(60, "UNKNOWN_TABLE"), ch(159, "TIMEOUT_EXCEEDED"),
    ch(241, "MEMORY_LIMIT_EXCEEDED"), ch(210, "NETWORK_ERROR"), ch(999, "KEEPER_EXCEPTION"),
    ch(319, "UNKNOWN_STATUS_OF_INSERT"), ch(242, "TABLE_IS_READ_ONLY"),
    DatabaseError("Code: 202. DB::Exception: Too many simultaneous queries"),  # code only in the text
    OperationalError("Error HTTPConnectionPool(host='ch', port=8123): Max retries exceeded"),
    ConnectionRefusedError(111, "Connection refused"), socket.timeout("timed out"),
    urllib3.exceptions.ProtocolError("Connection aborted."),
    KafkaException(KafkaError(KafkaError._TRANSPORT)), KafkaException(KafkaError(KafkaError.REBALANCE_IN_PROGRESS)),
    TransientError("DLQ delivery failed (3 undelivered)"),
], ids=lambda e: f"{type(e).__name__}:{getattr(e, 'name', None) or str(e)[:24]}")
def test_outages_and_overload_are_transient(exc):
    assert classify(exc) is ErrorClass.TRANSIENT


@pytest.mark.parametrize("exc", [
    ch(47, "UNKNOWN_IDENTIFIER"), ch(62, "SYNTAX_ERROR"), ch(516, "AUTHENTICATION_FAILED"),
    ch(16, "NO_SUCH_COLUMN_IN_TABLE"), ProgrammingError("bad parameter"),
    KafkaException(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED)),
    TypeError("unsupported operand"), KeyError("tenant_id"), AttributeError("x"), ValueError("bad"),
    FileNotFoundError("/nope"), RuntimeError("anything else"),
], ids=lambda e: f"{type(e).__name__}:{getattr(e, 'name', None) or str(e)[:24]}")
def test_everything_else_is_a_bug(exc):
    assert classify(exc) is ErrorClass.BUG


def test_the_code_comes_from_the_attribute_or_the_message_of_clickhouse_errors_only():
    assert clickhouse_code(ch(252, "TOO_MANY_PARTS")) == 252
    assert clickhouse_code(DatabaseError("Code: 241. DB::Exception: mem")) == 241
    assert clickhouse_code(RuntimeError("Code: 252. looks like one")) is None


class FaultyClient:
    """A ClickHouse client whose every command fails with ``exc`` (counting the calls)."""

    def __init__(self, exc: BaseException, then_stop: threading.Event | None = None, after: int = 0) -> None:
        self.exc, self.calls, self.stop, self.after = exc, 0, then_stop, after

    def command(self, *_a, **_k):
        self.calls += 1
        if self.stop is not None and self.calls >= self.after:
            self.stop.set()
        raise self.exc

    query = insert = raw_insert = command


def _errors(what: str, error_class: str) -> float:
    """The sink's error counter as /metrics exports it."""
    value = REGISTRY.get_sample_value("agentstream_sink_errors_total",
                                      {"what": what, "error_class": error_class})
    return value or 0.0


def settings() -> SinkSettings:
    # no broker at this address: the sink must not get as far as Kafka in these tests
    return SinkSettings(bootstrap_servers="127.0.0.1:1", retry_initial_s=0.01, retry_max_s=0.02, read_policies=False)


def test_a_bug_stops_the_sink_at_once_and_health_says_so():
    client = FaultyClient(ch(62, "SYNTAX_ERROR"))
    sink = Sink(settings(), client=client)
    before = _errors("migrations", "bug")
    with pytest.raises(ConsumerCrash, match="migrations failed with DatabaseError.*not a transient error"):
        sink.run(threading.Event())
    assert client.calls == 1  # not retried
    h = sink.health()
    assert not h["alive"] and not h["ready"] and "SYNTAX_ERROR" in h["failed"]
    assert _errors("migrations", "bug") == before + 1


def test_a_transient_failure_is_retried_with_backoff_until_stopped_and_the_sink_never_reaches_kafka():
    stop = threading.Event()
    client = FaultyClient(ch(252, "TOO_MANY_PARTS"), then_stop=stop, after=5)
    sink = Sink(settings(), client=client)
    sink.run(stop)  # returns: stopped while waiting out the outage, nothing raised
    h = sink.health()
    assert client.calls == 5 and h["failed"] is None and "TOO_MANY_PARTS" in h["last_error"]
    assert not h["migrated"]
