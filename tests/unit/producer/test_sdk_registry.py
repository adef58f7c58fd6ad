"""The SDK with a Schema Registry that does not hold agentstream's ids: nothing raises into the
agent, events are not framed with ids readers would misresolve, and the registry is asked again
only every REGISTRY_RECHECK_S (not once per event)."""
from __future__ import annotations

import struct

import pytest

from agentstream.producer import tracer as tracer_module
from agentstream.schemas import SchemaIdMismatch

from step_support import delivered, make_tracer


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


def _process_all(tracer, caplog):
    """What reached the broker, and how many events the transport could not encode (each
    counted in ``stats()["failed"]`` and logged with the registry's complaint)."""
    failed_before = tracer.stats()["failed"]
    caplog.clear()
    records = delivered(tracer)
    errors = tracer.stats()["failed"] - failed_before
    logged = [r for r in caplog.records if r.exc_info and r.exc_info[0] is SchemaIdMismatch]
    assert len(logged) == errors
    return records, errors


def test_a_mismatched_registry_drops_events_and_is_rechecked_sparingly(tmp_path, registry, monkeypatch,
                                                                       caplog):
    t = make_tracer(tmp_path, False, schema_registry_url="http://registry.invalid")
    with t.run("r") as run:  # no exception reaches the agent
        run.tool_call("search", {"q": 1})
    records, errors = _process_all(t, caplog)
    assert records == [] and errors == 3 and registry["calls"] == 1
    # the registry gets fixed (agentstream schemas register); after the recheck interval the
    # SDK frames with the built-in Event v2 id
    registry["ok"] = True
    monkeypatch.setattr(tracer_module, "REGISTRY_RECHECK_S", 0.0)
    with t.run("r2"):
        pass
    records, errors = _process_all(t, caplog)
    assert errors == 0 and len(records) == 2 and registry["calls"] == 2
    assert {struct.unpack(">bI", v[:5]) for _k, v in records} == {(0, 5)}


def test_the_command_listener_falls_back_to_the_built_in_ids(tmp_path, registry):
    t = make_tracer(tmp_path, False, schema_registry_url="http://registry.invalid",
                    commands_enabled=True, bootstrap_servers="127.0.0.1:1")
    try:
        with t.run("r") as run:  # starts the listener; would have raised SchemaIdMismatch
            run.tool_call("search", {"q": 1})
        assert registry["calls"] >= 1  # the registry was asked, and refused
        assert "commands_received" in t.stats()  # the listener runs, on the built-in ids
    finally:
        t.close(0)
