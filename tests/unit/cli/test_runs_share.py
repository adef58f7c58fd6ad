"""`agentstream runs share`: the file's safety by construction, attacked with stored values that
try to end the embedded script, open another, or break the page's lookups."""
from __future__ import annotations

import json
import random
import re

import pytest

from agentstream.cli.runs_share import (
    CSP, SCRIPTS, encode_uri_component, form_urlencode, requests, script_json, share_html,
)

HOSTILE = ["</script><script>window.pwned=1</script>", "</SCRIPT >", "<!-- <script>", "]]>", "\u2028alert(1)\u2029",
           "&lt;b&gt;", "'\"`${x}`", "\\u003c/script>", "<img src=x onerror=alert(1)>", "\x00\x1f", "🙂 ü 密码"]


@pytest.mark.parametrize("value", HOSTILE)
def test_embedded_json_cannot_end_its_script_and_reads_back_the_same(value):
    doc = {"k": value, value: [value, {"n": 1}]}
    text = script_json(doc)
    assert "<" not in text and ">" not in text and "&" not in text
    assert "\u2028" not in text and "\u2029" not in text
    assert json.loads(text) == doc


def test_generated_values_read_back_the_same():
    rng = random.Random(3)
    alphabet = "<>&/\\'\"`!-[]{}\u2028\u2029\x00 abcü密🙂script"
    for _ in range(500):
        value = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 40)))
        text = script_json({"v": value})
        assert "</" not in text.lower() and "<!--" not in text
        assert json.loads(text) == {"v": value}


def test_page_paths_are_spelled_as_the_browser_spells_them():
    # encodeURIComponent and URLSearchParams, as Chromium computes them
    assert encode_uri_component("run a/b?c#d&e~*'()ü") == "run%20a%2Fb%3Fc%23d%26e~*'()%C3%BC"
    assert form_urlencode([("run_id", "run a/b~*'ü"), ("limit", "100")]) == "run_id=run+a%2Fb%7E*%27%C3%BC&limit=100"
    r = requests("r 1")
    assert set(r) == {"/v1/runs/r%201", "/v1/runs/r%201/timeline", "/v1/runs/r%201/explain",
                      "/v1/runs/r%201/topology", "/v1/alerts?run_id=r+1&limit=100"}
    assert r["/v1/alerts?run_id=r+1&limit=100"] == ("/v1/alerts", {"run_id": "r 1", "limit": "100"})


@pytest.mark.parametrize("value", HOSTILE)
def test_the_page_has_only_its_own_scripts_whatever_the_run_holds(value):
    page = share_html(value, {"/v1/runs/x": {"run": {"run_id": value, "title": value}}}, value, "2026-12-07T00:00:00Z")
    # its own scripts: the data, then the run page's four; nothing a stored value opened
    assert len(re.findall(r"<script\b", page, re.I)) == 1 + len(SCRIPTS)
    assert len(re.findall(r"</script", page, re.I)) == 1 + len(SCRIPTS)
    assert f'content="{CSP}"' in page and "connect-src 'none'" in CSP and "default-src 'none'" in CSP
    main = re.search(r"<main ([^>]*)>", page).group(1)
    assert 'data-shared="1"' in main and "<" not in main
    data = re.search(r"window\.AGENTSTREAM_SHARED = (.*?);</script>", page, re.S).group(1)
    assert json.loads(data)["answers"]["/v1/runs/x"]["run"]["title"] == value
