"""The DLQ ratio guard both consumers share, and the Kafka side of error classification."""
from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException

from agentstream.schemas.consumer_errors import (
    DlqRatioExceeded,
    DlqRatioGuard,
    ErrorClass,
    kafka_error_class,
    network_error_class,
)


def test_the_guard_trips_when_most_of_a_window_is_dead_lettered_and_names_where():
    g = DlqRatioGuard(0.5, window=100, min_records=50)
    g.observe(40, 39, "raw[0] offsets 0-39")  # below min_records: no verdict yet
    with pytest.raises(DlqRatioExceeded, match=r"raw\[1\] offsets 40-59") as exc:
        g.observe(20, 20, "raw[1] offsets 40-59")
    assert "59 of the last 60" in str(exc.value)


def test_the_guard_tolerates_a_minority_and_exactly_the_limit():
    g = DlqRatioGuard(0.5, window=100, min_records=10)
    for _ in range(50):
        g.observe(10, 5, "x")  # 50% is the limit, not over it
    g.observe(10, 0, "x")


def test_the_window_forgets_old_batches_so_a_bad_burst_long_ago_does_not_count():
    g = DlqRatioGuard(0.5, window=100, min_records=10)
    g.observe(8, 8, "early")  # too few to judge
    for _ in range(20):
        g.observe(10, 0, "good")
    assert g.total <= 110 and g.bad == 0  # the early burst slid out
    for _ in range(4):
        g.observe(10, 10, "bad")  # 40 of ~100: under half
    with pytest.raises(DlqRatioExceeded):
        for _ in range(3):
            g.observe(10, 10, "bad")


def test_a_single_batch_larger_than_the_window_is_judged_on_its_own():
    g = DlqRatioGuard(0.5, window=10, min_records=5)
    g.observe(1000, 0, "good")
    with pytest.raises(DlqRatioExceeded):
        g.observe(1000, 900, "bad")


def test_ratio_one_never_trips_and_bad_input_is_refused():
    g = DlqRatioGuard(1.0, window=10, min_records=1)
    g.observe(100, 100, "all bad")
    g.observe(0, 0, "empty batch")
    with pytest.raises(ValueError):
        g.observe(5, 6, "more bad than total")
    with pytest.raises(ValueError):
        DlqRatioGuard(0.5, window=0, min_records=1)


@pytest.mark.parametrize("code,expect", [
    (KafkaError._TRANSPORT, ErrorClass.TRANSIENT),
    (KafkaError._ALL_BROKERS_DOWN, ErrorClass.TRANSIENT),
    (KafkaError._MSG_TIMED_OUT, ErrorClass.TRANSIENT),
    (KafkaError.REBALANCE_IN_PROGRESS, ErrorClass.TRANSIENT),
    (KafkaError.NOT_COORDINATOR, ErrorClass.TRANSIENT),
    (KafkaError.TOPIC_AUTHORIZATION_FAILED, ErrorClass.BUG),
    (KafkaError.MSG_SIZE_TOO_LARGE, ErrorClass.BUG),
    (KafkaError.INVALID_CONFIG, ErrorClass.BUG),
])
def test_kafka_errors_by_code(code, expect):
    assert kafka_error_class(KafkaException(KafkaError(code))) is expect


def test_fatal_kafka_errors_are_never_retried_and_other_exceptions_are_not_kafkas():
    assert kafka_error_class(KafkaException(KafkaError(KafkaError._TRANSPORT, fatal=True))) is ErrorClass.BUG
    assert kafka_error_class(KafkaException(KafkaError(KafkaError.UNKNOWN, retriable=True))) is ErrorClass.TRANSIENT
    assert kafka_error_class(BufferError("Local: Queue full")) is ErrorClass.TRANSIENT
    assert kafka_error_class(KeyError("x")) is None and kafka_error_class(ValueError()) is None


def test_network_errors_are_transient_but_missing_files_are_not():
    for exc in (ConnectionRefusedError(), ConnectionResetError(), TimeoutError(), OSError(113, "No route")):
        assert network_error_class(exc) is ErrorClass.TRANSIENT
    for exc in (FileNotFoundError(), PermissionError(), KeyError("k")):
        assert network_error_class(exc) is None
