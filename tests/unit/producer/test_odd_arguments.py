"""Whatever an agent hands the SDK's recording calls, nothing but the documented enforcement
exceptions reaches it: a value that cannot travel is counted in ``stats()["failed"]``, and every
event the SDK does emit is one the pipeline stores (the sink's row mapper takes it).

Found by this fuzz (each raised into the agent before): a non-mapping attributes argument (``TypeError``/``ValueError`` from
``dict()``), an unhashable attribute key, an unhashable feedback value, and a provider or model
that is not text (the price table's lookup). An object whose ``__str__`` raises is left out: no
API can turn it into text."""
from __future__ import annotations

import inspect
import logging
import math
import random

import pytest

from agentstream.producer.errors import EnforcementError
from agentstream.producer.run import Run
from agentstream.producer.step import Step
from agentstream.producer.testing import InMemoryTransport
from agentstream.sink.rows import event_row

JUNK = [None, 0, -1, 2**70, math.nan, math.inf, "", "x", "\ud800", "x" * 5000, b"\xff\x00", [], {}, {"k": object()},
        {1: 2}, {None: "v"}, {"k": {"deep": [1, {"x": math.nan}]}}, object(), ("t",), True, 1.5, {1}, [["a", "b"]],
        lambda: 1]


def test_recording_calls_never_raise_anything_but_enforcement(tmp_path):
    mem = InMemoryTransport()
    t = mem.tracer("t", "a", "1", "dev", spool_dir=str(tmp_path))
    rng = random.Random(1)

    def j():
        return rng.choice(JUNK)

    calls = [
        lambda run: run.step(j(), j(), j()).__enter__().__exit__(None, None, None),
        lambda run: run.tool_step(j(), j(), call_id=j()).__enter__().set_attribute(j(), j()).set_status(j()),
        lambda run: run.llm_step(j(), j(), j()).__enter__().record_llm(j(), j(), j(), j()).record_request(j(), j(), j()),
        lambda run: run.step("TOOL", "x").__enter__().fail(j(), j(), j()).capture(j()),
        lambda run: run.set_status(j(), j()),
        lambda run: t.feedback(j(), j(), run_id=j()),
    ]
    escaped = _escapes(400, lambda: t.run("r"), lambda run: rng.choice(calls)(run))
    assert t.flush(10)
    assert escaped == []
    assert t.stats()["failed"] > 0  # the values that could not travel were counted
    t.close(5)


# Every keyword too (the test above passes positionals only): found by this one, each raised
# into the agent or lost its event before: ``attempt=`` not a number (a comparison), ``retry_of=``
# neither a step nor an id, ``finish_reasons`` not iterable, an unhashable negative signal, tool
# arguments holding a lone surrogate (the digest's UTF-8), ``tracer.run(parent=, budget=,
# run_id=, ...)`` of the wrong type; an attempt the events table cannot store (70000, -3) was
# emitted and dead-lettered by the sink; a name, provider or model that is not text lost its
# whole event.
KEYWORD_JUNK = JUNK + [70000, 2**40, -3, 2, "2", 2.5, "\udcff", math.nan, "TOOL", "SUCCESS"]
RUN_CALLS = ["step", "tool_step", "llm_step", "set_status", "llm_call", "tool_call", "failure", "decision",
             "quality_signal", "feedback", "negative_signal", "approval", "fallback", "handoff"]
STEP_CALLS = ["set_attribute", "set_status", "record_llm", "record_request", "record_tool", "capture", "fail"]
RUN_KEYWORDS = ["session_id", "parent_run_id", "end_user_id", "run_id", "role", "parent", "budget", "ticket"]


def _escapes(rounds, open_run, body) -> list[str]:
    """Runs ``rounds`` runs of three ``body(run)`` calls; what reached the agent other than the
    documented enforcement errors."""
    escaped: list[str] = []
    for _ in range(rounds):
        try:
            with open_run() as run:
                for _ in range(3):
                    try:
                        body(run)
                    except EnforcementError:
                        pass
        except EnforcementError:
            pass
        except Exception as exc:  # noqa: BLE001 - what the test looks for
            escaped.append(f"{type(exc).__name__}: {exc}")
    return escaped


def _signature(obj, name):
    ref = Step if isinstance(obj, Step) else Run  # the C cores' methods have none: Python's is the reference
    params = list(inspect.signature(getattr(ref, name)).parameters.values())[1:]
    return [p for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def _call(obj, name, rng):
    args, kw = [], {}
    positional = True  # until a parameter is skipped or passed by keyword
    for p in _signature(obj, name):
        if p.kind is p.POSITIONAL_ONLY:
            args.append(rng.choice(KEYWORD_JUNK))
            continue
        if p.default is not p.empty and rng.random() < 0.5:
            positional = False
            continue
        positional = positional and p.kind is not p.KEYWORD_ONLY and rng.random() < 0.7
        if positional:
            args.append(rng.choice(KEYWORD_JUNK))
        else:
            kw[p.name] = rng.choice(KEYWORD_JUNK)
    return getattr(obj, name)(*args, **kw)


@pytest.mark.parametrize("speedups", [True, False])
def test_every_keyword_never_raises_and_every_event_emitted_is_stored(tmp_path, caplog, speedups):
    mem = InMemoryTransport()
    t = mem.tracer("t", "a", "1", "dev", spool_dir=str(tmp_path), speedups=speedups)
    rng = random.Random(3)

    def open_run():
        kw = {k: rng.choice(KEYWORD_JUNK) for k in RUN_KEYWORDS if rng.random() < 0.2}
        return t.run(rng.choice(["r", 7, None, {"x": 1}]), **kw)

    def body(run):
        name = rng.choice(RUN_CALLS)
        made = _call(run, name, rng)
        if name in ("step", "tool_step", "llm_step"):
            with made as st:
                _call(st, rng.choice(STEP_CALLS), rng)

    with caplog.at_level(logging.WARNING, logger="agentstream"):
        escaped = _escapes(300, open_run, body)
    assert t.flush(10)
    assert escaped == []
    assert not [r for r in caplog.records if "could not encode" in r.getMessage()]
    events = mem.events()
    assert len(events) > 900
    for e in events:
        event_row(e)  # a RowError here is a record the sink would dead-letter
    t.close(5)
