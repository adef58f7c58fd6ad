"""A policy edited in the UI goes through the API to the policies topic, and the processors use it:
the redaction worker stamps the tenant's policy version on every event it lets through."""
from __future__ import annotations

import time
import uuid

import pytest

from agentstream.schemas import EVENT, POLICY, Codec, topic_name
from agentstream.schemas.alerting import is_alerting_key

from .conftest import screenshot, wait_for

pytestmark = pytest.mark.integration


def _read_all(bootstrap: str, topic: str, timeout: float = 3.0) -> list:
    """Every record of ``topic`` (all partitions, from the start, no consumer group). Tansu's
    high watermark is short, so read until the topic is quiet rather than up to the watermark."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused-" + uuid.uuid4().hex[:6],
                  "enable.auto.commit": False})
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        c.assign([TopicPartition(topic, p, 0) for p in parts])
        out, quiet_until = [], time.monotonic() + timeout
        while time.monotonic() < quiet_until:
            m = c.poll(0.3)
            if m is not None and not m.error():
                out.append(m)
                quiet_until = time.monotonic() + 1.0
        return out
    finally:
        c.close()


@pytest.fixture
def processors(dashboard_stack, tmp_path):
    from agentstream.stream_processors.worker_process import start_worker

    w = start_worker(dashboard_stack.bootstrap, dashboard_stack.prefix, app_id=f"dash-proc-{uuid.uuid4().hex[:6]}",
                     data_dir=tmp_path / "proc", log_path=tmp_path / "proc.log").wait_ready(120)
    yield w
    w.stop()


def test_policy_edited_in_ui_is_read_back_by_the_processors(acme, dashboard_stack, processors):
    page = acme.page
    version = "ui-" + uuid.uuid4().hex[:8]
    page.goto("/ui/policies")
    page.wait_for_selector("input[name='budgets.run_max_steps']")
    page.fill("input[name=version]", version)
    page.fill("input[name='budgets.run_max_steps']", "123")
    page.fill("input[name='budgets.run_max_cost_usd']", "0.75")
    page.fill("input[name='loops.max_repeats']", "7")
    page.check("input[name='budgets.hard_limit']")
    page.select_option("select[name=capture_mode]", "REDACTED")
    categories = page.locator("#redaction-grid select").evaluate_all("ns => ns.map(n => n.name)")
    assert categories, "the redaction categories are listed"
    page.select_option(f"select[name='{categories[0]}']", "drop")
    page.click("#save")
    page.wait_for_selector("#policy-saved")
    screenshot(page, "policies")

    # 1. On the policies topic, keyed by tenant, as the Avro Policy record.
    codec = Codec()
    topic = topic_name("policies", dashboard_stack.prefix)

    def written():
        for m in _read_all(dashboard_stack.bootstrap, topic):
            if is_alerting_key(m.key()):
                continue  # alert routing/silence/state records share the topic (schemas/alerting.py)
            rec = codec.decode_as(POLICY, m.value())
            if rec["tenant_id"] == acme.tenant and rec["version"] == version:
                assert m.key() == acme.tenant.encode()
                return rec
        return None

    rec = wait_for(written, 30, "the edited policy on the policies topic")
    assert rec["budgets"]["run_max_steps"] == 123 and rec["budgets"]["run_max_cost_usd"] == 0.75
    assert rec["budgets"]["hard_limit"] is True and rec["loops"]["max_repeats"] == 7
    assert rec["capture_mode"] == "REDACTED"
    assert rec["redaction_actions"][categories[0].split(".", 1)[1]] == "drop"

    # 2. The processors use it: an event for this tenant leaves redaction stamped with the version.
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": dashboard_stack.bootstrap, "acks": "all"})
    run_ids: list[str] = []

    def stamped():
        run_id = "policy-probe-" + uuid.uuid4().hex[:10]
        run_ids.append(run_id)
        now = int(time.time() * 1e6)
        event = {"event_id": uuid.uuid4().hex, "tenant_id": acme.tenant, "agent_id": "probe-agent",
                 "agent_version": "0", "environment": "test", "run_id": run_id, "seq": 0, "ts_us": now,
                 "emitted_us": now, "sdk_version": "test", "kind": "RUN_START",
                 "payload": {"entrypoint": "probe"}}
        producer.produce(topic_name("raw", dashboard_stack.prefix), key=run_id.encode(), value=codec.encode(EVENT, event))
        producer.flush(10)
        for m in _read_all(dashboard_stack.bootstrap, topic_name("events", dashboard_stack.prefix), timeout=2.0):
            if m.key() and m.key().decode() in run_ids:
                out = codec.decode_as(EVENT, m.value())
                if (out.get("redaction") or {}).get("policy_version") == version:
                    return out
        return None

    out = wait_for(stamped, 90, "a redacted event stamped with the UI's policy version", interval=1.0)
    assert out["tenant_id"] == acme.tenant

    # 3. And the page shows the saved policy when opened again.
    page.goto("/ui/policies")
    page.wait_for_selector("input[name='budgets.run_max_steps']")
    assert page.input_value("input[name='budgets.run_max_steps']") == "123"
    assert page.input_value("input[name=version]") == version
    assert acme.console_errors == []


def test_policy_page_lists_every_redaction_category_of_the_processors():
    import re
    from pathlib import Path

    from agentstream.stream_processors.redaction.rules import RULES

    js = (Path(__file__).resolve().parents[2] / "api" / "static" / "js" / "policies.js").read_text()
    listed = set(re.findall(r'"([a-z_]+)"', js[js.index("const CATEGORIES"):js.index("];", js.index("const CATEGORIES"))]))
    assert listed == {r.category for r in RULES}
