"""The disk spool: bounded, ordered by record number across segments, survives a restart."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from agentstream.producer.spool import Spool


def _drain(spool: Spool) -> list[int]:
    out = []
    while not spool.empty():
        d, recs = spool.peek(7)
        if not recs:
            break
        out += [r[0] for r in recs]
        spool.commit(d, recs)
    return out


def test_replays_in_w_order_across_out_of_order_segments(tmp_path):
    s = Spool(str(tmp_path), 10 * 1024 * 1024, 64 * 1024)
    assert s.append([(w, b"k", b"v%d" % w) for w in range(100, 130)]) == 30
    # failures of older records arrive later: they get their own segment and replay first
    assert s.append([(w, b"k", b"old") for w in range(50, 60)]) == 10
    assert s.append([(w, b"k", b"v") for w in range(130, 140)]) == 10
    assert _drain(s) == list(range(50, 60)) + list(range(100, 140))
    assert s.bytes_used() == 0 and s.empty()


def _in_a_process_that_dies(spool_dir, max_bytes: int, body: str) -> dict:
    """Runs ``body`` on ``s``, a ``Spool`` of ``spool_dir``, in another process that then dies
    without closing anything (``os._exit``): its files stay as they are and the kernel drops
    its lock, as on a crash. Returns the ``out`` dict ``body`` fills."""
    code = (f"import json, os\nfrom agentstream.producer.spool import Spool\n"
            f"s = Spool({str(spool_dir)!r}, {max_bytes}, 64 * 1024)\nout = {{}}\n"
            + textwrap.dedent(body)
            + "\nprint(json.dumps(out), flush=True)\nos._exit(0)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


def test_partial_commit_and_restart_adopts_orphaned_directory(tmp_path):
    _in_a_process_that_dies(tmp_path, 10 * 1024 * 1024, """
        s.append([(w, b"run-%d" % (w % 3), os.urandom(100)) for w in range(1, 51)])
        d, recs = s.peek(20)
        s.commit(d, recs[:12])  # then the process dies holding 38 unreplayed records
    """)
    s2 = Spool(str(tmp_path), 10 * 1024 * 1024, 64 * 1024)
    assert not s2.empty()
    d, recs = s2.peek(100)
    assert [r[0] for r in recs] == list(range(13, 51))
    assert [r[1] for r in recs[:2]] == [b"run-1", b"run-2"]
    s2.commit(d, recs)
    assert s2.empty()


def test_bounded_and_torn_tail_is_ignored(tmp_path):
    out = _in_a_process_that_dies(tmp_path, 1024 * 1024, """
        out["written"] = s.append([(w, b"k", b"x" * 1000) for w in range(1, 5000)])
        out["segment"] = s.own.segments[-1].path
    """)
    written = out["written"]
    assert 900 < written < 1100  # stops at max_bytes; the caller counts the rest as dropped
    with open(out["segment"], "ab") as f:
        f.write(b"\x00\x00\x10\x00garbage")  # a crash mid-write
    s2 = Spool(str(tmp_path), 1024 * 1024, 64 * 1024)
    assert len(_drain(s2)) == written
