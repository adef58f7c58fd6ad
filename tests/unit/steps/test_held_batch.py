"""HeldBatch: what both consumers' drivers keep while the chain's head refuses a batch."""
from __future__ import annotations

import time

from agentstream.schemas.steps import HeldBatch, MessageRejected


class Head:
    """A head that refuses while ``full`` and records what it took."""

    def __init__(self) -> None:
        self.full, self.took = True, []

    def submit(self, item):
        if self.full:
            raise MessageRejected()
        self.took.append(list(item))


def test_refused_records_stay_held_and_are_offered_whole_once_the_head_has_room():
    held, head = HeldBatch(), Head()
    assert held.offer(head) and held.blocked_for() == 0.0  # nothing held: nothing to offer
    held.add([1, 2])
    assert not held.offer(head) and len(held) == 2
    time.sleep(0.01)
    first = held.blocked_for()
    held.add([3])  # read meanwhile: joins the refused batch
    assert not held.offer(head) and held.blocked_for() >= first > 0.0  # blocked since the first refusal
    head.full = False
    assert held.offer(head) and head.took == [[1, 2, 3]]
    assert len(held) == 0 and held.blocked_for() == 0.0


def test_take_hands_the_records_over_and_forgets_them():
    held, head = HeldBatch(), Head()
    held.add(["a"])
    held.offer(head)
    assert held.take() == ["a"] and not held and held.blocked_for() == 0.0
