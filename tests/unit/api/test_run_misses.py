"""The embedded API's cache of runs a tenant does not have (api/store/run_misses.py).

The attack is a stale 404: a run that is stored, answered as missing. ``test_no_interleaving_
answers_a_visible_run_missing`` drives the cache and a model of ClickHouse (rows visible once an
insert commits, at some point between its begin and its end) through random interleavings of
concurrent inserts and reads, and checks every answer the cache gives against the model."""
from __future__ import annotations

import random

from agentstream.api.store.run_misses import RunMisses
from agentstream.schemas.run_keys import run_key, split_run_keys


def test_a_key_is_the_tenant_and_the_run_and_never_two_others():
    assert run_key("t", "r") == b"t\xffr"
    pairs = [("ab", "c"), ("a", "bc"), ("a\xff", "c"), ("a", "\xffc"), ("ÿ", "r"), ("t", "ÿ"), ("", "tr"), ("t\x00", "r")]
    assert len({run_key(t, r) for t, r in pairs}) == len(pairs)
    blob = b"".join(run_key(t, r) + b"\xfe" for t, r in pairs + pairs[:3])
    assert split_run_keys(blob) == {run_key(t, r) for t, r in pairs}
    assert run_key("t", "\ud800")  # a lone surrogate from a URL: a key, matching no stored run


def test_a_remembered_miss_lasts_until_an_insert_carries_its_run():
    m = RunMisses()
    a, b = m.key("t", "a"), m.key("t", "b")
    assert m.remember(a, m.snapshot()) and m.remember(b, m.snapshot())
    assert m.missing(a) and m.missing(b)
    m.end(m.begin({m.key("t", "c"), m.key("u", "a")}))  # other runs, and run a of another tenant
    assert m.missing(a) and m.missing(b)
    token = m.begin({a})
    assert not m.missing(a) and m.missing(b)
    m.end(token)
    m.end(m.begin(None))  # an insert whose runs are not known forgets every miss
    assert not m.missing(b) and len(m) == 0
    assert m.hits == 5 and m.remembered == 2


def test_a_miss_is_not_remembered_across_an_insert_or_beside_one_carrying_its_run():
    m = RunMisses()
    a, b = m.key("t", "a"), m.key("t", "b")
    snap = m.snapshot()
    token = m.begin({b})
    assert not m.remember(a, snap)  # an insert began while the query ran
    assert m.remember(a, m.snapshot())  # one of other runs is in flight: no matter
    assert not m.remember(b, m.snapshot())  # its run is in flight: its rows may be visible any moment
    snap = m.snapshot()
    m.end(token)
    assert not m.remember(b, snap)  # an insert ended while the query ran
    token = m.begin(None)
    assert not m.remember(a, m.snapshot())  # an insert of any run is in flight
    m.end(token)
    assert m.remember(b, m.snapshot())


def test_the_oldest_miss_goes_first_past_the_capacity():
    m = RunMisses(capacity=3)
    keys = [m.key("t", str(i)) for i in range(5)]
    for k in keys:
        m.remember(k, m.snapshot())
    assert len(m) == 3
    assert [m.missing(k) for k in keys] == [False, False, True, True, True]


def test_no_interleaving_answers_a_visible_run_missing():
    answers = {"cache": 0, "query": 0, "found": 0}
    for seed in range(60):
        interleave(random.Random(seed), answers)
    assert min(answers.values()) > 100, answers  # every path was taken, many times


def interleave(rng: random.Random, answers: dict[str, int]) -> None:
    """Inserts (begin → commit → end) and reads (cache check → snapshot → query → remember),
    several of each in flight, stepped in a random order. The model's ``visible`` is what a query
    sees; the cache may answer 'missing' only for a run not visible at that moment."""
    m = RunMisses(capacity=rng.choice([2, 5, 1000]))
    runs = [m.key(t, r) for t in ("t1", "t2") for r in ("a", "b", "c", "d")]
    visible: set[bytes] = set()
    actors: list = []  # each a generator, stepped one operation at a time

    def insert():
        carried = set(rng.sample(runs, rng.randint(1, 3)))
        token = m.begin(None if rng.random() < 0.1 else carried)
        yield
        while rng.random() < 0.5:
            yield  # the insert runs on; its rows are not visible yet
        visible.update(carried)  # the part commits (a view's part, mid-insert)
        while rng.random() < 0.5:
            yield
        m.end(token)

    def read():
        key = rng.choice(runs)
        if m.missing(key):
            assert key not in visible, "a stored run answered missing from the cache"
            answers["cache"] += 1
            return
        snap = m.snapshot()
        yield
        seen = key in visible  # the query's snapshot of the table
        yield
        if seen:
            answers["found"] += 1
        else:
            m.remember(key, snap)
            answers["query"] += 1

    for _ in range(3000):
        if len(actors) < 6 and rng.random() < 0.4:
            actors.append(iter((insert if rng.random() < 0.15 else read)()))
        if actors:
            actor = rng.choice(actors)
            if next(actor, StopIteration) is StopIteration:
                actors.remove(actor)
