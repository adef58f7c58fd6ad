"""The SDK with a Schema Registry that does not hold agentstream's ids: nothing raises into the
agent, events are not framed with ids readers would misresolve, and the registry is asked again
only every REGISTRY_RECHECK_S (not once per event)."""
from __future__ import annotations

import struct

import pytest

from agentstream.producer import tracer as tracer_module
from agentstream.schemas import SchemaIdMismatch

from step_support import make_tracer


@pytest.fixture
def registry(monkeypatch):
    state = {"calls": 0, "ok": False}

    def fake_make_resolver(url, **conf):
        state["calls"] += 1
        if not state["ok"]:
            raise SchemaIdMismatch(["id 1 holds another schema than agentstream.v1.Event v1"])
        return object()

    monkeypatch.setattr(tracer_module, "make_resolver", fake_make_resolver)
    return state


def _process_all(tracer):
    out, errors = [], 0
    q = tracer._transport.q
    while q:
        try:
            out.extend(tracer._pipeline.process(q.popleft()))
        except SchemaIdMismatch:
            errors += 1  # the transport thread logs this and drops the event
    return out, errors


def test_a_mismatched_registry_drops_events_and_is_rechecked_sparingly(tmp_path, registry, monkeypatch):
    t = make_tracer(tmp_path, False, schema_registry_url="http://registry.invalid")
    with t.run("r") as run:  # no exception reaches the agent
        run.tool_call("search", {"q": 1})
    records, errors = _process_all(t)
    assert records == [] and errors == 3 and registry["calls"] == 1
    # the registry gets fixed (agentstream schemas register); after the recheck interval the
    # SDK frames with the built-in Event v2 id
    registry["ok"] = True
    monkeypatch.setattr(tracer_module, "REGISTRY_RECHECK_S", 0.0)
    with t.run("r2"):
        pass
    records, errors = _process_all(t)
    assert errors == 0 and len(records) == 2 and registry["calls"] == 2
    assert {struct.unpack(">bI", v[:5]) for _k, v in records} == {(0, 5)}


def test_the_command_listener_falls_back_to_the_built_in_ids(tmp_path, registry):
    t = make_tracer(tmp_path, False, schema_registry_url="http://registry.invalid")
    t.settings = t.settings.model_copy(update={"commands_enabled": True})
    try:
        t._ensure_listener()  # would have raised SchemaIdMismatch into tracer.run()
        assert t._listener is not None
    finally:
        if t._listener is not None:
            t._listener.stop()
