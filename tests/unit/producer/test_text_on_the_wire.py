"""Text the agent hands the SDK reaches the pipeline even when it is not clean text.

- A lone surrogate (a file name read with ``surrogateescape``, text cut inside a pair) is not
  UTF-8, and Avro strings are: the encoder refused the string and lost its whole event, so one
  odd file name in a run attribute lost the run's start. It travels as U+FFFD now; digests keep
  the surrogate's own bytes, so two such names still digest apart.
- A name, provider or model that is not text lost its event too: a number travels as its
  digits, any other object as ``<its type>``, never its repr (a dict handed over as a name is
  more likely tool arguments than a name).
- ``attempt=`` / ``retry_of=`` outside what the events table stores (UInt16) or of the wrong
  type: counted and left out, never raised, never emitted for the sink to dead-letter."""
from __future__ import annotations

import pytest

from agentstream.producer.testing import InMemoryTransport
from agentstream.producer.wire import utf8, wire_text
from agentstream.schemas.stored_ranges import ATTEMPT_MAX, step_attempt
from agentstream.sink.rows import event_row


@pytest.fixture(params=[True, False], ids=["c", "py"])
def mem_tracer(request, tmp_path):
    mem = InMemoryTransport()
    t = mem.tracer("t", "a", "1", "dev", spool_dir=str(tmp_path), speedups=request.param)
    yield mem, t
    t.close(5)


def test_lone_surrogates_travel_as_replacement_characters(mem_tracer):
    mem, t = mem_tracer
    with t.run("task", session_id="s\udcff1", ticket="f\udcffile") as run:
        with run.step("TOOL", "read_file", path="/tmp/f\udcffile"):
            pass
        with run.step("TOOL", "na\udcffme"):
            pass
        run.tool_call("search", {"path": "/tmp/\udcfe"}, latency_ms=1.0)
        run.failure("io", "enoent", "no such file: /tmp/\udcff")
    assert t.flush(10)
    events = mem.events()
    assert [e["kind"] for e in events] == ["RUN_START", "STEP", "STEP", "STEP", "FAILURE", "RUN_END"]
    assert t.stats()["failed"] == 0
    assert events[0]["session_id"] == "s\ufffd1" and events[0]["attributes"]["ticket"] == "f\ufffdile"
    assert events[1]["attributes"]["path"] == "/tmp/f\ufffdile" and events[2]["payload"]["name"] == "na\ufffdme"
    for e in events:
        event_row(e)


def test_digests_keep_lone_surrogates_apart(mem_tracer):
    _, t = mem_tracer
    assert t.digest({"path": "/tmp/\udcff"}) != t.digest({"path": "/tmp/\udcfe"})
    assert t.digest({"path": "/tmp/\udcff"}) != t.digest({"path": "/tmp/\ufffd"})


def test_utf8_replaces_only_what_is_not_text():
    assert utf8("plain é ✓ \U0001f600") == "plain é ✓ \U0001f600".encode()
    assert utf8("a\ud800b") == "a\ufffdb".encode()
    assert utf8("\ud83d\ude00") == "\U0001f600".encode()  # a pair given as two code points


@pytest.mark.parametrize("value,text", [(42, "42"), (1.5, "1.5"), (None, ""), (True, "True"),
                                        ({"password": "hunter2"}, "<dict>"), (["a"], "<list>"),
                                        (b"\xff", "<bytes>"), (object(), "<object>")])
def test_wire_text_never_writes_a_repr(value, text):
    assert wire_text(value) == text


def test_names_that_are_not_text_keep_their_events(mem_tracer):
    mem, t = mem_tracer
    with t.run("r") as run:
        with run.step("TOOL", 42):
            pass
        with run.step("TOOL", {"password": "hunter2"}):
            pass
        run.llm_call(None, 3, input_tokens=5)
    assert t.flush(10)
    steps = mem.events(kind="STEP")
    assert [s["payload"]["name"] for s in steps[:2]] == ["42", "<dict>"]
    assert steps[2]["payload"]["llm"]["provider"] == "" and steps[2]["payload"]["llm"]["request_model"] == "3"
    assert "hunter2" not in repr(mem.events())


@pytest.mark.parametrize("attempt,stored", [(3, 3), (ATTEMPT_MAX, ATTEMPT_MAX), (70000, 1), (-3, 1), (2**40, 1),
                                            ("2", 1), (2.0, 1), (True, 1), (None, 1), (0, 1)])
def test_attempts_the_table_cannot_store_are_left_out(mem_tracer, attempt, stored):
    mem, t = mem_tracer
    with t.run("r") as run:
        with run.step("TOOL", "x", attempt=attempt):
            pass
    assert t.flush(10)
    [step] = mem.events(kind="STEP")
    assert step["payload"]["attempt"] == stored
    assert t.stats()["failed"] == (0 if attempt in (3, ATTEMPT_MAX, None, 0) else 1)
    event_row(step)


def test_retry_of_that_is_not_a_step_is_left_out(mem_tracer):
    mem, t = mem_tracer
    with t.run("r") as run:
        with run.step("TOOL", "x") as first:
            pass
        with run.step("TOOL", "x", retry_of=first):
            pass
        with run.step("TOOL", "x", retry_of=12):
            pass
    assert t.flush(10)
    steps = mem.events(kind="STEP")
    assert (steps[1]["payload"]["retry_of"], steps[1]["payload"]["attempt"]) == (first.step_id, 2)
    assert (steps[2]["payload"]["retry_of"], steps[2]["payload"]["attempt"]) == (None, 1)
    assert t.stats()["failed"] == 1


def test_step_attempt_rule():
    assert [step_attempt(v) for v in (1, 2, ATTEMPT_MAX, ATTEMPT_MAX + 1, 0, -1, True, 2.0, "2")] == \
        [1, 2, ATTEMPT_MAX, None, None, None, None, None, None]


@pytest.mark.parametrize("given,sent", [("stop", ["stop"]), (["stop", "length"], ["stop", "length"]), ("", []),
                                        (None, []), (3, [])])
def test_finish_reasons_one_string_is_one_reason(mem_tracer, given, sent):
    mem, t = mem_tracer
    with t.run("r") as run:
        with run.llm_step("openai", "gpt-4o") as s:
            s.record_llm("openai", "gpt-4o", input_tokens=1, finish_reasons=given)
    assert t.flush(10)
    [step] = mem.events(kind="STEP")
    assert step["payload"]["llm"]["finish_reasons"] == sent
    assert t.stats()["failed"] == (1 if given == 3 else 0)


def test_run_arguments_of_the_wrong_type_are_left_out(mem_tracer):
    mem, t = mem_tracer
    with t.run(7, run_id=12345, session_id=["s"], parent="not a run", budget="cheap", role=3.5) as run:
        run.tool_call("x", {}, latency_ms=1.0)
    assert t.flush(10)
    start = mem.events(kind="RUN_START")[0]
    assert start["run_id"] == "12345" and start["session_id"] is None
    assert start["payload"]["entrypoint"] == "7"
    assert t.stats()["failed"] == 4  # session_id, parent, budget, role


@pytest.mark.parametrize("action,name", [
    ({"tool": "issue_refund", "amount_minor": 2599}, "approval issue_refund"),
    ({"action": "refund $40 to alice@example.com"}, "approval action"),
    ({"name": "x" * 65}, "approval action"),
    ({"tool": 5, "action": "send_email"}, "approval send_email"),
    ("delete everything for bob", "approval action"),
])
def test_an_approval_step_is_named_by_the_action_name_only(mem_tracer, action, name):
    """The action travels only as its digest; its text used to reach the step name."""
    mem, t = mem_tracer
    with t.run("r") as run:
        run.approval(action, "approved", 1000.0)
    assert t.flush(10)
    [step] = mem.events(kind="STEP")
    assert step["payload"]["name"] == name
    assert "alice" not in repr(mem.events()) and "bob" not in repr(mem.events())


def test_retries_linked_to_the_first_attempt_count_up(mem_tracer):
    """Each retry linked to the first attempt was sent as attempt 2."""
    mem, t = mem_tracer
    with t.run("r") as run:
        with run.step("TOOL", "x") as first:
            pass
        for _ in range(3):
            with run.step("TOOL", "x", retry_of=first):
                pass
        with run.step("TOOL", "y") as other:
            pass
        with run.step("TOOL", "y", retry_of=other) as second:
            pass
        with run.step("TOOL", "y", retry_of=second):
            pass
    assert t.flush(10)
    assert [s["payload"]["attempt"] for s in mem.events(kind="STEP")] == [1, 2, 3, 4, 1, 2, 3]
