"""The alert forwarder and the OTLP exporter on the real broker, with their probes served: alive
from the start, ready once their consumer group assigned them, gone when they stop."""
from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

import pytest
from test_sink_support import own_topics

from agentstream.cli.embedded_broker import free_port
from agentstream.sink.otlp_exporter import OtlpExportSettings, run_export
from agentstream.stream_processors.alert_forwarder import forward
from agentstream.stream_processors.settings import ProcessorsSettings


@pytest.fixture(scope="module")
def topic_prefix(bootstrap):
    """Fresh topics: the consumers read from the start and must go idle quickly."""
    return own_topics(bootstrap, partitions=2)


def _get(port: int, path: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())
    except OSError:
        return 0, {}


def test_forwarder_and_exporter_are_ready_once_in_their_group(bootstrap, topic_prefix, unique, tmp_path):
    fport, eport = free_port(), free_port()
    fwd = ProcessorsSettings(bootstrap_servers=bootstrap, topic_prefix=topic_prefix, broker_session_timeout=6.0,
                             forwarder_probe_port=fport)
    exp = OtlpExportSettings(bootstrap_servers=bootstrap, topic_prefix=topic_prefix, session_timeout_ms=6000,
                             endpoint="http://127.0.0.1:9", group_id="probe-exp-" + unique, probe_port=eport)
    errors: list[BaseException] = []

    def run(fn) -> None:
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(lambda: forward(fwd, group="probe-fwd-" + unique,
                                                                  ledger=tmp_path / "ledger", idle_timeout=3),)),
               threading.Thread(target=run, args=(lambda: run_export(exp, idle_timeout=3),))]
    for t in threads:
        t.start()
    seen: dict[int, list[tuple[int, int]]] = {fport: [], eport: []}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not all((200, 200) in v for v in seen.values()):
        for port in seen:
            live, ready = _get(port, "/healthz")[0], _get(port, "/readyz")
            seen[port].append((live, ready[0]))
            if ready[0] == 200:
                assert ready[1]["joined"] and len(ready[1]["assigned"]) == 2, ready[1]
                assert ready[1]["failing"] is False and ready[1]["seconds_since_poll"] < 5
        time.sleep(0.2)
    for t in threads:
        t.join(60)
    assert not errors, errors
    for port, states in seen.items():
        # alive whenever it answered; ready once the group assigned it its partitions
        assert all(live == 200 for live, _ in states if live), (port, states)
        assert (200, 200) in states, (port, states)
        assert _get(port, "/healthz")[0] == 0  # stopped: the server is closed too
