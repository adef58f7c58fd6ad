"""The seeded redaction generators of bench/ as modules, for the tests that hold them to thresholds."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from agentstream.schemas import Codec
from agentstream.stream_processors.event_reader import EventReader
from agentstream.stream_processors.redaction import DEFAULT_ACTIONS, Redactor
from agentstream.stream_processors.redaction_stage import record_may_need_redaction

BENCH = Path(__file__).parents[3] / "bench"


def load_bench(name: str) -> ModuleType:
    """``bench/<name>.py`` imported once (redaction_corpus imports its sibling redaction_values)."""
    if name in sys.modules:
        return sys.modules[name]
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


REDACTOR = Redactor(b"test-key")
_READER = EventReader(Codec())


def engine_changes(event: dict, redactor: Redactor = REDACTOR) -> bool:
    """Whether the engine would change or quarantine the event: what the prefilter must let
    through to it."""
    try:
        out = redactor.redact_event(event, DEFAULT_ACTIONS, "p1")
    except Exception:  # noqa: BLE001 - a quarantine is a change the prefilter must let through
        return True
    return bool(out["redaction"]["rule_counts"]) or {k: v for k, v in out.items() if k != "redaction"} != {
        k: v for k, v in event.items() if k != "redaction"}


def record_fires(raw: bytes) -> bool:
    """The hot path's own prefilter question for a raw record: its text, judged as the engine
    judges each string (redaction_stage.record_may_need_redaction)."""
    return record_may_need_redaction(_READER, REDACTOR, raw)


def redact(text: str) -> str:
    """The text as the processors would write it under the default policy (mask everything)."""
    return REDACTOR.redact_text(text, DEFAULT_ACTIONS, {})


def assert_recall(rep: dict, section: str, overall: float, strict: float, each: float) -> None:
    """Overall lenient/strict recall and every row of ``rep[section]`` at least the given floors."""
    total = rep[section]["overall"]
    assert total["lenient"] >= overall and total["strict"] >= strict, (total, rep["misses"])
    low = {k: v for k, v in rep[section].items() if v["lenient"] < each}
    assert not low, (low, rep["misses"])
