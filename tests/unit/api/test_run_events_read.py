"""Run detail's read of ``run_events`` (0010_run_events.sql): the stored copy is the event.

The view renders each event into one positional JSON array, and the API decodes it by
``RUN_EVENT_FIELDS``: every field of random events, read back through the view, must equal the
same field read from ``events`` itself (what the read before this table returned), whatever the
values (unicode, quotes and control characters, 64-bit counts, non-finite floats, nulls).
"""
from __future__ import annotations

import base64
import json
import math
import random
import time
import uuid
from typing import Any

import pytest

from agentstream.api.db import Db
from agentstream.api.errors import ApiError
from agentstream.api.store import runs as R

from api_fleet import _DEFAULTS, EVENT_COLS, RunBuilder, dt, insert_runs, now_us
from run_event_codec import encode

# The events columns behind each field, as the read before run_events selected them.
FROM_EVENTS = {"ts_us": "toUnixTimestamp64Micro(ts)", "started_us": "toUnixTimestamp64Micro(started_ts)",
               "inserted_ms": "toUnixTimestamp64Milli(inserted_at)"}
ALPHABET = "abcXYZ019 -_:/\\\"'\t\n\x01é漢🙂{}[],=%"


def text(rnd: random.Random, n: int = 12) -> str:
    return "".join(rnd.choice(ALPHABET) for _ in range(rnd.randint(0, n)))


def number(rnd: random.Random) -> float:
    return rnd.choice([0.0, -0.0, 0.1 + 0.2, 1e-320, 1.7976931348623157e308, -2.5, float("nan"),
                       float("inf"), float("-inf"), rnd.uniform(-1e6, 1e6), rnd.random() / 3])


def random_event(rnd: random.Random, tenant: str, run_id: str, seq: int, t_us: int) -> dict[str, Any]:
    kind = rnd.choice(["RUN_START", "RUN_END", "STEP", "FAILURE", "DECISION", "QUALITY_SIGNAL",
                       "FEEDBACK", "COMMAND_ACK"])
    big = [0, 1, 2**32, 2**63 - 1, 2**64 - 1]
    return {
        "tenant_id": tenant, "ts": dt(t_us), "event_id": f"{uuid.uuid4().hex}-{text(rnd, 4)}",
        "agent_id": text(rnd), "agent_version": text(rnd, 4), "environment": text(rnd, 4),
        "run_id": run_id, "session_id": text(rnd), "parent_run_id": text(rnd),
        "parent_step_id": text(rnd), "seq": rnd.choice([seq, 0, 2**32 - 1]), "kind": kind,
        "step_id": text(rnd), "step_kind": rnd.choice(["", "LLM", "TOOL", "PLAN"]), "name": text(rnd),
        "status": rnd.choice(["", "OK", "ERROR"]), "started_ts": dt(t_us - rnd.randint(0, 10**6)),
        "latency_ms": number(rnd), "attempt": rnd.choice([0, 1, 2, 65535]), "retry_of": text(rnd),
        "provider": text(rnd, 5), "request_model": text(rnd, 5), "input_tokens": rnd.choice(big),
        "output_tokens": rnd.choice(big), "cost_usd": number(rnd), "tool_name": text(rnd, 5),
        "args_digest": text(rnd), "failure_type": text(rnd, 5), "failure_code": text(rnd, 5),
        "decision_type": text(rnd, 5), "selected": text(rnd),
        "candidates": [text(rnd) for _ in range(rnd.randint(0, 3))], "reason_code": text(rnd, 5),
        "confidence": rnd.choice([None, number(rnd)]), "signal_type": text(rnd, 5),
        "signal_code": text(rnd, 5), "signal_value": rnd.choice([None, True, False]),
        "run_status": rnd.choice(["", "SUCCESS", "FAILURE", "PARTIAL"]), "outcome": text(rnd, 5),
        "duration_ms": number(rnd), "payload": json.dumps({"k": text(rnd)}),
        "attributes": {text(rnd, 6): text(rnd) for _ in range(rnd.randint(0, 3))},
    }


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    return a == b


def test_every_field_read_through_run_events_is_the_events_column(ch, unique):
    rnd = random.Random(18)
    tenant = "t-" + unique
    t0 = now_us() - 3_600_000_000
    rows = [random_event(rnd, tenant, f"run-{unique}-{i % 5}", i, t0 + i * 1000) for i in range(300)]
    ch.insert("events", [[r[c] for c in EVENT_COLS] for r in rows], column_names=EVENT_COLS)
    fields = ", ".join(FROM_EVENTS.get(f, f) for f in R.RUN_EVENT_FIELDS)
    for i in range(5):
        run_id = f"run-{unique}-{i}"
        stored = ch.query(f"SELECT {fields} FROM events WHERE tenant_id = {{t:String}} AND run_id = {{r:String}}",
                          parameters={"t": tenant, "r": run_id}).result_rows
        want = {row[2]: dict(zip(R.RUN_EVENT_FIELDS, row)) for row in stored}
        got = {e["event_id"]: e for e in R.run_events(Db(ch), tenant, run_id)}
        assert set(got) == set(want) and len(got) == 60
        for eid, ev in got.items():
            w = want[eid]
            w["attributes"] = dict(w["attributes"])
            w["candidates"] = list(w["candidates"])
            bad = [k for k in R.RUN_EVENT_FIELDS if not same(ev[k], w[k])]
            assert not bad, {k: (ev[k], w[k]) for k in bad}


def event(seq: int, eid: str, inserted: int, **kw: Any) -> dict[str, Any]:
    base = {f: "" for f in R.RUN_EVENT_FIELDS}
    base.update(kind="STEP", seq=seq, event_id=eid, ts_us=1000 + seq, started_us=1000, latency_ms=1.5,
                attempt=1, input_tokens=0, output_tokens=0, cache_read_tokens=0, cache_write_tokens=0,
                cost_usd=0.0, candidates=[], confidence=None, signal_value=None, payload="{}",
                attributes={}, duration_ms=0.0, inserted_ms=inserted)
    base.update(kw)
    return base


def stored(seq: int, eid: str, inserted: int, **kw: Any) -> str:
    return encode(event(seq, eid, inserted, **kw))


def test_copies_of_an_event_fold_to_the_last_inserted_and_order_is_seq_then_time():
    rows = [stored(2, "b", 5, name="second"), stored(0, "a", 1, kind="RUN_START", name="main"),
            stored(1, "c", 3, ts_us=900), stored(2, "b", 9, name="second, redelivered later"),
            stored(2, "b", 7, name="an earlier copy read after the later one"), stored(1, "d", 3, ts_us=950)]
    out = R.run_event_rows(rows)
    assert [e["event_id"] for e in out] == ["a", "c", "d", "b"]
    assert out[-1]["name"] == "second, redelivered later"
    assert R.run_event_rows([]) == []


def test_every_value_of_every_type_round_trips_the_layout():
    rnd = random.Random(7)
    for i in range(200):
        ev = event(rnd.choice([0, 1, 2**32 - 1]), text(rnd), rnd.choice([0, 2**62]), name=text(rnd, 40),
                   kind=text(rnd, 3), latency_ms=number(rnd), cost_usd=number(rnd), duration_ms=number(rnd),
                   confidence=rnd.choice([None, number(rnd)]), signal_value=rnd.choice([None, True, False]),
                   input_tokens=rnd.choice([0, 2**64 - 1]), ts_us=rnd.choice([-(2**63), 0, 2**62]),
                   candidates=[text(rnd) for _ in range(rnd.randint(0, 3))],
                   attributes={text(rnd): text(rnd, 300) for _ in range(rnd.randint(0, 3))},
                   payload=text(rnd, 400))  # > 127 bytes: a two-byte length
        got = R.decode_run_event(encode(ev))
        assert all(same(got[k], ev[k]) for k in R.RUN_EVENT_FIELDS), i


def test_a_later_layout_is_read_by_its_known_fields_and_a_foreign_one_is_refused():
    ev = event(0, "a", 1, name="n")
    assert R.decode_run_event(encode(ev, version=2, extra=b"a field appended later"))["name"] == "n"
    whole = base64.b64decode(encode(ev))
    bad = [encode(ev, version=0), encode(ev, extra=b"\x00"), base64.b64encode(whole[:-1]).decode(),
           base64.b64encode(whole[:5]).decode(), "", "not base64!", base64.b64encode(b"\x01" + b"\xff" * 12).decode()]
    for b in bad:
        with pytest.raises(ValueError):
            R.decode_run_event(b)


class Rows:
    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self._rows = rows

    def rows(self, sql: str, params: dict[str, Any] | None = None,
             settings: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return self._rows


def test_an_unreadable_stored_event_is_a_clear_error_not_a_traceback():
    with pytest.raises(ApiError) as err:
        R.run_detail(Rows([{"detail": base64.b64encode(b"\x01\x02").decode()}]), "t", "r")
    assert err.value.status == 500 and err.value.code == "stored_event_unreadable"


def test_header_follows_the_runs_view_rules():
    evs = R.run_event_rows([
        stored(0, "a", 1, kind="RUN_START", name="entry", agent_id="ag", agent_version="1",
              environment="prod", session_id="s1"),
        stored(1, "b", 1, name="tool", agent_id="ag", agent_version="1", environment="prod",
              parent_run_id="parent"),
    ])
    live = R.header_of(evs)
    assert live == {"agent_id": "ag", "agent_version": "1", "environment": "prod", "session_id": "s1",
                    "parent_run_id": "parent", "entrypoint": "entry", "status": "", "outcome": "",
                    "duration_ms": 0.0}
    detail = R.detail_of("r", evs, live)
    assert detail["run"]["status"] == "RUNNING" and detail["run"]["duration_ms"] is None


def test_same_run_id_in_two_tenants_each_reads_its_own(api, ch, tenant, auth, keys_file, unique):
    from agentstream.api.auth import add_key

    other = "o-" + unique
    mine = RunBuilder(tenant, "agent-mine", run_id=f"shared-{unique}")
    mine.tool("search", 5.0)
    mine.end("SUCCESS")
    theirs = RunBuilder(other, "agent-theirs", run_id=f"shared-{unique}")
    theirs.llm("think", 7.0, input_tokens=10, output_tokens=2, cost=0.5)
    insert_runs(ch, [mine, theirs])
    other_auth = {"Authorization": f"Bearer {add_key(keys_file, other, scopes=['read'])}"}
    a = api.get(f"/v1/runs/shared-{unique}", headers=auth).json()
    b = api.get(f"/v1/runs/shared-{unique}", headers=other_auth).json()
    assert a["run"]["agent_id"] == "agent-mine" and a["run"]["status"] == "SUCCESS"
    assert [s["step_kind"] for s in a["steps"]] == ["TOOL"] and a["run"]["cost_usd"] == 0
    assert b["run"]["agent_id"] == "agent-theirs" and b["run"]["status"] == "RUNNING"
    assert [s["step_kind"] for s in b["steps"]] == ["LLM"] and b["run"]["cost_usd"] == 0.5
    assert "agent-theirs" not in json.dumps(a) and "agent-mine" not in json.dumps(b)


def test_a_redelivered_event_with_other_content_shows_its_last_copy_as_events_final_does(api, ch, tenant, auth):
    run = RunBuilder(tenant, "agent-a")
    run.tool("search", 5.0)
    ch.command("SYSTEM STOP MERGES run_events")
    try:
        insert_runs(ch, [run])
        # the same event again, its content changed (a redaction policy changed in between)
        again = run.rows()[1] | {"name": "search [redacted]", "payload": json.dumps({"note": "v2"})}
        time.sleep(0.005)  # inserted_at is in ms: the copy is later by the clock, as a redelivery is
        ch.insert("events", [[again.get(c, _DEFAULTS.get(c)) for c in EVENT_COLS]], column_names=EVENT_COLS)
        copies = ch.query("SELECT count() FROM run_events WHERE tenant_id = {t:String} AND run_id = {r:String}",
                          parameters={"t": tenant, "r": run.run_id}).result_rows[0][0]
        assert copies == 3
        body = api.get(f"/v1/runs/{run.run_id}", headers=auth).json()
    finally:
        ch.command("SYSTEM START MERGES run_events")
    final = ch.query("SELECT name FROM events FINAL WHERE tenant_id = {t:String} AND event_id = {e:String}",
                     parameters={"t": tenant, "e": again["event_id"]}).result_rows
    assert [s["name"] for s in body["steps"]] == ["search [redacted]"] == [r[0] for r in final]
    assert body["steps"][0]["details"] == {"note": "v2"} and body["run"]["event_count"] == 2



@pytest.mark.parametrize("run_id", ["it's", "back\\slash", "100%_done", "漢字-🙂", "x" * 256, "a b\tc", "' OR 1=1 --"])
def test_any_run_id_reads_its_own_run_only(api, ch, tenant, auth, run_id):
    run = RunBuilder(tenant, "agent-a", run_id=run_id)
    run.tool("search", 5.0)
    run.end("SUCCESS")
    # a neighbour in the key order: the same id with a suffix, and a prefix of it
    near = [RunBuilder(tenant, "agent-near", run_id=run_id + "0"), RunBuilder(tenant, "agent-near", run_id=run_id[:-1] or "z")]
    insert_runs(ch, [run, *near])
    from urllib.parse import quote

    r = api.get(f"/v1/runs/{quote(run_id, safe='')}", headers=auth)
    body = r.json()
    assert r.status_code == 200, (r.status_code, r.text)
    assert body["run"]["run_id"] == run_id and body["run"]["agent_id"] == "agent-a"
    assert body["run"]["event_count"] == 3 and body["run"]["status"] == "SUCCESS"


def test_a_cut_or_corrupted_event_is_a_value_error_at_every_byte():
    """The reader indexes bytes and unpacks in place: running off the end anywhere (inside a
    length, a number, a string, an array, a map) is the reader's ValueError, nothing else."""
    ev = event(3, "e-cut", 4, name="n" * 130, candidates=["a", "b" * 200], attributes={"k": "v", "x" * 140: "y"},
               confidence=0.5, signal_value=True, payload="p" * 300)
    whole = base64.b64decode(encode(ev))
    assert R.decode_run_event(base64.b64encode(whole).decode()) == ev
    for cut in range(len(whole)):
        with pytest.raises(ValueError):
            R.decode_run_event(base64.b64encode(whole[:cut]).decode())
    rnd = random.Random(11)
    for _ in range(300):  # a flipped byte: a clean event or a ValueError, never another error
        bad = bytearray(whole)
        bad[rnd.randrange(1, len(bad))] = rnd.randrange(256)
        try:
            R.decode_run_event(base64.b64encode(bytes(bad)).decode())
        except ValueError:
            pass
