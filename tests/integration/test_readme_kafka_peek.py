"""The README's stand-in for kcat (Debian's kcat cannot talk to the embedded broker) reads a
topic of the real broker: it is run as the README prints it, pointed at this session's broker."""
from __future__ import annotations

import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Producer

pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_kafka_peek_prints_the_topics_records(bootstrap, topic_prefix, tmp_path):
    block = re.search(r"\*\*kcat\.\*\*.*?```bash\n(.*?)```", README.read_text(), re.S).group(1)
    topic = topic_prefix + "alerts"
    marker = uuid.uuid4().hex.encode()
    p = Producer({"bootstrap.servers": bootstrap})
    p.produce(topic, marker, b"peek-key")
    assert p.flush(10) == 0
    cmd = (block.replace("127.0.0.1:9092", bootstrap).replace("agentstream.alerts", topic)
           .replace(".venv/bin/python", sys.executable))
    r = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert marker.decode() in r.stdout and "peek-key" in r.stdout
