"""``agentstream redact --jsonl``: try the default policy on sample text, no broker needed."""
from __future__ import annotations

import json
import sys
from typing import Any, Mapping, TextIO

from .engine import DEFAULT_ACTIONS, DROP, RedactionError, Redactor


def redact_record(redactor: Redactor, rec: dict[str, Any],
                  actions: Mapping[str, str] = DEFAULT_ACTIONS) -> dict[str, Any]:
    counts: dict[str, int] = {}
    text = redactor.redact_text(rec["text"], actions, counts)
    out = dict(rec)
    out["text"] = None if text is DROP else text
    out["redaction"] = counts
    return out


def redact_lines(inp: TextIO, out: TextIO, hash_key: bytes, err: TextIO = sys.stderr) -> int:
    """Returns how many input lines were rejected; every good line is written, in order."""
    redactor = Redactor(hash_key)
    bad = 0
    for n, line in enumerate(inp, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            if not isinstance(rec, dict) or "id" not in rec or not isinstance(rec.get("text"), str):
                raise ValueError('expected an object with "id" and a string "text"')
            red = redact_record(redactor, rec)
        except RedactionError as exc:
            # Fail closed here too: the line is withheld, not printed unredacted.
            bad += 1
            print(f"line {n}: withheld: {exc.reason}", file=err)
            continue
        except ValueError as exc:
            bad += 1
            print(f"line {n}: {exc}", file=err)
            continue
        out.write(json.dumps(red, ensure_ascii=False) + "\n")
    out.flush()
    return bad
