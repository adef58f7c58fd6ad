"""A range stored by one sink process and replayed by the next, on one chDB directory (real chDB).

The attack: a kill leaves a flush uncommitted, and the restarted process re-sends its insert
under the same dedup tokens. Each view target must drop it as a repeat, so the tokens a view
derives must not depend on the process. They did after ``ALTER TABLE <view> MODIFY QUERY``:
the altering process derived other tokens than any later one, and the replay was counted twice
in every view target (which is why migration 0014 drops and creates its views instead). The
first process here is the one that migrates a fresh directory, as the sink's first life does.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

LIFE = """
import json, sys, time
sys.path.insert(0, sys.argv[3])
from agentstream.schemas import EVENT, Codec
from agentstream.sink import apply_migrations, make_client
from agentstream.sink.ledger import OffsetRange
from agentstream.sink.retention import RetentionBook
from agentstream.sink.tables import TABLE_SPECS
from agentstream.sink.writer import RangeWriter
from test_sink_support import Msg, run_events

client = make_client("chdb://" + sys.argv[1])
apply_migrations(client)
codec, spec = Codec(), TABLE_SPECS["events"]
events = json.load(open(sys.argv[4]))
parts = []
for p, wire in enumerate((1, 2, 0)):  # the staging views, the direct path, the Python mapper
    msgs = [Msg(codec.encode(EVENT, e), o, "x.events", p) for o, e in enumerate(events[p])]
    parts.append(({"range": OffsetRange("x.events", p, 0, len(msgs) - 1, 1_000, avro=wire)}, msgs))
writer = RangeWriter(lambda: client, codec, RetentionBook(30, 90), "g")
for cell, msgs in parts:
    (writer.store if sys.argv[2] == "store" else lambda s, c, m: writer.replay(s, [(c, m)]))(spec, cell, msgs)
q = lambda sql: client.query(sql).result_rows[0][0]
print(json.dumps([q("SELECT count() FROM events"), q("SELECT sum(event_count) FROM runs"),
                  q("SELECT sum(events) FROM step_rollup_hourly"), q("SELECT sum(calls) FROM cost_rollup_daily"),
                  q("SELECT sum(calls) FROM cost_rollup_daily_user"), q("SELECT count() FROM run_events")]))
"""


def test_a_range_the_migrating_process_stored_is_not_counted_twice_when_the_next_one_replays_it(tmp_path: Path):
    from test_sink_support import run_events

    events = [[e for i in range(3) for e in run_events("t", f"run-{p}-{i}", n_steps=4)] for p in range(3)]
    (tmp_path / "events.json").write_text(json.dumps(events))
    here = str(Path(__file__).parent)

    def life(mode: str) -> list[int]:
        out = subprocess.run([sys.executable, "-c", LIFE, str(tmp_path / "chdb"), mode, here,
                              str(tmp_path / "events.json")], capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        return json.loads(out.stdout.strip().splitlines()[-1])

    stored = life("store")
    n = sum(len(e) for e in events)
    llm_calls = sum(1 for part in events for e in part if e["kind"] == "STEP" and e["payload"]["step_kind"] == "LLM")
    assert stored == [n, n, n, llm_calls, llm_calls, n]
    assert life("replay") == stored
    assert life("replay") == stored
