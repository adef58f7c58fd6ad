"""One real pipeline per test process: the processors worker and the sink over topics of their
own, storing into the session's chDB, with the checks that what an integration emitted on
``raw`` is what was stored.

A module takes it with ``topic_prefix, stack = stack_fixtures()``: every module of a test process
shares one worker and one sink (a worker start plus two group joins cost several seconds) over
topics of their own, and isolates itself by tenant and run id, never by table. The topics are
not the session's because a sink reads from the start, and the session's topics hold every
earlier test's records (deliberately bad ones among them).
"""
from __future__ import annotations

import json
import threading
import time
import uuid
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from test_sink_support import own_topics, wait_for

EVENT_COLUMNS = ("event_id", "kind", "seq", "step_id", "step_kind", "name", "status", "provider",
                 "request_model", "input_tokens", "output_tokens", "cost_usd", "tool_name",
                 "args_digest", "failure_type", "failure_code", "decision_type", "selected",
                 "reason_code", "run_status", "outcome", "session_id", "parent_run_id", "payload",
                 "attributes")


class Stack:
    """The running worker and sink, and read-backs from the chDB tables they fill."""

    def __init__(self, worker: Any, sink: Any, client: Any, prefix: str) -> None:
        self.worker, self.sink, self.client, self.prefix = worker, sink, client, prefix

    def _rows(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        return list(self.client.query(sql, parameters=params).named_results())

    def events(self, tenant: str, run_id: str) -> list[dict[str, Any]]:
        rows = self._rows(f"SELECT {', '.join(EVENT_COLUMNS)} FROM events FINAL "
                          "WHERE tenant_id = {t:String} AND run_id = {r:String} ORDER BY seq",
                          t=tenant, r=run_id)
        for row in rows:
            row["payload"] = json.loads(row["payload"] or "{}")
        return rows

    def run(self, tenant: str, run_id: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT * FROM runs FINAL WHERE tenant_id = {t:String} AND run_id = {r:String}",
                          t=tenant, r=run_id)
        return rows[0] if rows else None

    def alerts(self, tenant: str) -> list[dict[str, Any]]:
        return self._rows("SELECT alert_id, alert_type, severity, run_id, evidence FROM alerts FINAL "
                          "WHERE tenant_id = {t:String} ORDER BY detected_ts", t=tenant)

    def wait_stored(self, tenant: str, raw_events: list[dict[str, Any]], timeout: float = 60.0
                    ) -> list[dict[str, Any]]:
        """The stored rows of the run ``raw_events`` belong to, once every one of them is in."""
        run_id = raw_events[0]["run_id"]
        want = {e["event_id"] for e in raw_events}
        wait_for(lambda: want <= {r["event_id"] for r in self.events(tenant, run_id)}, timeout,
                 f"the {len(want)} events of run {run_id} in chDB")
        return self.events(tenant, run_id)

    def wait_alerts(self, tenant: str, done: Callable[[list[dict[str, Any]]], bool],
                    timeout: float = 60.0) -> list[dict[str, Any]]:
        wait_for(lambda: done(self.alerts(tenant)), timeout, f"{tenant}'s alerts in chDB")
        return self.alerts(tenant)

    def tables_containing(self, needle: str) -> list[str]:
        """Every stored table (views aside) whose rows hold ``needle`` anywhere."""
        return self.tables_holding(needle)[needle]

    def tables_holding(self, *needles: str) -> dict[str, list[str]]:
        """For each needle, the stored tables (views aside) whose rows hold it; one scan of each
        table for all of them."""
        hits: dict[str, list[str]] = {n: [] for n in needles}
        for (name,) in self.client.query(
                "SELECT name FROM system.tables WHERE database = currentDatabase() "
                "AND engine NOT IN ('MaterializedView', 'View')").result_rows:
            raw = self.client.raw_query(f"SELECT * FROM `{name}` FORMAT TabSeparated")
            for n in needles:
                if n.encode() in raw:
                    hits[n].append(name)
        return hits

    def assert_stored_as_emitted(self, tenant: str, raw_events: list[dict[str, Any]],
                                 secrets: tuple[str, ...] = ()) -> list[dict[str, Any]]:
        """Every raw event of one run is stored with its steps, handoffs, tokens, cost and
        failures; the runs row totals them; no ``secrets`` text is in any chDB table."""
        rows = self.wait_stored(tenant, raw_events)
        by_id = {r["event_id"]: r for r in rows}
        assert len(rows) == len(raw_events), "the processors stored events the run did not emit"
        for ev in raw_events:
            row, p = by_id[ev["event_id"]], ev["payload"]
            assert (row["kind"], row["seq"]) == (ev["kind"], ev["seq"])
            if ev["kind"] == "STEP":
                assert (row["step_id"], row["step_kind"], row["name"], row["status"]) == (
                    p["step_id"], p["step_kind"], p["name"], p["status"])
                llm, tool = p.get("llm") or {}, p.get("tool") or {}
                assert (row["provider"], row["request_model"]) == (llm.get("provider", ""),
                                                                   llm.get("request_model", ""))
                assert (row["input_tokens"], row["output_tokens"]) == (
                    llm.get("input_tokens", 0), llm.get("output_tokens", 0))
                assert row["cost_usd"] == pytest.approx(llm.get("cost_usd", 0.0), abs=1e-12)
                assert (row["tool_name"], row["args_digest"]) == (
                    tool.get("tool_name", ""), tool.get("args_digest") or "")
                if p.get("handoff"):
                    assert row["payload"]["handoff"]["to_agent_id"] == p["handoff"]["to_agent_id"]
            elif ev["kind"] == "FAILURE":
                assert (row["failure_type"], row["failure_code"]) == (p["failure_type"], p["failure_code"])
            elif ev["kind"] == "DECISION":
                assert (row["decision_type"], row["selected"], row["step_id"]) == (
                    p["decision_type"], p["selected"], p.get("step_id") or "")
            elif ev["kind"] == "RUN_END":
                assert (row["run_status"], row["outcome"]) == (p["status"], p.get("outcome") or "")
        steps = [e["payload"] for e in raw_events if e["kind"] == "STEP"]
        llms = [s["llm"] for s in steps if s.get("llm")]
        run = wait_for(lambda: self.run(tenant, raw_events[0]["run_id"]), 30, "the runs row")
        assert (run["step_count"], run["llm_calls"], run["tool_calls"], run["failure_count"]) == (
            len(steps), sum(1 for s in steps if s["step_kind"] == "LLM"),
            sum(1 for s in steps if s["step_kind"] == "TOOL"),
            sum(1 for e in raw_events if e["kind"] == "FAILURE"))
        assert (run["input_tokens"], run["output_tokens"]) == (
            sum(x["input_tokens"] for x in llms), sum(x["output_tokens"] for x in llms))
        assert run["cost_usd"] == pytest.approx(sum(x["cost_usd"] for x in llms), abs=1e-12)
        end = [e["payload"] for e in raw_events if e["kind"] == "RUN_END"]
        if end:
            assert run["status"] == end[-1]["status"]
        if secrets:
            found = self.tables_holding(raw_events[0]["event_id"], *secrets)
            # the scan must see what it looks through, or finding nothing proves nothing
            assert "events" in found.pop(raw_events[0]["event_id"])
            assert not {k: v for k, v in found.items() if v}, f"stored: {found}"
        return rows


@contextmanager
def running(bootstrap: str, prefix: str, chdb_path: Path, client: Any, tmp: Path) -> Iterator[Stack]:
    """The worker and the sink over ``prefix``, ready: the sink owns its partitions."""
    from agentstream.sink import Sink, SinkSettings
    from agentstream.stream_processors.worker_process import start_worker

    tag = f"it-{uuid.uuid4().hex[:6]}"
    worker = start_worker(bootstrap, prefix, app_id=tag, data_dir=tmp / "processors",
                          log_path=tmp / "processors.log")
    sink = None
    try:
        # the sink joins its group while the worker starts: the two joins overlap
        sink = Sink(SinkSettings(bootstrap_servers=bootstrap, topic_prefix=prefix,
                                 group_id=f"{tag}-sink", clickhouse_dsn=f"chdb://{chdb_path}",
                                 batch_max_seconds=0.2, session_timeout_ms=6000), client=client).start()
        worker.wait_ready()
        deadline = time.monotonic() + 60
        while not sink.health()["assigned"] and time.monotonic() < deadline:
            time.sleep(0.1)
        yield Stack(worker, sink, client, prefix)
    finally:
        # the worker's clean shutdown takes seconds: the sink stops meanwhile
        stopping = threading.Thread(target=worker.stop)
        stopping.start()
        if sink is not None:
            sink.stop()
        stopping.join()


_SHARED: dict[str, Stack] = {}


def _shared_stack(request: pytest.FixtureRequest, bootstrap: str, chdb_path: Path, client: Any,
                  tmp_path_factory: pytest.TempPathFactory) -> Stack:
    """One stack per test process (per broker), started by the first module that asks and
    stopped at the session's end: a worker start and two group joins cost ~8 s, paid once
    rather than once per module. Every module isolates itself by tenant and run id."""
    if bootstrap not in _SHARED:
        exits = ExitStack()
        _SHARED[bootstrap] = exits.enter_context(running(
            bootstrap, own_topics(bootstrap), chdb_path, client, tmp_path_factory.mktemp("stack")))

        def stop() -> None:
            _SHARED.pop(bootstrap, None)
            exits.close()

        # registered after the session's broker fixture, so it runs before the broker stops
        request.session.addfinalizer(stop)
    stack = _SHARED[bootstrap]
    if stack.worker.proc.poll() is not None:  # say so at once, not as every later test's timeout
        pytest.fail(f"the shared processors worker exited with {stack.worker.proc.returncode}:\n"
                    + stack.worker.log_tail())
    return stack


def stack_fixtures() -> tuple[Any, Any]:
    """A module's ``topic_prefix`` (the shared stack's own topics, not the session's) and
    ``stack`` fixtures."""

    @pytest.fixture(scope="module")
    def topic_prefix(request: pytest.FixtureRequest, bootstrap: str, chdb_path: Path, chdb_client: Any,
                     tmp_path_factory: pytest.TempPathFactory) -> str:
        return _shared_stack(request, bootstrap, chdb_path, chdb_client, tmp_path_factory).prefix

    @pytest.fixture(scope="module")
    def stack(request: pytest.FixtureRequest, topic_prefix: str, bootstrap: str, chdb_path: Path,
              chdb_client: Any, tmp_path_factory: pytest.TempPathFactory) -> Stack:
        return _shared_stack(request, bootstrap, chdb_path, chdb_client, tmp_path_factory)

    return topic_prefix, stack
