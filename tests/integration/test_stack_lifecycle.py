"""``agentstream up`` as an operator runs it: SIGTERM (docker stop, systemd, Kubernetes) and
SIGINT while backgrounded stop every child in order; every event the gateway acknowledged is
queryable after a restart; the addresses are in the data dir for the other commands; a port
the user names is used or ``up`` fails. The stack owns its chDB, so it runs as a subprocess
with its own data dir, broker and ports."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from agentstream.cli.embedded_broker import free_port
from agentstream.cli.stack_state import pid_alive

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-m", "agentstream.cli.main"]


class Up:
    def __init__(self, data_dir: Path, cwd: Path, ignore_sigint: bool = False, extra=()):
        self.data_dir = data_dir
        self.ports = {k: free_port() for k in ("api", "broker", "gateway", "processors")}
        args = CLI + ["up", "--data-dir", str(data_dir)] + [
            a for k, p in self.ports.items() for a in (f"--{k}-port", str(p))] + list(extra)
        # A shell starts a background job with SIGINT ignored; the stack must still stop on it.
        pre = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if ignore_sigint else None
        self.out = open(cwd / f"up-{uuid.uuid4().hex[:6]}.log", "w+")
        self.proc = subprocess.Popen(args, stdout=self.out, stderr=subprocess.STDOUT, cwd=cwd,
                                     start_new_session=True, preexec_fn=pre)

    def log(self) -> str:
        self.out.flush()
        return Path(self.out.name).read_text()

    def wait_ready(self, timeout: float = 150.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail("up exited early:\n" + self.log())
            if "broker=up  processors=ready  sink+api=ready  gateway=ready" in self.log():
                return json.loads((self.data_dir / "stack.json").read_text())
            time.sleep(0.5)
        pytest.fail("up did not become ready:\n" + self.log())

    def signal_and_wait(self, sig: int, timeout: float = 180.0) -> int:
        """Hang guard only (the stop is bounded by its own timeouts, well inside this). SIGINT
        goes to the whole process group, as a terminal's Ctrl-C or `kill -INT %1` sends it."""
        if sig == signal.SIGINT:
            os.killpg(self.proc.pid, sig)
        else:
            os.kill(self.proc.pid, sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            pytest.fail(f"up did not exit after {signal.Signals(sig).name}:\n" + self.log())

    def kill(self) -> None:
        """After a failure: the stack's children run in their own sessions, so each is killed
        by the pid stack.json gives (a failed test must not leave a stack running)."""
        try:
            children = json.loads((self.data_dir / "stack.json").read_text())["children"]
        except (OSError, ValueError, KeyError):
            children = {}
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        for pid in children.values():
            if pid and pid_alive(pid):
                try:
                    os.killpg(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)


def run_events(run_id: str, n_steps: int) -> list[dict]:
    t = time.time_ns() // 1000
    base = {"agent_id": "lifecycle-agent", "agent_version": "1.0", "environment": "test",
            "run_id": run_id}
    evs = [{**base, "seq": 0, "ts_us": t, "kind": "RUN_START", "payload": {"entrypoint": "main"}}]
    for i in range(1, n_steps + 1):
        evs.append({**base, "seq": i, "ts_us": t + i * 1000, "kind": "STEP", "payload": {
            "step_id": f"{run_id}-s{i}", "step_kind": "TOOL", "name": "lookup", "status": "OK",
            "started_us": t + i * 1000, "latency_ms": 0.5, "tool": {"tool_name": "lookup"}}})
    evs.append({**base, "seq": n_steps + 1, "ts_us": t + (n_steps + 1) * 1000, "kind": "RUN_END",
                "payload": {"status": "SUCCESS", "outcome": "completed", "started_us": t,
                            "duration_ms": (n_steps + 1) / 1000, "step_count": n_steps}})
    return evs


def stored_event_ids(api_url: str, key: str, run_ids: list[str]) -> set[str]:
    in_list = ", ".join(f"'{r}'" for r in run_ids)
    r = httpx.post(api_url + "/v1/sql", headers={"Authorization": f"Bearer {key}"}, timeout=30,
                   json={"sql": f"SELECT DISTINCT event_id FROM events WHERE run_id IN ({in_list})",
                         "limit": 100_000})
    assert r.status_code == 200, r.text
    body = r.json()
    cols = body["columns"]
    idx = cols.index("event_id") if isinstance(cols[0], str) else [c["name"] for c in cols].index("event_id")
    return {row[idx] for row in body["rows"]}


def test_sigterm_stops_every_child_in_order_and_loses_no_acknowledged_event(tmp_path):
    data = tmp_path / "data"
    up = Up(data, tmp_path)
    try:
        state = up.wait_ready()
        # the addresses are where the other commands look for them
        assert state["bootstrap_servers"] == f"127.0.0.1:{up.ports['broker']}"
        assert state["api_url"].endswith(f":{up.ports['api']}")
        assert state["gateway_url"].endswith(f":{up.ports['gateway']}")
        key = json.loads((data / "demo_keys.json").read_text())["acme"]
        acked: set[str] = set()
        run_ids = [f"life-{uuid.uuid4().hex[:8]}" for _ in range(12)]
        with httpx.Client(base_url=state["gateway_url"], timeout=30,
                          headers={"Authorization": f"Bearer {key}"}) as gw:
            for rid in run_ids:
                r = gw.post("/v1/ingest", json={"events": run_events(rid, 40)})
                assert r.status_code == 200, r.text
                acked.update(r.json()["event_ids"])
        # straight away: the events are acknowledged by Kafka, not yet stored
        rc = up.signal_and_wait(signal.SIGTERM)
        log = up.log()
        assert rc == 0, log
        order = [log.index(f"stopping {name} ...") for name in ("gateway", "processors", "sink+api")]
        assert order == sorted(order), log
        assert "killing it" not in log and "did not drain" not in log, log  # clean, not forced
        survivors = {name: pid for name, pid in state["children"].items() if pid and pid_alive(pid)}
        assert survivors == {}, (survivors, log)
        assert not (data / "stack.json").exists()
    finally:
        up.kill()

    # the restart runs as a shell's background job (SIGINT ignored) and is stopped with SIGINT
    again = Up(data, tmp_path, ignore_sigint=True)
    try:
        state = again.wait_ready()
        stored = stored_event_ids(state["api_url"], key, run_ids)
        assert acked - stored == set(), f"{len(acked - stored)} of {len(acked)} acknowledged events lost"
        assert again.signal_and_wait(signal.SIGINT) == 0, again.log()
        assert {n: p for n, p in state["children"].items() if p and pid_alive(p)} == {}
        assert "stopped." in again.log() and "killing it" not in again.log(), again.log()
        # the broker outlived the processors: they stopped cleanly, not by their deadline
        assert "clean shutdown did not finish" not in (data / "logs" / "processors.log").read_text()
    finally:
        again.kill()


def test_a_named_port_that_is_taken_fails_up_with_a_clear_message(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = subprocess.run(CLI + ["up", "--data-dir", str(tmp_path / "d"), "--api-port", str(port),
                                  "--broker-port", str(free_port())],
                           capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"api port {port} is in use" in r.stderr and "--api-port" in r.stderr
    assert not (tmp_path / "d" / "stack.json").exists()
    assert "agentstream is running" not in r.stdout


def test_a_client_command_without_a_broker_says_so_in_one_line(tmp_path):
    r = subprocess.run(CLI + ["alerts", "tail", "--bootstrap-servers", f"127.0.0.1:{free_port()}"],
                       capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "no Kafka broker listens at" in lines[0], r.stderr
    assert "Connection refused" not in r.stderr and r.stdout == ""


def test_processors_exit_on_sigterm_when_their_broker_is_gone(tmp_path):
    from agentstream.cli.embedded_broker import EmbeddedBroker
    from agentstream.schemas.topics import create_topics

    broker = EmbeddedBroker(log_path=str(tmp_path / "broker.log")).start()
    port = free_port()
    env = dict(os.environ, AGENTSTREAM_PROCESSORS_BOOTSTRAP_SERVERS=broker.bootstrap_servers,
               AGENTSTREAM_PROCESSORS_TOPIC_PREFIX="gone.", AGENTSTREAM_PROCESSORS_WEB_PORT=str(port),
               AGENTSTREAM_PROCESSORS_DATA_DIR=str(tmp_path / "p"),
               AGENTSTREAM_PROCESSORS_BROKER_SESSION_TIMEOUT="6",
               AGENTSTREAM_PROCESSORS_SHUTDOWN_GRACE_S="3")
    proc = None
    try:
        create_topics(broker.bootstrap_servers, prefix="gone.", partitions=2)
        proc = subprocess.Popen(CLI + ["processors", "run"], env=env, cwd=tmp_path,
                                stdout=open(tmp_path / "p.log", "w"), stderr=subprocess.STDOUT,
                                start_new_session=True)
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, \
                (tmp_path / "p.log").read_text()[-3000:]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        broker.stop()
        os.kill(proc.pid, signal.SIGTERM)
        try:
            rc = proc.wait(60)  # hang guard; the grace is 3 s
        except subprocess.TimeoutExpired:
            pytest.fail("processors ignored SIGTERM with the broker gone")
        assert rc != 0  # it says it left without the final commit
        assert "clean shutdown did not finish in 3 s" in (tmp_path / "p.log").read_text()
    finally:
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        broker.stop()


def _holds_connection_to(pid: int, port: int) -> bool:
    """``pid`` has an established TCP connection to ``port`` (Linux: its socket fds against
    /proc/net/tcp{,6})."""
    fd_dir = f"/proc/{pid}/fd"
    inodes = set()
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(f"{fd_dir}/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                cols = line.split()
                if cols[3] == "01" and int(cols[2].rsplit(":", 1)[1], 16) == port and cols[9] in inodes:
                    return True
    return False


def test_a_client_command_whose_broker_goes_away_does_not_flood_the_terminal(tmp_path):
    from agentstream.cli.embedded_broker import EmbeddedBroker
    from agentstream.schemas.topics import create_topics

    broker = EmbeddedBroker(log_path=str(tmp_path / "broker.log")).start()
    proc = None
    try:
        create_topics(broker.bootstrap_servers, prefix="flood.", partitions=1)
        env = {**os.environ, "AGENTSTREAM_TOPIC_PREFIX": "flood."}
        env.pop("AGENTSTREAM_PROCESSORS_TOPIC_PREFIX", None)
        proc = subprocess.Popen(CLI + ["alerts", "tail", "--bootstrap-servers", broker.bootstrap_servers],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path, env=env,
                                start_new_session=True)
        # connected and polling: its start (imports, the broker check) took over 4 s once under
        # the suite's load, and with the broker gone by then it said so and exited
        port = int(broker.bootstrap_servers.rsplit(":", 1)[1])
        deadline = time.monotonic() + 60
        while not _holds_connection_to(proc.pid, port):
            assert proc.poll() is None and time.monotonic() < deadline, "alerts tail never connected"
            time.sleep(0.2)
        time.sleep(1)
        broker.stop()
        time.sleep(6)  # librdkafka retries several times a second meanwhile
        assert proc.poll() is None
        os.kill(proc.pid, signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail("alerts tail did not stop on SIGINT")
        lines = [ln for ln in err.decode(errors="replace").splitlines() if ln.strip()]
        refused = [ln for ln in lines if "Connection refused" in ln]
        assert len(refused) <= 2, lines  # shown once (per client), not every retry
        assert len(lines) <= 12, lines
    finally:
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        broker.stop()
