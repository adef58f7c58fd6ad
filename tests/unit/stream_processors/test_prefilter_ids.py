"""The prefilter leaves a string value out of a record's text only when it is exactly a UUID:
random UUIDs hold phone-shaped digit runs ("…-4326-8556-3577…"), which used to send ~6.6% of
clean records down the full redaction path. Everything else in the record is still judged."""
from __future__ import annotations

import random
import uuid

import pytest

from agentstream.schemas import EVENT, Codec
from agentstream.stream_processors import synthetic as syn
from agentstream.stream_processors.redaction import Redactor
from agentstream.stream_processors.event_reader import EventReader
from agentstream.stream_processors.redaction_stage import record_may_need_redaction

from .redaction_benches import engine_changes

codec = Codec()
R = Redactor(b"test-key")
READER = EventReader(codec)


def may_need_redaction(raw: bytes) -> bool:
    return record_may_need_redaction(READER, R, raw)
PHONE_SHAPED = "37d2a1d8-c0a2-4326-8556-35772a1238cb"  # "26-8556-357" is a phone number's shape


def _event(run_id: str = PHONE_SHAPED, event_id: str = PHONE_SHAPED, **over) -> dict:
    ev = syn.step("tenant-a", run_id, 2, name="search", args_digest="d")
    ev["payload"]["step_id"] = run_id[:8] + ".2"  # the SDK's step ids: run id prefix + number
    ev["event_id"] = event_id
    ev.update(over)
    return ev


def test_uuid_ids_with_phone_shaped_digits_pass_and_the_engine_agrees():
    ev = _event()
    assert not engine_changes(ev)
    assert not may_need_redaction(codec.encode(EVENT, ev))


@pytest.mark.parametrize("field,value", [
    ("tenant_id", "acme +1 415 555 0100"),        # between event_id and run_id
    ("agent_id", "jane.doe@example.com"),
    ("environment", "AKIAIOSFODNN7EXAMPLE"),
    ("event_id", "call me 415 555 0100 " + "x" * 10),  # not a UUID: judged
    ("event_id", PHONE_SHAPED + " jane.doe@example.com"),  # a UUID inside a longer id: judged
    ("run_id", "{" + PHONE_SHAPED + "} +1 415 555 0100"),  # not only a UUID: judged
    ("run_id", "run +44 20 7946 0958"),
])
def test_anything_else_in_the_leading_fields_is_still_scanned(field, value):
    ev = _event(**{field: value})
    assert engine_changes(ev) and may_need_redaction(codec.encode(EVENT, ev))


def test_random_uuid_records_never_hide_what_the_engine_would_change():
    rnd = random.Random(20261206)
    planted = ["", "jane.doe@example.com", "4111 1111 1111 1111", "+1 415 555 0100", "AKIAIOSFODNN7EXAMPLE",
               "ghp_" + "a" * 36, "123-45-6789", "plain words only"]
    clean_fired = 0
    for i in range(3000):
        value = planted[i % len(planted)]
        ev = _event(run_id=str(uuid.UUID(int=rnd.getrandbits(128))),
                    event_id=str(uuid.UUID(int=rnd.getrandbits(128))),
                    attributes={"note": value} if value else {})
        fired, changed = may_need_redaction(codec.encode(EVENT, ev)), engine_changes(ev)
        assert fired or not changed, ev
        clean_fired += fired and not value
    assert clean_fired == 0  # no clean record is sent down the full path for its ids
