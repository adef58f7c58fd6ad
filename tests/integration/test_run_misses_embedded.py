"""The embedded process's cache of runs a tenant does not have (api/store/run_misses.py), with
the real sink inserting into chDB beside the API as ``agentstream serve-embedded`` wires them.

The attack is a stale 404: while clients poll runs before they exist (filling the cache), the
sink stores them, on the direct path and, for a container the C refuses, in Python; from the
moment a run's rows are in ``run_events``, every GET of it must find it."""
from __future__ import annotations

import threading
import time
import uuid

import pytest
from fastapi.testclient import TestClient

from agentstream.api.app import create_app
from agentstream.api.auth import add_key
from agentstream.api.settings import ApiSettings
from agentstream.api.store.run_misses import RunMisses
from agentstream.schemas import EVENT, Codec, topic_name
from agentstream.sink import Sink, SinkSettings, apply_migrations

from test_sink_support import own_topics, produce, run_events

pytestmark = pytest.mark.integration


def stored(client, tenant: str, run_id: str) -> bool:
    return client.query("SELECT count() FROM run_events WHERE tenant_id = {t:String} AND run_id = {r:String}",
                        parameters={"t": tenant, "r": run_id}).result_rows[0][0] > 0


def test_a_run_polled_before_it_is_stored_is_found_once_it_is(bootstrap, chdb_client, unique, tmp_path):
    apply_migrations(chdb_client)
    prefix = own_topics(bootstrap)
    tenant, other = f"miss-{unique}", f"miss-other-{unique}"
    keys_file = tmp_path / "api_keys.json"
    key, other_key = add_key(keys_file, tenant, scopes=("read",)), add_key(keys_file, other, scopes=("read",))
    misses = RunMisses()
    sink = Sink(SinkSettings(bootstrap_servers=bootstrap, topic_prefix=prefix, group_id=f"sink-{unique}",
                             session_timeout_ms=6000, batch_max_rows=200, batch_max_seconds=0.2),
                client=chdb_client, watch=misses)
    app = create_app(ApiSettings(api_keys_file=str(keys_file)), client=chdb_client, run_misses=misses)
    runs = [f"run-{unique}-{i}-é" for i in range(24)]
    codec = Codec()
    with TestClient(app) as api:
        auth, other_auth = {"Authorization": f"Bearer {key}"}, {"Authorization": f"Bearer {other_key}"}
        # before anything is stored: 404s, the second of each from the cache
        for run in runs:
            assert api.get(f"/v1/runs/{run}", headers=auth).status_code == 404
        hits = misses.hits
        for run in runs:
            assert api.get(f"/v1/runs/{run}", headers=auth).status_code == 404
        assert misses.hits == hits + len(runs)
        sink.start()
        stop = threading.Event()
        stale: list[str] = []
        polled = [0]

        def poll() -> None:  # a client polling every run, filling the cache while the sink inserts
            with TestClient(app) as poller:
                while not stop.is_set():
                    for run in runs:
                        poller.get(f"/v1/runs/{run}", headers=auth)
                        polled[0] += 1

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        try:
            for i, run in enumerate(runs):  # a run at a time, so inserts and polls interleave
                records = [(run.encode(), codec.encode(EVENT, e)) for e in run_events(tenant, run, n_steps=2)]
                if i % 6 == 5:  # a record the C refuses: the container goes to Python, the record to the DLQ
                    bad = dict(run_events(tenant, run, n_steps=1)[1], event_id=str(uuid.uuid4()), seq=2**40)
                    records.append((run.encode(), codec.encode(EVENT, bad)))
                produce(bootstrap, topic_name("events", prefix), records)
                time.sleep(0.05)
            pending = set(runs)
            deadline = time.monotonic() + 60
            while pending and time.monotonic() < deadline:
                for run in sorted(pending):
                    if stored(chdb_client, tenant, run):  # in run_events: every GET from now finds it
                        for _ in range(3):
                            r = api.get(f"/v1/runs/{run}", headers=auth)
                            if r.status_code != 200:
                                stale.append(f"{run}: {r.status_code}")
                        pending.discard(run)
                time.sleep(0.02)
            assert not pending, f"not stored within 60 s: {sorted(pending)}"
        finally:
            stop.set()
            poller.join(10)
            sink.stop()
        assert stale == []
        assert misses.hits > hits + len(runs) and polled[0] > len(runs)  # the poller was answered from it too
        # the cache is the tenant's: another tenant's GET of the same ids is a 404 of its own
        assert all(api.get(f"/v1/runs/{run}", headers=other_auth).status_code == 404 for run in runs[:3])
        assert api.get(f"/v1/runs/{runs[0]}", headers=auth).json()["run"]["status"] == "SUCCESS"
        metrics = api.get("/metrics").text
        assert f"agentstream_api_run_misses_answered_total {float(misses.hits)}" in metrics
