"""Each event counts once in its run, however often it is delivered.

The SDK re-sends records whose ack was lost (the broker stored them, the spool replays them:
producer/transport_delivery.py), so the raw topic can hold one event twice at two offsets.
``Chain.detect``'s offset check only covers a batch read again; without this, a run's 3 legal
lookups and $0.48 of a $0.50 budget came out as a repeat loop and a budget breach, with STOPs.

What identifies an event: ``seq`` alone does not (a run resumed by another process numbers from
0 again; OTLP runs are numbered per gateway replica; durable-action audit records have their own
range), and the hot path's reader does not carry ``event_id`` (``event_reader.DETECTOR_FIELDS``).
A copy is the same bytes, so its (seq, ts_us) is the same, while two distinct events sharing a
seq differ in event time (µs). The pair mixed into 32 bits is the event's tag (integer arithmetic:
this runs for every event, and a crc32 of the formatted pair cost twice as much).

The state kept in the run (``state[KEY]``, persisted with it through the changelog) is compact
and bounded: the highest seq applied, the tags of the last ``WINDOW`` events applied, and the
latest ``ts_us`` of an event with a step id applied.

- an event with a seq above the highest is new: the SDK numbers a run's events in order, so a
  first delivery normally takes this path (one multiply, one append);
- an event that names its step (payload ``step_id``: the SDK's step ids, OTLP's span ids) is
  known by (kind, step_id, ts_us) instead, checked against the window whatever its seq. Why: the
  gateway numbers every OTLP export it accepts afresh, so an exporter retrying a batch whose 200
  was lost sends the same spans under new, higher seqs, and they were counted twice (a budget
  breach and a STOP, end to end). A span's id and times are the exporter's own, the same in
  every attempt. The list is scanned only for such an event no later than the latest one
  applied (``ts_us``; a copy's time is its original's, so a later event is no copy): a run's
  events arrive in time order, so most take the fast path here too.
- any other event is a copy iff its tag is among the last ``WINDOW`` (a list scan). A copy that
  arrives more than ``WINDOW`` of its run's events after its original counts again (as every
  copy did before); a distinct event whose tag collides on this path (about 3e-8 per event)
  would be taken for a copy.
"""
from __future__ import annotations

from typing import Any, Mapping
from zlib import crc32

KEY = "dd"
WINDOW = 128


def first_delivery(state: dict[str, Any], event: Mapping[str, Any]) -> bool:
    """True (and the event remembered) the first time ``event`` reaches this run's state;
    False for another delivery of an event already applied."""
    seq, ts = event.get("seq"), event.get("ts_us")
    if type(seq) is not int or type(ts) is not int:
        return True  # nothing to know it by: counted, as always
    d = state.get(KEY)
    if d is None:
        d = state[KEY] = [-1, [], -1]
    elif len(d) == 2:  # written before step ids were known: no time seen yet
        d.append(-1)
    tags = d[1]
    p = event.get("payload")
    sid = p.get("step_id") if p else None
    if sid and sid.__class__ is str:
        # crc32, not hash(): the tag is persisted and read by other processes
        tag = (ts * 0x9E3779B1 + crc32(f"{event.get('kind')}/{sid}".encode())) & 0xFFFFFFFF
        if ts > d[2]:  # later than any event applied: no copy of it was (its time is its copy's)
            d[2] = ts
        elif tag in tags:
            return False
        if seq > d[0]:
            d[0] = seq
    else:
        # an odd multiplier is invertible mod 2^32: two events of one seq share a tag only when
        # their times are 2^32 µs (71 min) apart to the µs; otherwise ~1 in 2^32 per pair
        tag = (ts * 0x9E3779B1 + seq) & 0xFFFFFFFF
        if seq > d[0]:
            d[0] = seq
        elif tag in tags:
            return False
    tags.append(tag)
    if len(tags) > WINDOW:
        del tags[0]
    return True
