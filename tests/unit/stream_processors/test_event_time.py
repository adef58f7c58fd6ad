"""Far-future event times are clamped to the processing time and flagged, never stored as sent.

Attacks first: year 9999, the largest long, just past the horizon, on the envelope's ts_us and on a
payload's started_us, for every event kind, on the byte pass-through path and the decode path.
A year-9999 row would sort at the top of every run list, outlive its retention (the TTL is
``ts + retention_days``) and land in a partition of its own."""
from __future__ import annotations

import random
import time

import pytest

from agentstream.schemas import EVENT, Codec
from agentstream.stream_processors import synthetic as syn
from agentstream.stream_processors.event_time import (CLAMP_ATTR, clamp_future_times, flag_clamped,
                                                     future_times, has_future_time)
from agentstream.stream_processors.policies import PolicyBook, TenantPolicy
from agentstream.stream_processors.records import InRecord
from agentstream.stream_processors.redaction import Redactor
from agentstream.stream_processors.redaction_stage import RedactionStage

HOUR_US = 3_600_000_000
Y9999_US = 253_402_300_799_000_000  # 9999-12-31T23:59:59Z
LONG_MAX = 2**63 - 1
AHEAD_S = 86_400.0


def _events(now_us: int) -> list[dict]:
    return [syn.run_start("acme", "r1", ts_us=now_us), syn.step("acme", "r1", 1, ts_us=now_us),
            syn.llm_step("acme", "r1", 2, 0.01, ts_us=now_us), syn.run_end("acme", "r1", 3, ts_us=now_us)]


def test_times_within_the_horizon_are_left_alone():
    now = int(time.time() * 1e6)
    for ev in _events(now):
        for ts in (now, now + 23 * HOUR_US, now + int(AHEAD_S * 1e6), 0, now - 400 * 24 * HOUR_US):
            ev["ts_us"] = ts
            before = repr(ev)
            assert clamp_future_times(ev, now, AHEAD_S) is None
            assert repr(ev) == before


@pytest.mark.parametrize("bad", [Y9999_US, LONG_MAX, "horizon+1", "now+25h"])
@pytest.mark.parametrize("where", ["ts_us", "started_us", "both"])
def test_a_future_time_is_clamped_to_now_and_flagged(bad, where):
    now = int(time.time() * 1e6)
    value = {"horizon+1": now + int(AHEAD_S * 1e6) + 1, "now+25h": now + 25 * HOUR_US}.get(bad, bad)
    for ev in _events(now - HOUR_US):
        has_started = "started_us" in ev["payload"]
        if where in ("ts_us", "both"):
            ev["ts_us"] = value
        if where in ("started_us", "both"):
            if not has_started:
                continue
            ev["payload"]["started_us"] = value
        flag = clamp_future_times(ev, now, AHEAD_S)
        assert flag is not None and str(value) in flag
        assert CLAMP_ATTR not in ev["attributes"]  # flagged by the stage, after redaction
        flag_clamped(ev, flag)
        assert ev["attributes"][CLAMP_ATTR] == flag
        assert ev["ts_us"] <= now and ev["payload"].get("started_us", 0) <= now
        if where in ("ts_us", "both"):
            assert ev["ts_us"] == now and "ts_us=" in flag
        else:
            assert ev["ts_us"] == now - HOUR_US  # what was in range stays as sent
        if where in ("started_us", "both"):
            assert ev["payload"]["started_us"] == now and "payload.started_us=" in flag


def test_generated_events_never_keep_a_time_past_the_horizon():
    r = random.Random(9999)
    now = int(time.time() * 1e6)
    horizon = now + int(AHEAD_S * 1e6)
    for _ in range(2000):
        ev = r.choice(_events(now))
        ev["ts_us"] = r.choice([r.randint(0, LONG_MAX), r.randint(now - HOUR_US, horizon + HOUR_US)])
        if "started_us" in ev["payload"]:
            ev["payload"]["started_us"] = r.randint(0, LONG_MAX)
        over = [v for v in (ev["ts_us"], ev["payload"].get("started_us") or 0) if v > horizon]
        assert len(future_times(ev, horizon)) == len(over)
        flag = clamp_future_times(ev, now, AHEAD_S)
        assert ev["ts_us"] <= horizon and (ev["payload"].get("started_us") or 0) <= horizon
        assert (flag is not None) == bool(over) and not future_times(ev, horizon)


def _stage() -> RedactionStage:
    book = PolicyBook()
    book.set(TenantPolicy("acme", capture_mode="METADATA_ONLY"))
    return RedactionStage(Codec(), Redactor(b"k"), book, "f.", max_event_ahead_s=AHEAD_S)


def test_the_stage_clamps_on_the_byte_path_and_the_decode_path():
    codec, stage = Codec(), _stage()
    before = int(time.time() * 1e6)
    good = syn.step("acme", "r-good", 1, ts_us=before)
    future = syn.step("acme", "r-9999", 1, ts_us=Y9999_US)
    late_start = syn.run_end("acme", "r-start", 2, ts_us=before)
    late_start["payload"]["started_us"] = Y9999_US
    secret = syn.step("acme", "r-secret", 1, ts_us=Y9999_US)  # takes the decode path (a redaction hit)
    secret["attributes"] = {"note": "key sk-proj-" + "Ab3" * 16}
    batch = [InRecord("f.raw", 0, i, ev["run_id"].encode(), codec.encode(EVENT, ev))
             for i, ev in enumerate([good, future, late_start, secret])]
    out: list = []
    passed = stage.process(batch, out)
    after = int(time.time() * 1e6)
    assert [o.topic for o in out] == ["f.events"] * 4
    assert out[0].value.startswith(batch[0].value[:40])  # the good one went on as its bytes
    decoded = [codec.decode(o.value)[1] for o in out]
    assert decoded[0]["ts_us"] == before and CLAMP_ATTR not in decoded[0]["attributes"]
    for ev in decoded[1:]:
        assert ev["ts_us"] <= after and ev["payload"]["started_us"] <= after
        assert str(Y9999_US) in ev["attributes"][CLAMP_ATTR]
    assert before <= decoded[1]["ts_us"] <= after and decoded[2]["ts_us"] == before
    assert decoded[3]["redaction"]["rule_counts"]  # still redacted
    assert [p.event["ts_us"] <= after for p in passed] == [True] * 4  # detectors see the clamped time
    assert stage.counts.clamped == 3 and stage.counts.dlq == 0


def test_the_hot_paths_question_agrees_with_future_times():
    """``has_future_time`` (asked of every record on the byte pass-through) is ``future_times``'s
    answer without the list, on every shape an event's payload comes in."""
    rnd = random.Random(20261206)
    now = int(time.time() * 1e6)
    horizon = now + int(AHEAD_S * 1e6)
    times = [None, 0, now, horizon, horizon + 1, Y9999_US, LONG_MAX, -1]
    for _ in range(2000):
        ev = rnd.choice(_events(now))
        ev["ts_us"] = rnd.choice(times)
        payload = dict(ev["payload"]) if isinstance(ev.get("payload"), dict) else {}
        started = rnd.choice(times)
        if started is None:
            payload.pop("started_us", None)
        else:
            payload["started_us"] = started
        ev["payload"] = rnd.choice([payload, ("branch", payload), None, "text"])
        assert has_future_time(ev, horizon) == bool(future_times(ev, horizon)), ev
