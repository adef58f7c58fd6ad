"""PolicyCopy, what every worker keeps of the policies topic: the latest record per tenant wins, a
tombstone deletes, alerting records (NUL-led keys) and undecodable policies are skipped without
touching the tenant's current policy. PolicyFollower.get waits for the first full read, bounded."""
from __future__ import annotations

import threading
import time

from agentstream.schemas import POLICY, Codec
from agentstream.schemas.alerting import is_alerting_key, make_key
from agentstream.stream_processors.policy_follower import PolicyCopy, PolicyFollower

codec = Codec()


def _policy(tenant: str, version: str) -> bytes:
    return codec.encode(POLICY, {"tenant_id": tenant, "version": version})


def test_latest_wins_tombstones_delete_and_bad_records_are_skipped():
    copy = PolicyCopy(lambda b: codec.decode_as(POLICY, b))
    alerting = make_key("acme", "routing")
    assert is_alerting_key(alerting)
    copy.apply(b"acme", _policy("acme", "v1"))
    copy.apply(b"acme", _policy("acme", "v2"))
    copy.apply(b"globex", _policy("globex", "g1"))
    copy.apply(alerting, b'{"rules": []}')
    copy.apply(b"acme", b"\x00\x00\x00\x00\x01garbage")  # undecodable: acme keeps v2
    copy.apply(None, _policy("x", "x"))
    copy.apply(b"globex", None)
    assert codec.decode_as(POLICY, copy.policies[b"acme"])["version"] == "v2"
    assert set(copy.policies) == {b"acme"}
    assert copy.undecodable == 1 and copy.applied == 4


def test_get_waits_for_the_first_read_and_never_forever():
    copy = PolicyCopy(lambda b: b)
    copy.policies[b"acme"] = b"p"
    f = PolicyFollower("127.0.0.1:1", "policies", copy, load_timeout_s=0.2)
    t0 = time.monotonic()
    assert f.get("acme") == b"p" and time.monotonic() - t0 >= 0.2  # bounded wait, then what was read
    g = PolicyFollower("127.0.0.1:1", "policies", copy, load_timeout_s=30)
    threading.Timer(0.1, g.loaded.set).start()
    assert g.get("acme") == b"p" and g.get("nobody") is None
