"""Bounded per-run state: which runs' detector state to compact or drop. Pure bookkeeping; the
batch core (``Chain.detect``) applies what it says through its ``get_state``/``put_state``.

Why: a run's state is deleted when its RUN_END is processed, and a crashed agent never sends
one, so the run-state store (a dict per raw partition, and its compacted changelog) grew by
every crashed run, forever.

The rule, per raw partition (a run's events all take one partition):

- *idle*: a run with no event for ``idle_s`` of event time is compacted to its totals
  (``runs.residue``: steps, tokens, cost, wall time, the alerts it raised, its governance
  state; not its loop windows). Event time is the partition's watermark: the newest event time
  it has seen, never ahead of the processing clock (a host whose clock runs ahead cannot age
  every other run at once). A run is idle when the watermark has moved ``idle_s`` past where it
  was at the run's last event.
- *count*: past ``max_runs`` runs' states (full or compacted), the least recently active are
  dropped: compacted ones first, oldest first.
- A run that resumes after it was compacted goes on from its totals: its budgets and wall
  time are exact, its alerts are not raised again, an approval it got still binds; only its
  loop rules count afresh (a repeat across hours of silence is not a loop). A run that resumes
  after it was dropped starts from nothing (its new state is marked as begun mid-run): every
  rule fires on a count going over a limit, so counting from zero can miss a finding, never
  invent one; the one rule that needs a past event to be absent (an approval binding the next
  tool call) does not judge the first tool call after that (``governance.py``).

0 turns either bound off. Runs restored from the changelog (``adopt``) are taken as last active
when their partition's watermark is first known.
"""
from __future__ import annotations

import time
from collections import OrderedDict
from typing import Callable, Iterable

COMPACT, DROP = "compact", "drop"
MIN_GONE = 10_000  # dropped runs' keys remembered per partition, at least (for ``resumed``)


class IdleRuns:
    """Runs of the raw partitions this worker owns, in order of last activity."""

    def __init__(self, idle_s: float, max_runs: int, clock: Callable[[], float] = time.time) -> None:
        self.idle_us = int(idle_s * 1e6)
        self.max_runs = max_runs
        self.clock = clock
        # partition -> run state key (opaque here: ``run_keys.run_key(tenant, run)``, built by
        # Chain.detect) -> the watermark at the run's last event (full states), and the
        # runs compacted since, in the order they were (oldest activity first in both)
        self.live: dict[int, OrderedDict[bytes, int]] = {}
        self.idle: dict[int, OrderedDict[bytes, int]] = {}
        self.marks: dict[int, int] = {}
        self.adopted: dict[int, list[bytes]] = {}
        # runs whose state was dropped, for when one resumes (``resumed``): per partition, as
        # many as the count bound keeps and at least MIN_GONE (keys only)
        self.gone: dict[int, OrderedDict[bytes, None]] = {}
        self.compacted = 0  # counters, for the worker's metrics
        self.dropped = 0

    @property
    def enabled(self) -> bool:
        return self.idle_us > 0 or self.max_runs > 0

    def advance(self, partition: int, event_us: int) -> None:
        """The partition's events reached ``event_us`` (the processing clock bounds it)."""
        now = int(self.clock() * 1e6)
        mark = min(event_us, now)
        old = self.marks.get(partition)
        if old is None or mark > old:
            self.marks[partition] = mark
            if old is None and partition in self.adopted:
                self._adopt_now(partition, mark)

    def touch(self, partition: int, event_us: int, keys: list[bytes]) -> list[tuple[bytes, str]]:
        """A batch's runs of ``partition`` that had events, its newest event time among them:
        ``advance``, ``seen`` for each, then what is ``due``."""
        self.advance(partition, event_us)
        for key in keys:
            self.seen(partition, key)
        return self.due(partition)

    def seen(self, partition: int, key: bytes) -> None:
        """The run had an event in this batch (after ``advance`` for its partition)."""
        live = self.live.get(partition)
        if live is None:
            live = self.live[partition] = OrderedDict()
        idle = self.idle.get(partition)
        if idle:
            idle.pop(key, None)  # resumed: its residue was upgraded back to a full state
        live[key] = self.marks.get(partition, 0)
        live.move_to_end(key)

    def resumed(self, partition: int, key: bytes) -> bool:
        """Whether a run with no state is one whose state was dropped here (forgotten once
        asked): its new state begins mid-run."""
        gone = self.gone.get(partition)
        if not gone or key not in gone:
            return False
        del gone[key]
        return True

    def forgotten(self, partition: int, keys: Iterable[bytes]) -> None:
        """States deleted other than by the count bound (an upgrade's run-id-only keys,
        run_state_store.py): a run resuming under one begins mid-run, as after a drop."""
        keys = list(keys)
        if not keys:
            return  # ``gone`` stays empty: Chain.detect skips ``resumed`` while it is
        gone = self.gone.setdefault(partition, OrderedDict())
        for key in keys:
            gone[key] = None
        while len(gone) > max(self.max_runs, MIN_GONE):
            del gone[next(iter(gone))]

    def ended(self, partition: int, key: bytes) -> None:
        for d in (self.live.get(partition), self.idle.get(partition)):
            if d:
                d.pop(key, None)

    def due(self, partition: int) -> list[tuple[bytes, str]]:
        """Runs of ``partition`` to compact or drop now, each once; their bookkeeping moves
        as if done (the caller does it before anything else reads the partition's state)."""
        out: dict[bytes, str] = {}
        live = self.live.setdefault(partition, OrderedDict())
        idle = self.idle.setdefault(partition, OrderedDict())
        mark = self.marks.get(partition)
        if self.idle_us > 0 and mark is not None:
            horizon = mark - self.idle_us
            while live:
                key, last = next(iter(live.items()))
                if last > horizon:
                    break  # in order of activity: every later one is younger
                del live[key]
                idle[key] = last
                out[key] = COMPACT
                self.compacted += 1
        if self.max_runs > 0:
            for _ in range(len(live) + len(idle) - self.max_runs):
                d = idle if idle else live
                key = next(iter(d))
                del d[key]
                if out.get(key) == COMPACT:
                    self.compacted -= 1  # compacted and dropped at once: dropped
                out[key] = DROP
                self.dropped += 1
                gone = self.gone.setdefault(partition, OrderedDict())
                gone[key] = None
                if len(gone) > max(self.max_runs, MIN_GONE):
                    del gone[next(iter(gone))]
        return list(out.items())

    def adopt(self, partition: int, keys: Iterable[bytes]) -> None:
        """Runs restored from the changelog: taken as last active at the partition's first
        watermark (their own last events are in their states, not read here)."""
        self.adopted[partition] = list(keys)
        mark = self.marks.get(partition)
        if mark is not None:
            self._adopt_now(partition, mark)

    def _adopt_now(self, partition: int, mark: int) -> None:
        keys = self.adopted.pop(partition, [])
        live = self.live.setdefault(partition, OrderedDict())
        for key in keys:
            if key not in live:
                live[key] = mark
                live.move_to_end(key, last=False)  # older than anything seen since

    def drop(self, partitions: Iterable[int]) -> None:
        """Partitions no longer owned: their runs are another worker's now."""
        for p in partitions:
            self.live.pop(p, None)
            self.idle.pop(p, None)
            self.marks.pop(p, None)
            self.adopted.pop(p, None)
            self.gone.pop(p, None)

    def tracked(self, partition: int) -> int:
        return len(self.live.get(partition) or ()) + len(self.idle.get(partition) or ())
