"""What a running embedded stack tells the other commands, and how it drains before it stops.

``agentstream up`` writes ``<data dir>/stack.json`` (addresses, the processes it owns) once every
port is bound, and removes it when it has stopped. Every other command reads it, so a broker that
had to move off 9092 is still found (cli/main.py). Tansu keeps its log in memory: whatever is in
Kafka when the broker stops is gone, so the stack drains the pipeline before stopping it.
"""
from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any, Callable

STATE_FILE = "stack.json"
# Every part's settings prefix: an address found in stack.json (or given with
# --bootstrap-servers) becomes each part's default, so every command's settings object sees it.
PART_PREFIXES = ("AGENTSTREAM_", "AGENTSTREAM_PRODUCER_", "AGENTSTREAM_PROCESSORS_",
                 "AGENTSTREAM_SINK_", "AGENTSTREAM_API_", "AGENTSTREAM_GATEWAY_")


def write_state(data_dir: Path, state: dict[str, Any]) -> Path:
    path = data_dir / STATE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True))
    tmp.replace(path)  # readers never see half a file
    return path


def read_state(data_dir: Path) -> dict[str, Any] | None:
    """The running stack's state, or None when there is none (or its owner is gone)."""
    try:
        state = json.loads((data_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    pid = state.get("pid")
    if not isinstance(pid, int) or not pid_alive(pid):
        return None  # left behind by a stack that was killed: its addresses mean nothing
    return state


def remove_state(data_dir: Path) -> None:
    try:
        (data_dir / STATE_FILE).unlink()
    except FileNotFoundError:
        pass


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie (exited, not yet reaped) is not alive for our purposes
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def apply_bootstrap_defaults(bootstrap: str, prefix: str | None, *, override: bool) -> None:
    """Makes ``bootstrap`` (and the topic prefix) every part's setting: as a default for what the
    environment does not set, or over it when the user named it on the command line."""
    for p in PART_PREFIXES:
        for name, value in (("BOOTSTRAP_SERVERS", bootstrap), ("TOPIC_PREFIX", prefix)):
            if value is None:
                continue
            if override:
                os.environ[p + name] = value
            else:
                os.environ.setdefault(p + name, value)


def reachable(bootstrap: str, timeout: float = 1.0) -> bool:
    """Whether anything listens at one of the bootstrap addresses (TCP only, no Kafka chatter)."""
    for addr in bootstrap.split(","):
        host, _, port = addr.strip().rpartition(":")
        host = host.strip("[]") or "127.0.0.1"
        try:
            socket.create_connection((host, int(port)), timeout).close()
            return True
        except (OSError, ValueError):
            continue
    return False


def committed_offsets(bootstrap: str, timeout: float = 5.0) -> dict[tuple[str, str, int], int]:
    """Every consumer group's committed offset per topic partition."""
    from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 3})
    out: dict[tuple[str, str, int], int] = {}
    groups = admin.list_consumer_groups(request_timeout=timeout).result(timeout=timeout)
    for g in groups.valid:
        try:
            res = admin.list_consumer_group_offsets(
                [ConsumerGroupTopicPartitions(g.group_id)], request_timeout=timeout
            )[g.group_id].result(timeout=timeout)
        except (KafkaException, TimeoutError):  # a group that left meanwhile
            continue
        for tp in res.topic_partitions or []:
            if tp.offset >= 0:
                out[(g.group_id, tp.topic, tp.partition)] = tp.offset
    return out


def drain(bootstrap: str, *, quiet_s: float = 3.0, timeout_s: float = 45.0,
          read: Callable[[str], dict] = committed_offsets,
          say: Callable[[str], None] = lambda _: None) -> bool:
    """Waits until no consumer group's committed offset has moved for ``quiet_s`` (its consumers
    have caught up with what the producers, already stopped, wrote). End offsets are not used:
    Tansu reports them short. Returns False when ``timeout_s`` ran out first."""
    deadline = time.monotonic() + timeout_s
    last: dict | None = None
    still_since = time.monotonic()
    while time.monotonic() < deadline:
        try:
            now = read(bootstrap)
        except Exception as exc:  # noqa: BLE001 - the broker is the one thing that must be up
            say(f"cannot read consumer offsets ({exc}); not waiting for the pipeline to drain")
            return False
        if now != last:
            last, still_since = now, time.monotonic()
        elif time.monotonic() - still_since >= quiet_s:
            return True
        time.sleep(0.5)
    return False
