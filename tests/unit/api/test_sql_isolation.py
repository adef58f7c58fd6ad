"""The /v1/sql attack suite: two tenants, canaries in the victim's rows, hostile queries on every path.

Run against the real API over the session chDB (no mock): the attacker holds only its own key.
Three properties are checked:
- no response carries a canary (plain, hex or base64) or the victim's tenant id;
- non-interference: every hostile query answers the same before and after more victim rows
  (with new canaries) are written, so nothing of the victim's data shapes an answer;
- oracles: a probe aimed at the victim answers the same as one aimed at a tenant that does not
  exist (hypothesis places the probe on generated query shapes).
"""
from __future__ import annotations

import base64
import json
import uuid
from collections import Counter
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings, strategies as st

from agentstream.api.app import create_app
from agentstream.api.auth import add_key
from agentstream.api.settings import ApiSettings

from api_fleet import ALERT_COLS, RunBuilder, dt, insert_alerts, insert_runs, now_us
from sql_attacks import ESCAPES, PLACEMENTS, PROBES, corpus, place

CANARY_COLUMNS = ("run_id", "title", "name", "agent_id")


@dataclass
class World:
    api: TestClient
    auth: dict[str, str]
    attacker: str
    victim: str
    marker: str
    tables: dict[str, str]

    def ask(self, q: str):
        return self.api.post("/v1/sql", json={"sql": q}, headers=self.auth)


def _victim_runs(victim: str, marker: str, n: int) -> list[RunBuilder]:
    out = []
    for i in range(n):
        b = RunBuilder(victim, agent=f"canary-agent-{marker}", version=f"v-{marker}",
                       run_id=f"canary-run-{marker}-{i}", session_id=f"canary-session-{marker}")
        b.llm(f"canary-step-{marker}", 12.5, 10, 20, 0.25)
        b.tool(f"canary-tool-{marker}", 3.0)
        b.failure("tool_error", f"canary-code-{marker}")
        b.end("FAILED", f"canary-outcome-{marker}")
        out.append(b)
    return out


def _plant(ch, victim: str, marker: str, n: int) -> None:
    insert_runs(ch, _victim_runs(victim, marker, n))
    insert_alerts(ch, victim, [{"title": f"canary title {marker}", "alert_type": "budget_breach",
                                "run_id": f"canary-run-{marker}-0", "evidence": {"k": marker}}])


def _alerts(ch, rows: list[tuple[str, dict]]) -> None:
    data = []
    for tenant, a in rows:
        row = {"tenant_id": tenant, "detected_ts": dt(now_us()), "alert_id": uuid.uuid4().hex,
               "alert_type": "loop", "severity": "WARNING", "agent_id": "", "agent_version": "",
               "run_id": "", "title": "", "evidence": {}, **a}
        data.append([row[c] for c in ALERT_COLS])
    ch.insert("alerts", data, column_names=ALERT_COLS)


@pytest.fixture(scope="module")
def world(ch, tmp_path_factory):
    marker = uuid.uuid4().hex[:12]
    attacker, victim = "atk-" + uuid.uuid4().hex[:8], "vic-" + marker
    mine = []
    for i in range(3):
        b = RunBuilder(attacker, run_id=f"own-run-{i}-{uuid.uuid4().hex[:6]}")
        b.llm("own-step", 10, 5, 5, 0.1)
        b.end()
        mine.append(b)
    # One insert for both tenants: their rows share a part and a granule, as after a merge, so
    # the primary key cannot prune the victim's rows away and a misplaced filter would show.
    insert_runs(ch, mine + _victim_runs(victim, marker, 3))
    _alerts(ch, [(attacker, {"title": "own alert"}),
                 (victim, {"title": f"canary title {marker}", "alert_type": "budget_breach",
                           "run_id": f"canary-run-{marker}-0", "evidence": {"k": marker}})])
    keys = tmp_path_factory.mktemp("sqlkeys") / "keys.json"
    app = create_app(ApiSettings(api_keys_file=keys, bootstrap_servers=""), client=ch)
    key = add_key(keys, attacker, scopes=["read"], name="attacker")
    with TestClient(app, raise_server_exceptions=False) as api:
        w = World(api, {"Authorization": f"Bearer {key}"}, attacker, victim, marker, {})
        described = {}
        from agentstream.api.routes.sql import service

        for t in sorted(service(app.state.agentstream).runner.catalog().readable):
            cols = [r[0] for r in w.ask(f"DESCRIBE {t}").json()["rows"]]
            described[t] = next((c for c in CANARY_COLUMNS if c in cols), "tenant_id")
        w.tables = described
        yield w


def _forbidden_strings(marker: str) -> list[str]:
    return [marker, marker.encode().hex(), marker.encode().hex().upper(),
            base64.b64encode(marker.encode()).decode()[:12], marker[::-1]]


def assert_clean(w: World, r, q: str) -> None:
    body = r.json()
    for c in body.get("columns") or []:
        c["name"] = ""  # a column's name is the caller's own expression text, literals included
    text = json.dumps(body)
    for s in _forbidden_strings(w.marker):
        assert s not in text, f"{q!r} leaked {s!r}: {text[:300]}"
    assert r.status_code < 500, f"{q!r}: {r.status_code} {r.text[:300]}"


def normal(r) -> tuple:
    body = r.json()
    if "error" in body:
        return r.status_code, body["error"]["code"], body["error"]["message"]
    return r.status_code, sorted(json.dumps(x, sort_keys=True) for x in body["rows"]), \
        [c["type"] for c in body["columns"]]


def test_readable_tables_cover_the_contract(world):
    assert {"events", "runs", "alerts", "step_rollup_hourly"} <= set(world.tables)


def test_hostile_corpus_leaks_nothing_and_does_not_depend_on_victim_rows(world, ch):
    probes = corpus(world.tables, world.attacker, world.victim, world.marker)
    assert len(probes) >= 100
    before, outcomes = {}, Counter()
    for p in probes:
        r = world.ask(p.sql)
        assert_clean(world, r, p.sql)
        before[p.name] = normal(r)
        outcome = r.status_code if r.status_code == 200 else r.json()["error"]["code"]
        # The probes are built so that the caller's own rows never trip them: a value error or
        # a throw means an expression of the caller's saw another tenant's row.
        assert outcome not in ("sql_value_error", "sql_throw"), (p.sql, r.text)
        outcomes[outcome] += 1
    print(f"\nattack corpus: {len(probes)} queries, outcomes {dict(outcomes)}")
    # Most placements must really run (a suite that only sees rejections proves little).
    assert outcomes[200] >= 0.6 * len(probes), outcomes
    # More victim rows, with new canaries, in the same partitions: no answer may change.
    _plant(ch, world.victim, world.marker, 4)
    _plant(ch, "vic2-" + world.marker, world.marker, 2)
    changed = [p.name for p in probes if normal(world.ask(p.sql)) != before[p.name]]
    assert not changed, changed


@pytest.mark.parametrize("q", ESCAPES)
def test_escape_attempts_are_refused(world, q):
    r = world.ask(q)
    assert_clean(world, r, q)
    assert r.status_code == 400, f"{q!r} -> {r.status_code} {r.text[:300]}"
    err = r.json()["error"]
    assert err["code"].startswith("sql_") and err["message"], err
    # Refused before any of its expressions ran: a throw or a value error is an oracle.
    assert err["code"] not in ("sql_throw", "sql_value_error"), (q, err)


def test_the_reported_attacks_now_answer_only_for_the_caller(world):
    """The queries of issue #15, verbatim in shape."""
    r = world.ask("SELECT count() FROM runs PREWHERE toUInt8(if(tenant_id = "
                  f"'{world.attacker}', '1', concat(tenant_id,' | ',run_id))) = 1")
    assert r.status_code == 200 and r.json()["rows"] == [[3]], r.text
    for table in ("alerts", "events", "step_rollup_hourly"):
        r = world.ask(f"SELECT count() FROM {table} PREWHERE toUInt8(if(tenant_id = "
                      f"'{world.attacker}', '1', tenant_id)) = 1")
        assert r.status_code == 200, r.text
        assert_clean(world, r, table)
    hit = world.ask(f"SELECT count() FROM alerts PREWHERE throwIf(tenant_id = '{world.victim}' "
                    "AND alert_type = 'budget_breach') = 0")
    miss = world.ask("SELECT count() FROM alerts PREWHERE throwIf(tenant_id = 'nobody' "
                     "AND alert_type = 'budget_breach') = 0")
    assert hit.status_code == 200 and normal(hit) == normal(miss)


def test_error_texts_never_quote_values(world):
    # The caller's own rows: the failing value is the caller's, and still not echoed.
    r = world.ask("SELECT toUInt8(run_id) FROM events")
    assert r.status_code == 400 and r.json()["error"]["code"] == "sql_value_error"
    assert "own-run" not in r.text
    r = world.ask("SELECT intDiv(1, 0) FROM events")
    assert r.status_code == 400 and "division by zero" in r.json()["error"]["message"]
    r = world.ask("SELECT throwIf(1, 'my message') FROM events")
    assert r.json()["error"]["code"] == "sql_throw" and "my message" not in r.text
    r = world.ask("SELECT no_such_column FROM events")
    err = r.json()["error"]
    assert err["code"] == "sql_unknown_identifier" and err["details"]["names"] == ["no_such_column"]


def test_describe_and_aggregate_state_hint(world):
    r = world.ask("DESCRIBE step_rollup_hourly")
    assert r.status_code == 200, r.text
    rows = {row[0]: row for row in r.json()["rows"]}
    assert "quantilesTDigestMerge(" in rows["latency_state"][2]
    for q in ("SHOW COLUMNS FROM runs", "DESC TABLE default.alerts", "describe `events`"):
        r = world.ask(q)
        assert r.status_code == 200 and r.json()["row_count"] > 5, (q, r.text)
    r = world.ask("SELECT latency_state FROM step_rollup_hourly")
    err = r.json()["error"]
    assert r.status_code == 400 and err["code"] == "sql_aggregate_state", err
    assert "quantilesTDigestMerge(0.5, 0.9, 0.95, 0.99)(latency_state)" in err["message"]
    r = world.ask("SELECT quantilesTDigestMerge(0.5, 0.9, 0.95, 0.99)(latency_state) FROM step_rollup_hourly")
    assert r.status_code == 200, r.text


_WRAPS = [
    "{q}",
    "SELECT * FROM ({q})",
    "WITH w AS ({q}) SELECT * FROM w",
    "SELECT * FROM ({q}) UNION ALL SELECT * FROM ({q})",
    "SELECT * FROM ({q}) AS z WHERE 1 IN (SELECT 1 FROM {t} AS y WHERE {px})",
    "SELECT (SELECT count() FROM ({q})) AS n",
]
_TABLE_NAMES = ["{t}", "default.{t}", "`{t}`", '"default"."{t}"']


@settings(max_examples=60, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(placement=st.sampled_from(sorted(PLACEMENTS)), probe=st.sampled_from(sorted(PROBES)),
       table_at=st.integers(0, 50), wraps=st.lists(st.sampled_from(_WRAPS), min_size=1, max_size=2),
       spelling=st.sampled_from(_TABLE_NAMES))
def test_property_probe_placements_answer_as_for_a_tenant_that_does_not_exist(
        world, placement, probe, table_at, wraps, spelling):
    tables = sorted(world.tables)
    t = tables[table_at % len(tables)]

    def build(victim: str, canary: str) -> str:
        name = spelling.format(t=t)
        q = place(placement, probe, name, world.tables[t], world.attacker, victim, canary)
        px = PROBES[probe].format(q="y.", col=world.tables[t], a=world.attacker, v=victim, c=canary)
        for w in wraps:
            q = w.format(q=q, t=name, px=px)
        return q

    ghost = "ghost-" + uuid.uuid4().hex[:8]
    aimed, blind = world.ask(build(world.victim, world.marker)), world.ask(build(ghost, ghost))
    assert_clean(world, aimed, build(world.victim, world.marker))
    assert aimed.status_code == 200 or aimed.json()["error"]["code"] not in (
        "sql_value_error", "sql_throw"), (build(world.victim, world.marker), aimed.text)
    assert normal(aimed) == normal(blind), build(world.victim, world.marker)


# What analysts write: the rewrite must keep ordinary ClickHouse SQL working.
ANALYST_QUERIES = [
    "SELECT agent_id, count() AS runs, avg(duration_ms) FROM runs FINAL GROUP BY agent_id",
    "SELECT run_id, sum(cost_usd) AS c FROM runs GROUP BY run_id ORDER BY c DESC LIMIT 5",
    "SELECT toStartOfHour(ts) AS h, countIf(kind = 'STEP') AS steps FROM events GROUP BY h ORDER BY h",
    "SELECT quantile(0.9)(latency_ms), quantiles(0.5, 0.99)(latency_ms) FROM events WHERE kind = 'STEP'",
    "SELECT step_kind, quantilesTDigestMerge(0.5, 0.9, 0.95, 0.99)(latency_state) AS q "
    "FROM step_rollup_hourly GROUP BY step_kind",
    "SELECT uniqExact(run_id), uniq(agent_id), topK(3)(name) FROM events",
    "SELECT argMax(status, ts), any(agent_id) FROM events GROUP BY run_id",
    "SELECT * FROM events WHERE ts > now() - INTERVAL 30 DAY ORDER BY ts DESC LIMIT 3",
    "SELECT run_id, name FROM events WHERE kind = 'STEP' LIMIT 1 BY run_id",
    "SELECT e.run_id, r.cost_usd FROM events AS e INNER JOIN runs AS r ON e.run_id = r.run_id LIMIT 5",
    "SELECT e.run_id FROM events AS e LEFT JOIN alerts AS a USING (run_id) WHERE a.alert_id = ''",
    "WITH costly AS (SELECT run_id FROM runs WHERE cost_usd > 0) "
    "SELECT count() FROM events WHERE run_id IN (SELECT run_id FROM costly)",
    "SELECT run_id, row_number() OVER (PARTITION BY agent_id ORDER BY ts) AS n FROM events LIMIT 5",
    "SELECT arrayMap(x -> x * 2, [1, 2, 3]) AS a, arrayFilter(x -> x > 1, a)",
    "SELECT c FROM events ARRAY JOIN candidates AS c LIMIT 3",
    "SELECT mapKeys(attributes), attributes['k'] FROM events LIMIT 1",
    "SELECT JSONExtractString(payload, 'entrypoint') FROM events WHERE kind = 'RUN_START' LIMIT 1",
    "SELECT multiIf(cost_usd > 1, 'high', cost_usd > 0, 'low', 'free') AS band, count() FROM events GROUP BY band",
    "SELECT if(status = 'OK', 1, 0) AS ok, dateDiff('second', started_ts, ts) FROM events LIMIT 2",
    "SELECT * EXCEPT (payload, attributes) FROM events LIMIT 1",
    "SELECT toString(ts), CAST(seq AS String), seq::String FROM events LIMIT 1",
    "SELECT name ILIKE '%step%', match(name, '^own') FROM events LIMIT 1",
    "SELECT count() FROM events WHERE (agent_id, environment) IN (('agent-a', 'prod'))",
    "SELECT agent_id, count() FROM events GROUP BY agent_id WITH TOTALS",
    "SELECT 1 AS x UNION ALL SELECT 2",
    "SELECT count() FROM (SELECT run_id FROM events UNION DISTINCT SELECT run_id FROM runs)",
    "SELECT formatReadableSize(sum(length(payload))) FROM events",
    "SELECT title, severity FROM alerts ORDER BY detected_ts DESC LIMIT 5",
]


@pytest.mark.parametrize("q", ANALYST_QUERIES)
def test_ordinary_analyst_queries_still_work(world, q):
    r = world.ask(q)
    assert r.status_code == 200, f"{q!r}: {r.text[:300]}"


@pytest.mark.parametrize("q", [
    "SELECT " + "(" * 3000 + "1" + ")" * 3000,
    "SELECT " + "NOT " * 4000 + "1",
    "SELECT " + "[" * 3000 + "1" + "]" * 3000,
    "SELECT " + "f(" * 3000 + "1" + ")" * 3000,
    "SELECT 1 FROM " + "(SELECT 1 FROM " * 800 + "events" + ")" * 800,
])
def test_deep_nesting_is_a_400_not_a_500(world, q):
    """The parser and printer recurse: these exhausted the stack (RecursionError, a 500)."""
    r = world.ask(q)
    assert r.status_code == 400, r.text[:300]
    assert r.json()["error"]["code"] == "sql_too_deep"


def test_a_cursor_holding_a_lone_surrogate_is_a_400(world):
    """It decoded, then failed to encode as a query parameter: a 503 that paged operators."""
    cursor = base64.urlsafe_b64encode(json.dumps({"k": "runs", "v": [1, "\ud800"]}).encode()).decode().rstrip("=")
    for path in ("/v1/runs", "/v1/sessions", "/v1/alerts"):
        r = world.api.get(path, params={"cursor": cursor}, headers=world.auth)
        assert r.status_code == 400, (path, r.status_code, r.text[:200])
