"""The detectors see enough of an event when the field reader gives them only DETECTOR_FIELDS.

Two checks over a generator of runs that exercises every detector (budgets, loops of every
reason, retries, governance allow/deny/limits/forbidden digests/approvals, handoffs, decisions,
RUN_END drift, the selected attribute keys among others):

- every field the stage and the detectors touch, recorded on a full decode wrapped to log each
  access, is in DETECTOR_FIELDS: a detector that starts reading a new field fails here until
  the field is selected, instead of silently seeing ``None``;
- the chain's outputs (alerts, STOP commands, fleet deltas, events) and the run state are the
  same with the field reader's dicts as with full decodes.
"""
from __future__ import annotations

import random
import re
from typing import Any

import orjson
import pytest

from agentstream.schemas import ALERT, COMMAND, EVENT, Codec
from agentstream.schemas.loop_repeats import DIGEST_ATTR
from agentstream.stream_processors import redaction_stage
from agentstream.stream_processors import synthetic as syn
from agentstream.stream_processors.chain import Chain
from agentstream.stream_processors.detectors.runs import PROGRESS_ATTR
from agentstream.stream_processors.event_reader import DETECTOR_FIELDS, EventReader
from agentstream.stream_processors.policies import PolicyBook, TenantPolicy, governance_of
from agentstream.stream_processors.records import InRecord
from agentstream.stream_processors.redaction import Redactor
from agentstream.stream_processors.settings import ProcessorsSettings

codec = Codec()
TOOLS = ["search", "fetch", "shell", "email", "db.query"]


def _step(rng: random.Random, tenant: str, run: str, seq: int) -> dict[str, Any]:
    attrs = {f"k{i}": "v" for i in range(rng.choice([0, 2]))}
    if rng.random() < 0.3:
        attrs[DIGEST_ATTR] = rng.choice(["x", "y"])
    if rng.random() < 0.3:
        attrs[PROGRESS_ATTR] = rng.choice(["fp1", "fp2"])
    kind = rng.choice(["TOOL", "TOOL", "LLM", "APPROVAL", "HANDOFF", "DECISION", "FAILURE", "QUALITY"])
    if kind == "LLM":
        e = syn.llm_step(tenant, run, seq, cost_usd=rng.choice([0.001, 0.5]), tokens=rng.choice([10, 5000]),
                         attributes=attrs)
        e["payload"]["llm"]["request_digest"] = rng.choice([None, "r1", "r2"])
        return e
    if kind == "TOOL":
        name = rng.choice(TOOLS)
        e = syn.step(tenant, run, seq, name=name, args_digest=rng.choice([None, "a1", "a2", "forbidden"]),
                     attempt=rng.choice([1, 1, 2, 3]), attributes=attrs)
        if rng.random() < 0.3:
            e["payload"]["retry_of"] = f"{run}-s{max(1, seq - 1)}"
        return e
    if kind == "APPROVAL":
        e = syn.step(tenant, run, seq, name="approve", step_kind="APPROVAL", attributes=attrs)
        e["payload"]["approval"] = {"action_digest": rng.choice(["a1", "a2"]), "approval_latency_ms": 5.0,
                                    "decision": rng.choice(["approved", "rejected"])}
        return e
    if kind == "HANDOFF":
        e = syn.step(tenant, run, seq, name="handoff", step_kind="HANDOFF", attributes=attrs)
        e["payload"]["handoff"] = {"to_agent_id": rng.choice(["a", "b"]), "to_run_id": f"{run}-child",
                                   "role": None}
        return e
    if kind == "DECISION":
        return syn.event(tenant, run, seq, "DECISION", {
            "decision_type": "tool_selection", "selected": rng.choice(TOOLS[:2]), "candidates": TOOLS,
            "reason_code": "best", "confidence": 0.5}, attributes=attrs)
    if kind == "FAILURE":
        return syn.event(tenant, run, seq, "FAILURE", {"failure_type": "TOOL", "failure_code": "timeout",
                                                      "message": None}, attributes=attrs)
    return syn.event(tenant, run, seq, "QUALITY_SIGNAL", {"signal_type": "eval", "signal_code": "ok",
                                                         "value": rng.random() < 0.5}, attributes=attrs)


def _events(seed: int, runs: int = 60) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for n in range(runs):
        tenant, run = f"t{n % 3}", f"run-{seed}-{n}"
        start = syn.run_start(tenant, run, agent_id=rng.choice(["a", "b"]))
        start["parent_run_id"] = rng.choice([None, f"run-{seed}-{max(0, n - 1)}-child"])
        out.append(start)
        steps = rng.choice([1, 4, 12, 30])
        out += [_step(rng, tenant, run, s) for s in range(1, steps + 1)]
        if rng.random() < 0.8:
            out.append(syn.run_end(tenant, run, steps + 1, status=rng.choice(["SUCCESS", "FAILURE"]),
                                   step_count=steps, cost_usd=0.2))
    return out


def _book() -> PolicyBook:
    book = PolicyBook()
    book.set(TenantPolicy("t0", loops={"max_repeats": 2, "max_ping_pong": 2, "max_no_progress": 2, "max_retries": 1,
                                       "stop_on_loop": True, "repeat_window": 6},
                          budgets={"run_max_steps": 10, "run_max_tokens": 20000, "run_max_cost_usd": 1.0,
                                   "tenant_usd_per_hour": 2.0, "agent_usd_per_day": 3.0, "hard_limit": True,
                                   "warn_fraction": 0.5}))
    book.set(TenantPolicy("t1", governance=governance_of({
        "tool_deny": ["shell"], "tool_allow": ["search", "fetch", "email", "approve", "handoff"],
        "max_calls_per_tool": {"search": 2}, "forbidden_arg_digests": ["forbidden"],
        "require_approval": ["email"], "max_fan_out": 1, "max_delegation_depth": 1})))
    return book


BATCH = [InRecord("d.raw", n % 3, n, e["run_id"].encode(), codec.encode(EVENT, e))
         for n, e in enumerate(_events(7))]
_ADDR = re.compile(rb" at 0x[0-9a-f]+")


def _process(chain: Chain) -> tuple[list, dict]:
    state: dict = {}
    out = []
    for i in range(0, len(BATCH), 250):
        out += chain.process(BATCH[i:i + 250], lambda p, k: state.get(k), lambda p, k, v: state.__setitem__(k, v))
    fleet = [o for o in out if o.topic == "d.fleet"]
    fstate: dict = {}
    out += chain.process_fleet([InRecord("d.fleet", 0, n, o.key, o.value) for n, o in enumerate(fleet)],
                               lambda p, k: fstate.get(k), lambda p, k, v: fstate.__setitem__(k, v))
    return out, {**state, **{b"fleet:" + k: v for k, v in fstate.items()}}


def _comparable(out: list) -> list:
    rows = []
    for o in out:
        if o.topic == "d.alerts":
            v = {**codec.decode_as(ALERT, o.value), "detected_us": 0}
        elif o.topic == "d.commands":
            v = {**codec.decode_as(COMMAND, o.value), "issued_us": 0}
        elif o.topic == "d.fleet":
            v = orjson.loads(o.value)
        else:
            v = _ADDR.sub(b"", o.value or b"")
        rows.append((o.topic, o.key, repr(v)))
    return rows


def _chain() -> Chain:
    return Chain(ProcessorsSettings(topic_prefix="d."), codec, Redactor(b"k"), _book(), "d.fleet")


def test_detectors_find_the_same_with_selected_fields_as_with_full_decodes(monkeypatch):
    fast = _chain()
    fast_out, fast_state = _process(fast)
    assert fast.redaction.counts.passed_bytes > 0.5 * len(BATCH)  # the field reader's dicts, mostly
    monkeypatch.setattr(redaction_stage, "text_may_need_redaction", lambda *a: True)
    full = _chain()
    full_out, full_state = _process(full)
    assert full.redaction.counts.passed_bytes == 0
    assert fast_state == full_state
    assert _comparable(fast_out) == _comparable(full_out)
    alerts = {codec.decode_as(ALERT, o.value)["alert_type"] for o in fast_out if o.topic == "d.alerts"}
    # the generator reached every detector family
    assert {"loop", "budget_breach", "budget_warning", "policy_violation", "approval_violation"} <= alerts, alerts


class Traced(dict):
    """A decoded event that logs the path of every field read from it (nested dicts too)."""

    def __init__(self, value: dict, path: tuple, log: set) -> None:
        super().__init__({k: Traced(v, path + (k,), log) if isinstance(v, dict) else v for k, v in value.items()})
        self._path, self._log = path, log

    def __getitem__(self, k):
        self._log.add(self._path + (k,))
        return super().__getitem__(k)

    def get(self, k, default=None):
        self._log.add(self._path + (k,))
        return super().get(k, default)

    def __contains__(self, k):
        self._log.add(self._path + (k,))
        return super().__contains__(k)

    def __iter__(self):
        self._log.add(self._path + ("*",))
        return super().__iter__()

    def items(self):
        self._log.add(self._path + ("*",))
        return super().items()

    def keys(self):
        self._log.add(self._path + ("*",))
        return super().keys()

    def values(self):
        self._log.add(self._path + ("*",))
        return super().values()


def _allowed(path: tuple) -> bool:
    sel: Any = DETECTOR_FIELDS
    for k in path:
        if sel is True:
            return True
        if isinstance(sel, tuple):
            return k in sel
        if k == "*" or k not in sel:
            return False
        sel = sel[k]
    return True


def test_every_field_the_stage_and_detectors_read_is_selected():
    log: set = set()
    real = EventReader(codec)

    class TracingReader:
        def read_text(self, data):
            got = real.read_text(data)
            if got is None:
                return None
            return (Traced(codec.decode_as(EVENT, data), (), log), *got[1:])

    chain = _chain()
    chain.redaction.reader = TracingReader()  # type: ignore[assignment]
    _process(chain)
    assert chain.redaction.counts.passed_bytes > 0.5 * len(BATCH)
    assert ("payload", "llm", "cost_usd") in log and ("attributes", DIGEST_ATTR) in log  # it did record
    # ``redaction`` is written by the stage, never read from the raw event (its byte is checked)
    read = {p for p in log if p != ("redaction",)}
    assert sorted(p for p in read if not _allowed(p)) == []


@pytest.mark.parametrize("path,ok", [(("payload", "llm", "cost_usd"), True), (("attributes", "other"), False),
                                     (("environment",), False), (("payload", "content", "preview"), True),
                                     (("attributes", "*"), False)])
def test_the_selection_check_itself(path, ok):
    assert _allowed(path) is ok
