"""Red-team s17 (SSRF): a routing rule naming http://169.254.169.254/… or http://127.0.0.1:18000/…
was accepted, and the forwarder would POST there from inside the deployment."""
from __future__ import annotations

import pytest

from agentstream.schemas.webhook_hosts import host_problem, resolved_problem


@pytest.mark.parametrize("url", [
    "http://169.254.169.254/latest/meta-data/", "http://127.0.0.1:18000/v1/ingest", "http://127.1/x", "http://2130706433/x", "http://0x7f.0.0.1/x",
    "http://localhost/x", "http://LOCALHOST./x", "http://api.localhost/x", "http://10.0.0.5/x",
    "http://192.168.1.1/x", "http://172.16.0.1/x", "http://100.64.0.1/x", "http://0.0.0.0/x",
    "http://224.0.0.1/x", "http://[::1]/x", "http://[fe80::1]/x", "http://[fd00::1]/x",
    "http://[::ffff:127.0.0.1]/x", "http://[::]/x", "https://user@127.0.0.1:443/x", "http:///x",
])
def test_internal_hosts_are_refused(url):
    assert host_problem(url) is not None


@pytest.mark.parametrize("url", ["https://hooks.slack.com/services/T/B/X", "https://8.8.8.8/x",
                                 "https://events.pagerduty.com/v2/enqueue", "http://[2001:4860::8888]/x"])
def test_public_hosts_pass(url):
    assert host_problem(url) is None


def test_an_operator_allowlist_permits_hosts_and_networks():
    assert host_problem("http://127.0.0.1:9/x", ["127.0.0.1"]) is None
    assert host_problem("http://10.1.2.3/x", ["10.0.0.0/8"]) is None
    assert host_problem("http://localhost/x", ["localhost"]) is None
    assert host_problem("http://169.254.169.254/x", ["127.0.0.1", "", "10.0.0.0/8"]) is not None


def test_a_name_resolving_to_an_internal_address_is_refused_at_send_time():
    """DNS rebinding: a public name the tenant later points at an internal address."""
    def resolve(host):
        return {"rebind.example": ["93.184.216.34", "127.0.0.1"], "ok.example": ["93.184.216.34"]}[host]
    assert "127.0.0.1" in resolved_problem("http://rebind.example/x", resolve=resolve)
    assert resolved_problem("http://ok.example/x", resolve=resolve) is None
    assert resolved_problem("http://rebind.example/x", ["127.0.0.0/8"], resolve=resolve) is None

    def fails(host):
        raise OSError("no such host")
    assert resolved_problem("http://nx.example/x", resolve=fails) is None  # the post fails, retried
