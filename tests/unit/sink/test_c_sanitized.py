"""The sink's C readers under AddressSanitizer and UndefinedBehaviorSanitizer.

They read Kafka values a producer wrote, so hostile bytes must end in rows or a refusal, never
in a read past the input, a write past the output, or undefined behaviour that happens to
work today. The module tests (test_event_rows.py, test_rowbinary.py: generated records,
every truncation, byte flips, invalid UTF-8) run again here, in a subprocess, against builds of
``_eventrows.c`` and ``_rowbinary.c`` with ``-fsanitize=address,undefined``; any report aborts it.
Skipped where there is no C compiler or sanitizer runtime.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
FLAGS = ["-shared", "-fPIC", "-O1", "-g", "-fsanitize=address,undefined", "-fno-omit-frame-pointer",
         "-fno-sanitize-recover=undefined", f"-I{sysconfig.get_paths()['include']}"]

RUN = """
import importlib.machinery, importlib.util, inspect, random, sys
sys.path.insert(0, sys.argv[1])
for name, path in (("agentstream.sink._eventrows", sys.argv[2]), ("agentstream.sink._rowbinary", sys.argv[3])):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    sys.modules[name] = mod  # before the sink imports it: the sanitized build is the one used
from agentstream.sink import event_rows, rowbinary
assert event_rows.AVAILABLE and rowbinary.AVAILABLE
import tests.unit.sink.test_event_rows as er
import tests.unit.sink.test_rowbinary as rb
from tests.staged_schemas import staged_container_schemas
for sid, schema, v2 in er.SCHEMAS:
    rng = random.Random(2000 + sid)
    corpus = (sid, schema, v2, [er._event(schema, rng) for _ in range(3000)])
    er.test_c_writes_what_python_stores_and_refuses_what_it_rejects(corpus)
    er.test_the_payload_json_is_python_s_for_every_branch_and_odd_text(corpus)
    er.test_attacks_are_refused(sid, schema, v2)
    er.test_byte_flips_end_in_rows_python_agrees_with_or_a_refusal(sid, schema, v2)
er.test_doubles_are_written_as_orjson_writes_them()
ran = 0
for i, (doc, _table) in enumerate(staged_container_schemas()):
    staged = (doc, rowbinary.transcoder_for(doc), rb._bodies(doc, 300, 7 + i))
    for name, fn in inspect.getmembers(rb, inspect.isfunction):
        if name.startswith("test_") and list(inspect.signature(fn).parameters) == ["staged"]:
            fn(staged)
            ran += 1
assert ran >= 10, ran
print("SANITIZED OK")
"""


def _runtime(lib: str) -> str | None:
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        return None
    out = subprocess.run([cc, f"-print-file-name={lib}"], capture_output=True, text=True).stdout.strip()
    return out if os.path.isabs(out) and os.path.exists(out) else None


@pytest.mark.skipif(_runtime("libasan.so") is None or _runtime("libubsan.so") is None,
                    reason="no C compiler with the address and undefined-behaviour sanitizers")
def test_the_c_readers_pass_their_tests_under_the_sanitizers(tmp_path):
    cc = shutil.which("gcc") or shutil.which("cc")
    built = {}
    for name in ("_eventrows", "_rowbinary"):
        out = tmp_path / f"{name}.so"
        subprocess.run([cc, *FLAGS, str(ROOT / "sink" / f"{name}.c"), "-o", str(out)], check=True,
                       capture_output=True)
        built[name] = out
    env = dict(os.environ, LD_PRELOAD=f"{_runtime('libasan.so')}:{_runtime('libubsan.so')}",
               ASAN_OPTIONS="detect_leaks=0:verify_asan_link_order=0:abort_on_error=1")
    res = subprocess.run([sys.executable, "-c", RUN, str(ROOT), str(built["_eventrows"]), str(built["_rowbinary"])],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0 and "SANITIZED OK" in res.stdout, (res.returncode, res.stdout[-2000:],
                                                                   res.stderr[-4000:])
