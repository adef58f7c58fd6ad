"""A batch that got a 2xx survives ``kill -9`` of the gateway right after the response: the
answer was sent only after Kafka acknowledged every record (acks=all)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import httpx
import pytest

from agentstream.api.auth import add_key
from agentstream.api.gateway.server import free_port

from raw_topic import read_raw

pytestmark = pytest.mark.integration




def test_acknowledged_batch_survives_kill_9(bootstrap, topic_prefix, tmp_path):
    keys = tmp_path / "keys.json"
    tenant = "kill-" + uuid.uuid4().hex[:8]
    key = add_key(keys, tenant, scopes=["write"])
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentstream.api.gateway", "run", "--port", str(port),
         "--bootstrap-servers", bootstrap, "--topic-prefix", topic_prefix,
         "--api-keys-file", str(keys), "--log-level", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env={**os.environ, "AGENTSTREAM_GATEWAY_LINGER_MS": "50"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "gateway subprocess never became ready"
            time.sleep(0.1)
        run_id = "run-" + uuid.uuid4().hex[:8]
        events = [{"event_id": str(uuid.uuid4()), "agent_id": "a", "agent_version": "1",
                   "environment": "test", "run_id": run_id, "seq": i,
                   "ts_us": time.time_ns() // 1000 + i, "kind": "QUALITY_SIGNAL",
                   "payload": {"signal_type": "schema_valid", "signal_code": "full_match",
                               "value": True}} for i in range(200)]
        r = httpx.post(url + "/v1/ingest", json={"events": events}, timeout=60,
                       headers={"authorization": f"Bearer {key}"})
        proc.send_signal(signal.SIGKILL)  # no flush, no shutdown hook
        assert r.status_code == 200, r.text
        assert proc.wait(10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    got = [rec for _, _, rec in read_raw(bootstrap, topic_prefix, tenant, 200)]
    assert sorted(g["event_id"] for g in got) == sorted(e["event_id"] for e in events)
    assert [g["seq"] for g in got if g["run_id"] == run_id] == list(range(200))
