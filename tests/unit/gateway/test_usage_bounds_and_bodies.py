"""Red-team findings at the gateway (s17): durations of -1e308 or infinity, token counts that wrap
UInt64 sums or fail to encode, and gzip bodies only partly checked. Each is refused per event
(``out_of_range``) or per request (``malformed_body``), never accepted and broken later."""
from __future__ import annotations

import gzip
import math
import zlib

import pytest

from agentstream.api.gateway.errors import GatewayError
from agentstream.api.gateway.event_rules import usage_issues
from agentstream.api.gateway.otlp_decode import OtlpSpan
from agentstream.api.gateway.otlp_mapping import MappingContext, map_spans
from agentstream.api.gateway.pricing import PriceTable
from agentstream.api.gateway.validation import EventValidator
from agentstream.schemas import EVENT, Codec
from agentstream.schemas.usage_numbers import DURATION_MS_MAX, TOKENS_MAX

from test_limits import _read  # same directory: the route's body reader, no server

V = EventValidator()


def step(**over):
    p = {"step_id": "s1", "step_kind": "LLM", "name": "n", "status": "OK", "started_us": 1,
         "latency_ms": 5.0, "attempt": 1,
         "llm": {"provider": "p", "operation": "chat", "request_model": "m", "input_tokens": 1,
                 "output_tokens": 1, "cost_usd": 0.0}}
    p.update(over)
    return {"event_id": "e1", "agent_id": "a", "agent_version": "1", "environment": "dev",
            "run_id": "r", "seq": 1, "ts_us": 1, "kind": "STEP", "payload": p}


def run_end(duration_ms):
    return {"event_id": "e2", "agent_id": "a", "agent_version": "1", "environment": "dev",
            "run_id": "r", "seq": 2, "ts_us": 1, "kind": "RUN_END",
            "payload": {"status": "SUCCESS", "outcome": "ok", "started_us": 1, "duration_ms": duration_ms,
                        "step_count": 1, "llm_calls": 1, "input_tokens": 1, "output_tokens": 1,
                        "cost_usd": 0.0}}


def _issue(raw):
    rec, issues = V.validate(raw, "t")
    return rec, [(i["field"], i["reason"]) for i in issues]


@pytest.mark.parametrize("latency", [-1e308, -1.0, 1e308, DURATION_MS_MAX * 2])
def test_a_step_latency_outside_0_to_30_days_is_out_of_range(latency):
    rec, issues = _issue(step(latency_ms=latency))
    assert rec is None and issues == [("payload.latency_ms", "out_of_range")]


@pytest.mark.parametrize("latency", [0, 0.0, 5, 12.5, DURATION_MS_MAX])
def test_ordinary_latencies_pass(latency):
    rec, issues = _issue(step(latency_ms=latency))
    assert issues == [] and rec is not None


def test_non_finite_durations_are_refused_wherever_they_come_from():
    """NaN and inf as Python floats (what a JSON parser allowing them gives) and the run's own
    duration and an approval's wait, judged by the same rule."""
    for v in (math.nan, math.inf, -math.inf):
        assert [i["field"] for i in usage_issues(step(latency_ms=v))] == ["payload.latency_ms"]
        assert [i["field"] for i in usage_issues(run_end(v))] == ["payload.duration_ms"]
    rec, issues = _issue(run_end(-1e308))
    assert rec is None and issues == [("payload.duration_ms", "out_of_range")]
    appr = step(step_kind="APPROVAL", llm=None,
                approval={"action_digest": "ab" * 16, "decision": "approved", "approval_latency_ms": 1e300})
    rec, issues = _issue(appr)
    assert rec is None and issues == [("payload.approval.approval_latency_ms", "out_of_range")]


@pytest.mark.parametrize("n,ok", [(2**63 - 1, False), (TOKENS_MAX + 1, False), (TOKENS_MAX, True), (0, True)])
def test_a_token_count_past_the_bound_is_out_of_range(n, ok):
    """Three calls of 2^63-1 input tokens wrapped the tenant's UInt64 sum in /v1/costs."""
    raw = step()
    raw["payload"]["llm"]["input_tokens"] = n
    rec, issues = _issue(raw)
    assert (issues == []) == ok
    if not ok:
        assert issues == [("payload.llm.input_tokens", "out_of_range")]


# --- OTLP: counts are clamped, encode failures are short -------------------------------------

T = 1_760_000_000_000_000_000


def _span(sid, parent="", dur_ms=10.0, **attrs):
    return OtlpSpan("ab" * 16, sid * 16, parent * 16 if parent else "", "chat", T, T + int(dur_ms * 1e6),
                    attrs, 0, "", [], {"service.name": "svc"}, "scope")


def test_otlp_token_counts_are_clamped_and_the_run_end_encodes():
    spans = [_span("a", **{"gen_ai.agent.name": "ag", "gen_ai.operation.name": "invoke_agent"}),
             _span("b", "a", **{"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 10**30,
                                "gen_ai.usage.output_tokens": "1e30"}),
             _span("c", "a", **{"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 2**63 - 1})]
    mapped = map_spans(spans, MappingContext("t", T // 1000, PriceTable().cost))
    codec = Codec()
    events = mapped.runs[0].events
    for ev in events:
        codec.encode(EVENT, ev)  # RUN_END included: the run ends
        assert usage_issues(ev) == []
    end = events[-1]
    assert end["kind"] == "RUN_END" and end["payload"]["input_tokens"] == TOKENS_MAX
    llm = [e["payload"]["llm"] for e in events if e["kind"] == "STEP" and e["payload"]["llm"]]
    assert [x["input_tokens"] for x in llm] == [TOKENS_MAX, TOKENS_MAX]


def test_a_40_day_span_is_flagged_by_the_rule_the_traces_route_applies():
    """/v1/traces rejects each mapped event ``usage_issues`` flags (otlp_route.py), so a span open
    40 days is refused there, with a reason that names the field, not dead-lettered later."""
    spans = [_span("a", dur_ms=40 * 86_400_000.0, **{"gen_ai.operation.name": "chat"})]
    events = map_spans(spans, MappingContext("t", T // 1000, PriceTable().cost)).runs[0].events
    flagged = {i["field"] for ev in events for i in usage_issues(ev)}
    assert flagged == {"payload.latency_ms", "payload.duration_ms"}


# --- gzip / deflate bodies --------------------------------------------------------------------

DOC = b'{"events": []}'


def _gz(data: bytes) -> bytes:
    # mtime fixed: the parameters are the test ids, which every xdist worker must collect alike
    return gzip.compress(data, mtime=0)


@pytest.mark.parametrize("body,encoding,says", [
    (_gz(DOC) + _gz(b"garbage"), "gzip", "follow the end"),   # a second member
    (_gz(b'{"events":[') + _gz(b"]}"), "gzip", "follow the end"),
    (_gz(DOC) + b"\x00\x01garbage", "gzip", "follow the end"),        # trailing junk
    (_gz(DOC)[:-4], "gzip", "truncated"),                              # no CRC/size trailer
    (_gz(DOC)[:-12], "gzip", "truncated"),
    (b"\x1f\x8b\x08\x00garbage", "gzip", "truncated"),                           # header, then junk
    (_gz(DOC)[:10] + b"\xff" * 20, "gzip", "corrupt"),                 # corrupt deflate
    (zlib.compress(DOC) + b"x", "deflate", "follow the end"),
    (zlib.compress(DOC)[:-2], "deflate", "truncated"),
])
def test_a_compressed_body_is_read_whole_or_refused(body, encoding, says):
    with pytest.raises(GatewayError) as e:
        _read(body, 10_000, encoding)
    assert (e.value.status, e.value.code) == (400, "malformed_body"), e.value.message
    assert says in e.value.message


def test_a_whole_compressed_body_still_reads():
    assert _read(_gz(DOC), 10_000) == DOC
    assert _read(zlib.compress(DOC), 10_000, "deflate") == DOC
    assert _read(_gz(b""), 10_000) == b""


@pytest.mark.parametrize("field", ["session_id", "parent_run_id", "parent_step_id"])
def test_a_blank_optional_id_is_refused_as_the_sink_would_dead_letter_it(field):
    rec, issues = _issue({**step(), field: " "})
    assert rec is None and issues == [(field, "invalid_id")]
    rec, issues = _issue({**step(), field: ""})
    assert issues == []
