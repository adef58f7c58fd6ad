"""The embedded sink+API process does not hide a stopped sink: when the sink stops on its own (here
its DLQ ratio guard, on an events topic of garbage), the process exits with its own code and says
why, so ``agentstream up``'s status line shows the part as EXITED with its log, instead of an API
answering over a table that nothing fills any more."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from confluent_kafka import Producer

from agentstream.cli.embedded_broker import free_port
from agentstream.cli.stack_commands import SINK_STOPPED_EXIT
from agentstream.schemas import topic_name
from agentstream.schemas.topics import create_topics

pytestmark = pytest.mark.integration


def test_a_sink_that_stops_takes_the_process_down_with_a_reason(bootstrap, tmp_path, unique):
    prefix = f"ses{unique}."
    create_topics(bootstrap, prefix=prefix, partitions=1)
    p = Producer({"bootstrap.servers": bootstrap})
    for i in range(200):
        p.produce(topic_name("events", prefix), b"not avro %d" % i, b"k")
    assert p.flush(30) == 0
    env = dict(os.environ)
    dsn = f"chdb://{tmp_path / 'chdb'}"
    env.update({"AGENTSTREAM_SINK_BOOTSTRAP_SERVERS": bootstrap, "AGENTSTREAM_SINK_TOPIC_PREFIX": prefix,
                "AGENTSTREAM_SINK_CLICKHOUSE_DSN": dsn, "AGENTSTREAM_SINK_SESSION_TIMEOUT_MS": "6000",
                "AGENTSTREAM_SINK_GROUP_ID": f"ses-{unique}",
                "AGENTSTREAM_SINK_DLQ_MIN_RECORDS": "50", "AGENTSTREAM_SINK_DLQ_WINDOW_RECORDS": "100",
                "AGENTSTREAM_API_CLICKHOUSE_DSN": dsn, "AGENTSTREAM_API_PORT": str(free_port()),
                "AGENTSTREAM_API_API_KEYS_FILE": str(tmp_path / "keys.json")})
    proc = subprocess.run([sys.executable, "-m", "agentstream.cli.main", "serve-embedded"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == SINK_STOPPED_EXIT, proc.stderr[-2000:]
    assert "the sink stopped" in proc.stderr and "the API stopped with it" in proc.stderr
    assert "dead letter" in proc.stderr.lower() or "dlq" in proc.stderr.lower(), proc.stderr[-2000:]
