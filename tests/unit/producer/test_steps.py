"""The step hot path defers ids, parents and times to the transport thread: what arrives on the
wire must still be what the agent saw (decoded here from the pipeline's own output)."""
from __future__ import annotations

import asyncio
import threading

import pytest

from step_support import drain, make_tracer


@pytest.fixture(params=[True, False], ids=["c-core", "python-core"])
def tracer(tmp_path, request):
    """Every test here runs on both step cores: the C one and the pure-Python reference."""
    return make_tracer(tmp_path, request.param)


def _steps(events):
    return {e["payload"]["name"]: e for e in events if e["kind"] == "STEP"}


def test_ids_parents_and_totals_match_what_the_agent_saw(tracer):
    seen = {}
    with tracer.run("r") as run:
        with run.step("plan", "outer") as outer:
            with run.step("tool", "inner") as inner:
                seen["inner"] = inner.step_id          # drawn on the agent thread
            with run.step("tool", "late"):
                pass
            seen["outer"] = outer.step_id             # asked for after its children closed
        first = run.tool_call("search", {"q": 1}, latency_ms=2.0, status="error")
        with run.step("tool", "search", retry_of=first) as retry:
            pass
        run.failure("tool", "timeout", step_id=first)
    events = drain(tracer)
    steps = _steps(events)
    assert steps["inner"]["payload"]["step_id"] == seen["inner"]
    assert steps["outer"]["payload"]["step_id"] == seen["outer"]
    assert steps["inner"]["parent_step_id"] == seen["outer"]
    assert steps["late"]["parent_step_id"] == seen["outer"]
    assert steps["outer"]["parent_step_id"] is None
    ids = [e["payload"]["step_id"] for e in events if e["kind"] == "STEP"]
    assert len(set(ids)) == len(ids) == 5
    assert retry.attempt == 2
    retried = [e for e in events if e["kind"] == "STEP" and e["payload"]["retry_of"] == first]
    assert len(retried) == 1 and retried[0]["payload"]["attempt"] == 2
    assert [e["seq"] for e in events] == list(range(len(events)))
    end = events[-1]["payload"]
    assert end["step_count"] == 5 and run.step_count == 5
    for e in events:
        if e["kind"] == "STEP":
            assert e["ts_us"] >= e["payload"]["started_us"] > 0


def test_concurrent_tasks_and_threads_are_siblings_not_nested(tracer):
    async def leaf(name: str, run) -> None:
        with run.step("tool", name):
            await asyncio.sleep(0.01)  # both tasks are inside their steps at the same time

    async def main() -> str:
        async with tracer.run("r") as run:
            async with run.step("plan", "outer") as outer:
                await asyncio.gather(leaf("a", run), leaf("b", run))
                t = threading.Thread(target=tracer.wrap(lambda: leaf_sync(run)))
                t.start()
                t.join()
            return outer.step_id

    def leaf_sync(run) -> None:
        with run.step("tool", "c"):
            pass

    outer_id = asyncio.run(main())
    steps = _steps(drain(tracer))
    for name in "abc":
        assert steps[name]["parent_step_id"] == outer_id


def test_mapping_attributes_are_copied_and_kwargs_merge(tracer):
    attrs = {"k": "v1"}
    with tracer.run("r") as run:
        with run.step("tool", "first", attrs) as s:
            s.set_attribute("added", 1)
        attrs["k"] = "changed-later"
        with run.step("tool", "second", attrs, extra=True):
            pass
    assert attrs == {"k": "changed-later"}  # the caller's dict was never written to
    steps = _steps(drain(tracer))
    assert steps["first"]["attributes"] == {"k": "v1", "added": "1"}
    assert steps["second"]["attributes"] == {"k": "changed-later", "extra": "true"}


def test_a_failing_step_keeps_its_status_and_error_type(tracer):
    with tracer.run("r") as run:
        with pytest.raises(TimeoutError):
            with run.step("tool", "slow"):
                raise TimeoutError
    events = drain(tracer)
    step = _steps(events)["slow"]
    assert step["payload"]["status"] == "TIMEOUT"
    assert step["attributes"]["error.type"] == "TimeoutError"
    assert events[-1]["payload"]["status"] == "SUCCESS"  # the agent handled it
