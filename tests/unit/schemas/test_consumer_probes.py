"""The alert forwarder's and the OTLP exporter's /healthz and /readyz: what they say is true.

Alive: not failed, and the loop turned within ``stuck_after_s``. Ready: alive, in its consumer
group (an assignment arrived, even an empty one), and its chain not retrying an outage."""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from types import SimpleNamespace

import pytest

from agentstream.schemas.consumer_probes import ConsumerProbes, ProbeFacts, consumer_health
from agentstream.schemas.step_driver import ChainDriver

T0 = 1000.0


def facts(**kw) -> ProbeFacts:
    base = dict(last_turn_at=T0, assigned=("t[0]", "t[1]"), failing=False, paused=False, failed=None,
                counters={"spans": 3})
    base.update(kw)
    return ProbeFacts(**base)


@pytest.mark.parametrize("case,kw,now,alive,ready", [
    ("consuming", {}, T0 + 1, True, True),
    ("member with no partitions", {"assigned": ()}, T0 + 1, True, True),
    ("group not joined yet", {"assigned": None}, T0 + 1, True, False),
    ("destination down, retrying", {"failing": True, "paused": True}, T0 + 1, True, False),
    ("loop stuck", {}, T0 + 61, False, False),
    ("loop exactly at the limit", {}, T0 + 60, False, False),
    ("failed", {"failed": "WebhookUnavailable: 503 x6"}, T0 + 1, False, False),
])
def test_health_says_what_is_true(case, kw, now, alive, ready):
    h = consumer_health(facts(**kw), now, stuck_after_s=60)
    assert (h["alive"], h["ready"]) == (alive, ready), case
    assert h["seconds_since_poll"] == round(now - T0, 1)
    assert h["joined"] == (kw.get("assigned", ()) is not None)
    assert h["spans"] == 3 and h["failed"] == kw.get("failed")


class _Consumer:
    """What ChainDriver calls on confluent-kafka's Consumer, returning no records."""

    def consume(self, n, timeout):
        return []

    def assignment(self):
        return []

    def pause(self, parts):
        pass

    def resume(self, parts):
        pass


def _chain(failing=False):
    return SimpleNamespace(head=SimpleNamespace(submit=lambda x: None, poll=lambda: None,
                                                close=lambda: None, join=lambda t=None: None,
                                                terminate=lambda: None),
                           failing=failing)


def test_the_driver_reports_its_heartbeat_assignment_and_outage():
    state = {"failing": False}
    driver = ChainDriver(lambda: _chain(state["failing"]), batch_size=10, wait_s=0.0)
    driver.consumer = _Consumer()
    probes = ConsumerProbes(stuck_after_s=60)
    assert probes.health()["ready"] is False and probes.health()["alive"] is True  # starting
    probes.driver = driver
    driver.turn()
    h = probes.health()
    assert h["alive"] and not h["ready"] and h["joined"] is False
    tp = SimpleNamespace(topic="agentstream.events", partition=3)
    driver.on_assign(driver.consumer, [tp])
    h = probes.health()
    assert h["ready"] and h["assigned"] == ["agentstream.events[3]"]
    driver.on_revoke(driver.consumer, [tp])
    assert probes.health()["assigned"] == [] and probes.health()["ready"]
    state["failing"] = True
    driver.on_assign(driver.consumer, [tp])
    assert probes.health()["failing"] and not probes.health()["ready"]
    before = driver.last_turn_at
    driver.turn()
    assert driver.last_turn_at > before
    probes.failed = "BackendUnavailable: 503"
    assert probes.health()["alive"] is False


def _get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_the_endpoints_answer_on_loopback():
    probes = ConsumerProbes(stuck_after_s=60, counters=lambda: {"delivered": 7})
    server = probes.serve("127.0.0.1", 0)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        code, body = _get(base + "/healthz")
        assert code == 200 and json.loads(body)["status"] == "ok"
        code, body = _get(base + "/readyz")  # no driver yet: not in the group
        assert code == 503 and json.loads(body)["joined"] is False and json.loads(body)["delivered"] == 7
        probes.driver = SimpleNamespace(last_turn_at=probes.started_at, assigned=("a[0]",), failing=False,
                                        paused=False)
        assert _get(base + "/readyz")[0] == 200
        probes.failed = "ConsumerCrash: bug"
        code, body = _get(base + "/healthz")
        assert code == 503 and json.loads(body)["failed"] == "ConsumerCrash: bug"
        code, body = _get(base + "/metrics")
        assert code == 200 and b"process_" in body or b"python_" in body
        assert _get(base + "/nope")[0] == 404
    finally:
        probes.close()
