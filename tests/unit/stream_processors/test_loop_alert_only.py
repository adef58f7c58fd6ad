"""Alert-only loop detection (``stop_on_loop`` off): the run goes on after its first loop alert,
so a later loop on other signatures alerts again; the same loop going on does not, and a run
raises a bounded number of loop alerts."""
from __future__ import annotations

from agentstream.stream_processors import synthetic as syn
from agentstream.stream_processors.detectors import runs
from agentstream.stream_processors.policies import BUDGET_DEFAULTS, LOOP_DEFAULTS

ALERT_ONLY = {**LOOP_DEFAULTS, "stop_on_loop": False}


def _loops(events, loops=ALERT_ONLY):
    st, found = runs.new_state(), []
    for e in events:
        found += [(e["seq"], f) for f in runs.observe(st, e, loops, BUDGET_DEFAULTS) if f.alert_type == "loop"]
    return st, found


class Run:
    def __init__(self):
        self.seq = 0
        self.events = []

    def steps(self, n, name, digest=None, **kw):
        for _ in range(n):
            self.seq += 1
            self.events.append(syn.step("t", "r", self.seq, name=name, args_digest=digest or name, **kw))
        return self


def test_a_runaway_after_benign_polling_alerts_again():
    r = Run().steps(6, "get_job_status", "job-42").steps(1, "plan-a").steps(1, "plan-b")
    r.steps(300, "send_email", "same-email")
    _, found = _loops(r.events)
    assert [(seq, f.evidence["reasons"], f.stop) for seq, f in found] == [(6, "repeat", False), (14, "repeat", False)]
    assert "send_email" in found[1][1].evidence["reason.repeat"]
    assert len({f.key for _, f in found}) == 2  # distinct alert ids


def test_the_same_loop_going_on_alerts_once():
    _, found = _loops(Run().steps(500, "send_email", "same-email").events)
    assert len(found) == 1


def test_reasons_of_one_loop_firing_at_different_steps_alert_once():
    # the fingerprint fires at the 4th poll, the repeat at the 6th: one loop, one alert
    fp = {runs.PROGRESS_ATTR: "no-change"}
    _, found = _loops(Run().steps(40, "get_job_status", "job-42", attributes=fp).events)
    assert [f.evidence["reasons"] for _, f in found] == ["no_progress"]


def test_a_ping_pong_then_a_repeat_of_one_of_its_sides_is_the_same_loop():
    r = Run()
    for _ in range(6):
        r.steps(1, "a").steps(1, "b")
    r.steps(10, "a")
    _, found = _loops(r.events)
    assert len(found) == 1


def test_loop_alerts_per_run_are_bounded():
    r = Run()
    for i in range(200):
        r.steps(6, f"tool-{i}")
    st, found = _loops(r.events)
    assert 1 < len(found) <= runs.MAX_LOOP_ALERTS
    assert len(st["lsub"]) <= runs.MAX_LOOP_SUBJECTS


def test_with_stop_on_loop_the_first_loop_is_the_only_alert():
    r = Run().steps(6, "get_job_status", "job-42").steps(1, "x").steps(300, "send_email")
    _, found = _loops(r.events, LOOP_DEFAULTS)
    assert [(seq, f.stop) for seq, f in found] == [(6, True)]
