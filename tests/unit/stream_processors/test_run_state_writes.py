"""What ``Chain.process`` writes to the run-state store: each touched run once per batch; a run
still open its state; a run that ended and had a stored state a tombstone; a run that began and
ended within one batch, with nothing stored, nothing at all (there is nothing to delete, and a
tombstone per such run was ~11 % of the worker's outputs). The store ends the same either way."""
from __future__ import annotations

from typing import Any

from agentstream.schemas import EVENT, Codec
from agentstream.schemas.run_keys import run_key
from agentstream.stream_processors import synthetic as syn
from agentstream.stream_processors.chain import Chain
from agentstream.stream_processors.policies import PolicyBook
from agentstream.stream_processors.records import InRecord
from agentstream.stream_processors.redaction import Redactor
from agentstream.stream_processors.settings import ProcessorsSettings

codec = Codec()
LONG, SHORT = run_key("t", "long"), run_key("t", "short")  # state keys: (tenant, run)


class Store:
    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self.writes: list[tuple[bytes, bytes | None]] = []

    def get(self, partition: int, key: bytes) -> bytes | None:
        return self.data.get(key)

    def put(self, partition: int, key: bytes, value: bytes | None) -> None:
        self.writes.append((key, value))
        if value is None:
            self.data.pop(key, None)
        else:
            self.data[key] = value


def records(events: list[dict[str, Any]], start: int) -> list[InRecord]:
    return [InRecord("u.raw", 0, start + i, e["run_id"].encode(), codec.encode(EVENT, e))
            for i, e in enumerate(events)]


def test_state_writes_per_batch_skip_only_the_tombstone_of_a_run_never_stored():
    chain = Chain(ProcessorsSettings(topic_prefix="u."), codec, Redactor(b"k"), PolicyBook(), "u.fleet")
    store = Store()
    first = [syn.run_start("t", "long"), syn.step("t", "long", 1),
             syn.run_start("t", "short"), syn.step("t", "short", 1), syn.run_end("t", "short", 1)]
    chain.process(records(first, 0), store.get, store.put)
    assert [k for k, v in store.writes] == [LONG] and store.writes[0][1]  # open: its state
    assert SHORT not in store.data  # begun and ended here: nothing written, nothing stored

    store.writes.clear()
    second = [syn.step("t", "long", 2), syn.run_end("t", "long", 2),
              syn.run_start("t", "late"), syn.run_end("t", "late", 0)]
    chain.process(records(second, len(first)), store.get, store.put)
    assert store.writes == [(LONG, None)]  # stored before, ended now: deleted
    assert store.data == {}

    # A run redelivered after its state was stored (a crash before the commit) is deleted too.
    store.writes.clear()
    chain.process(records(first[:2], 0), store.get, store.put)
    chain.process(records([syn.run_end("t", "long", 1)], 9), store.get, store.put)
    assert store.writes[-1] == (LONG, None) and store.data == {}
