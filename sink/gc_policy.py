"""The sink process's garbage-collector policy, applied by its entry points (not by ``Sink``).

Every Kafka record the sink holds is a confluent-kafka ``Message``, which the cyclic GC tracks.
With CPython's default thresholds (700, 10, 10) a sink reading ~100k records a second runs a
young collection every few milliseconds; the buffered records (alive for a flush, a second or
two) survive them, are promoted, and trigger full collections that walk every buffered record
again, all while holding the GIL the insert threads need. Measured (400k records, 4 partitions,
2 cores): ~580 collections and 0.7-1.3 s of GC inside a ~4 s run with the defaults; 8 and
0.14-0.29 s with a 50k first threshold and the start-up heap frozen.

Process-wide, so it is the entry point's choice: ``agentstream sink run`` and the embedded
stack (sink and API in one process) apply it; a program that embeds ``Sink`` keeps its own.
"""
from __future__ import annotations

import gc


def apply_gc_policy(gen0_threshold: int) -> bool:
    """Raises the first GC threshold to ``gen0_threshold`` allocations (the older generations'
    keep theirs) and freezes what start-up allocated (modules, settings, schemas) so full
    collections skip it. 0 leaves the interpreter's policy. Returns whether it changed it."""
    if gen0_threshold <= 0:
        return False
    _, gen1, gen2 = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(gen0_threshold, gen1, gen2)
    return True
