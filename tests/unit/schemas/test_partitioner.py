"""One partitioner everywhere: Kafka's murmur2, as Java clients (and librdkafka's murmur2_random)
partition keyed records, and every agentstream producer configured with it."""
from __future__ import annotations

import pytest

from agentstream.schemas import PARTITIONER, partition_for
from agentstream.schemas.topics import murmur2


# org.apache.kafka.common.utils.UtilsTest#testMurmur2
@pytest.mark.parametrize("data,want", [
    (b"21", -973932308), (b"foobar", -790332482), (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829), (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    (b"abc", 479470107),
])
def test_murmur2_matches_the_java_client(data, want):
    assert murmur2(data) == want


def test_partition_is_the_positive_hash_modulo_the_partitions():
    for key in (b"", b"r", b"run-1", "ü".encode(), bytes(range(256))):
        for n in (1, 3, 12, 100):
            assert partition_for(key, n) == (murmur2(key) & 0x7FFFFFFF) % n
    assert PARTITIONER == "murmur2_random"


def test_every_producer_configuration_sets_it(tmp_path):
    from agentstream.api.gateway.settings import GatewaySettings
    from agentstream.producer.settings import ProducerSettings
    from agentstream.producer.transport import Transport

    assert GatewaySettings().producer_conf()["partitioner"] == PARTITIONER
    t = Transport(ProducerSettings(spool_dir=str(tmp_path)), "t.raw", lambda item: [], lambda conf: None)
    assert t.delivery.conf()["partitioner"] == PARTITIONER


def test_no_producer_in_the_code_goes_without_it():
    """A guard for the next producer someone adds: every module that builds a confluent-kafka
    Producer names the partitioner (the gateway's delivery module takes its conf from
    GatewaySettings.producer_conf, checked above)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    conf_from_settings = {root / "api" / "gateway" / "delivery.py"}
    missing = []
    for part in ("producer", "stream_processors", "sink", "api", "cli"):
        for path in (root / part).rglob("*.py"):
            text = path.read_text()
            if "Producer(" in text and path not in conf_from_settings \
                    and "PARTITIONER" not in text and '"murmur2_random"' not in text:
                missing.append(str(path.relative_to(root)))
    assert not missing, f"producers without the shared partitioner: {missing}"
