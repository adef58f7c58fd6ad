"""A run's key as bytes, the one format the sink announces its inserts in and the query API's
cache of missing runs looks up (api/store/run_misses.py).

``tenant_id`` UTF-8, 0xFF, ``run_id`` UTF-8; a list of keys ends each with 0xFE. Neither byte
occurs in UTF-8, so keys never run into each other and two keys are equal exactly when both
strings are. The sink's C (sink/_eventrows.c ``put_run``) writes the same bytes.
"""
from __future__ import annotations

SEP = b"\xff"
END = b"\xfe"


def run_key(tenant_id: str, run_id: str) -> bytes:
    # surrogatepass: a path parameter may carry a lone surrogate; its key matches no stored run
    # (the sink stores strict UTF-8 only), which is what such a run id is
    return tenant_id.encode("utf-8", "surrogatepass") + SEP + run_id.encode("utf-8", "surrogatepass")


def split_run_keys(blob: bytes) -> set[bytes]:
    """The distinct keys of a list of keys each ended by END."""
    keys = set(blob.split(END))
    keys.discard(b"")
    return keys
