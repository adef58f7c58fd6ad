"""Whatever an agent hands the SDK's recording calls, nothing but the documented enforcement
exceptions reaches it: a value that cannot travel is counted in ``stats()["failed"]``.

Found by this fuzz (each raised into the agent before): a non-mapping attributes argument (``TypeError``/``ValueError`` from
``dict()``), an unhashable attribute key, an unhashable feedback value, and a provider or model
that is not text (the price table's lookup). An object whose ``__str__`` raises is left out: no
API can turn it into text."""
from __future__ import annotations

import math
import random

from agentstream.producer.errors import EnforcementError
from agentstream.producer.testing import InMemoryTransport

JUNK = [None, 0, -1, 2**70, math.nan, math.inf, "", "x", "\ud800", "x" * 5000, b"\xff\x00", [], {}, {"k": object()},
        {1: 2}, {None: "v"}, {"k": {"deep": [1, {"x": math.nan}]}}, object(), ("t",), True, 1.5, {1}, [["a", "b"]],
        lambda: 1]


def test_recording_calls_never_raise_anything_but_enforcement(tmp_path):
    mem = InMemoryTransport()
    t = mem.tracer("t", "a", "1", "dev", spool_dir=str(tmp_path))
    rng = random.Random(1)

    def j():
        return rng.choice(JUNK)

    escaped: list[str] = []
    calls = [
        lambda run: run.step(j(), j(), j()).__enter__().__exit__(None, None, None),
        lambda run: run.tool_step(j(), j(), call_id=j()).__enter__().set_attribute(j(), j()).set_status(j()),
        lambda run: run.llm_step(j(), j(), j()).__enter__().record_llm(j(), j(), j(), j()).record_request(j(), j(), j()),
        lambda run: run.step("TOOL", "x").__enter__().fail(j(), j(), j()).capture(j()),
        lambda run: run.set_status(j(), j()),
        lambda run: t.feedback(j(), j(), run_id=j()),
    ]
    for _ in range(400):
        try:
            with t.run("r") as run:
                for _ in range(3):
                    try:
                        rng.choice(calls)(run)
                    except EnforcementError:
                        pass
        except EnforcementError:
            pass
        except Exception as exc:  # noqa: BLE001 - what the test looks for
            escaped.append(f"{type(exc).__name__}: {exc}")
    assert t.flush(10)
    assert escaped == []
    assert t.stats()["failed"] > 0  # the values that could not travel were counted
    t.close(5)
