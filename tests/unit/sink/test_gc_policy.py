"""The sink process's GC policy: raises the first threshold, freezes start-up objects, or leaves both."""
from __future__ import annotations

import gc

import pytest

from agentstream.sink.gc_policy import apply_gc_policy
from agentstream.sink.settings import SinkSettings


@pytest.fixture
def restore_gc():
    before = gc.get_threshold()
    yield before
    gc.unfreeze()
    gc.set_threshold(*before)


def test_the_policy_raises_only_the_first_threshold_and_freezes_the_start_up_heap(restore_gc):
    gc.unfreeze()
    start_up = [object() for _ in range(10)], {"a": [1]}  # noqa: F841 - alive across the freeze
    assert apply_gc_policy(12_345) is True
    assert gc.get_threshold() == (12_345, restore_gc[1], restore_gc[2])
    assert gc.get_freeze_count() > 0


def test_zero_leaves_the_interpreter_policy_alone(restore_gc):
    gc.unfreeze()
    assert apply_gc_policy(0) is False
    assert gc.get_threshold() == restore_gc and gc.get_freeze_count() == 0


def test_the_default_comes_from_the_settings_and_the_environment(monkeypatch):
    assert SinkSettings().gc_gen0_threshold == 50_000
    monkeypatch.setenv("AGENTSTREAM_SINK_GC_GEN0_THRESHOLD", "0")
    assert SinkSettings().gc_gen0_threshold == 0
