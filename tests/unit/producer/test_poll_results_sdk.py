"""The SDK's repeated-call rule takes a changed result as progress, as the processors do
(``schemas/loop_repeats.py``; docs/sdk.md, Enforcement settings).

Found by an adversarial probe: ``get_job_status(job_id=42)`` polled until the job was done, its
status changing at every poll, raised ``LackOfProgress`` into the agent at the 4th poll under
``max_repeated_fingerprints=3``. ``step.record_result(result)`` attaches a keyed digest of the
result (``agentstream.return_digest``; the result itself never leaves the agent); a call counts
among its signature's calls since that signature's result last changed.

Scenarios are generated from seeds, on both step cores (test_result_parity.py holds the SDK to
the processors' detector on random agents).
"""
from __future__ import annotations

import random

import pytest
from step_support import drain, make_tracer

from agentstream.producer import Budget, LackOfProgress
from agentstream.schemas import loop_repeats

CORES = pytest.mark.parametrize("speedups", [True, False], ids=["c", "py"])
RESULT = "agentstream.return_digest"


def _poll(run, status, job=42):
    with run.tool_step("get_job_status", {"job_id": job}) as s:
        s.record_result({"job_id": job, "status": status})


def _other(run, rng):
    with run.tool_step("search", {"q": rng.getrandbits(64)}):
        pass


@CORES
@pytest.mark.parametrize("seed", range(10))
def test_polling_until_done_runs_to_the_end(tmp_path, speedups, seed):
    rng = random.Random(seed)
    tracer = make_tracer(tmp_path, speedups)
    limit = rng.randint(2, 5)
    polls = 0
    with tracer.run("poll", budget=Budget(max_repeated_fingerprints=limit)) as run:
        for pct in range(0, 101, rng.choice([5, 10, 20])):
            for _ in range(rng.randint(1, limit - 1)):  # never `limit` unchanged in a row
                _poll(run, f"running {pct}%" if pct < 100 else "done")
                polls += 1
                if rng.random() < 0.3:
                    _other(run, rng)
    events = drain(tracer)
    assert [e["payload"] for e in events if e["kind"] == "FAILURE"] == []
    steps = [e for e in events if e["kind"] == "STEP" and e["payload"]["name"] == "get_job_status"]
    assert len(steps) == polls
    digests = {e["attributes"][RESULT] for e in steps}
    assert all(loop_repeats.DIGEST_ATTR not in e["attributes"] for e in steps)
    # a keyed digest, never the status itself
    assert all(len(d) == 64 and "running" not in d and "done" not in d for d in digests)
    assert tracer.digest({"job_id": 42, "status": "done"}) in digests


@CORES
@pytest.mark.parametrize("seed", range(10))
def test_a_poll_that_stops_changing_is_stopped(tmp_path, speedups, seed):
    """Results move, then stall: the ``limit + 1``-th call after the one that returned the final
    result is refused before it runs."""
    rng = random.Random(100 + seed)
    tracer = make_tracer(tmp_path, speedups)
    limit = rng.randint(2, 5)
    moving = rng.randint(1, 5)
    polls = 0
    with pytest.raises(LackOfProgress):
        with tracer.run("poll", budget=Budget(max_repeated_fingerprints=limit)) as run:
            for status in range(moving):
                for _ in range(rng.randint(1, limit - 1)):
                    _poll(run, f"moving {status}")
                    polls += 1
            _poll(run, "stuck")
            polls += 1
            for _ in range(limit + 5):
                if rng.random() < 0.3:
                    _other(run, rng)
                _poll(run, "stuck")
                polls += 1
    events = drain(tracer)
    steps = [e for e in events if e["kind"] == "STEP" and e["payload"]["name"] == "get_job_status"]
    assert len(steps) == polls  # the refused poll never ran
    stuck = tracer.digest({"job_id": 42, "status": "stuck"})
    assert sum(1 for e in steps if e["attributes"][RESULT] == stuck) == limit + 1


@CORES
def test_without_results_polling_is_still_a_repeat(tmp_path, speedups):
    tracer = make_tracer(tmp_path, speedups)
    done = 0
    with pytest.raises(LackOfProgress):
        with tracer.run("r", budget=Budget(max_repeated_fingerprints=3)) as run:
            for _ in range(8):
                with run.tool_step("get_job_status", {"job_id": "job-42"}) as s:
                    s.record_result({"status": "pending"})  # the same result: no progress
                done += 1
    assert done == 3


@CORES
@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_a_decorated_polled_tool_digests_its_results_when_asked(tmp_path, speedups, is_async):
    # the decorator is how most agents call tools: digest_result=True makes polling progress,
    # the default (results not judged) still stops the same poll as a loop
    import asyncio

    tracer = make_tracer(tmp_path, speedups)
    statuses = iter([f"running {p}%" for p in range(0, 100, 10)] + ["done"])

    def status(job_id):
        return {"job_id": job_id, "status": next(statuses)}

    async def astatus(job_id):
        return status(job_id)

    polled = tracer.tool(name="get_job_status", digest_result=True)(astatus if is_async else status)
    blind = tracer.tool(name="get_job_status")(astatus if is_async else status)

    def call(fn):
        return asyncio.run(fn(job_id=7)) if is_async else fn(job_id=7)

    with tracer.run("poll", budget=Budget(max_repeated_fingerprints=3)):
        results = [call(polled) for _ in range(11)]
    assert results[-1]["status"] == "done"
    steps = [e for e in drain(tracer) if e["kind"] == "STEP"]
    assert len(steps) == 11 and len({e["attributes"][RESULT] for e in steps}) == 11
    assert all("running" not in str(e["attributes"]) for e in steps)

    statuses = iter([f"running {p}%" for p in range(0, 100, 10)])
    with pytest.raises(LackOfProgress):
        with tracer.run("poll", budget=Budget(max_repeated_fingerprints=3)):
            for _ in range(10):
                call(blind)
    assert all(RESULT not in e.get("attributes", {}) for e in drain(tracer) if e["kind"] == "STEP")


@CORES
def test_a_recorded_tool_call_takes_its_result_as_a_digest(tmp_path, speedups):
    # run.tool_call records a call that already happened: its result is progress as a step's is
    tracer = make_tracer(tmp_path, speedups)
    with tracer.run("poll", budget=Budget(max_repeated_fingerprints=3)) as run:
        for pct in range(0, 101, 10):
            assert run.tool_call("get_job_status", {"job_id": 9}, 5.0, result={"pct": pct}) is not None
        run.check()
    steps = [e for e in drain(tracer) if e["kind"] == "STEP"]
    assert len(steps) == 11 and len({e["attributes"][RESULT] for e in steps}) == 11
    assert [e for e in drain(tracer) if e["kind"] == "FAILURE"] == []
    with pytest.raises(LackOfProgress):
        with tracer.run("poll", budget=Budget(max_repeated_fingerprints=3)) as run:
            for _ in range(6):
                run.tool_call("get_job_status", {"job_id": 9}, 5.0, result={"pct": 50})
            run.check()  # a recorded call already happened: the next gated operation raises
