"""Tenant API keys for the gateway: the query API's keys file and hashing
(``agentstream.api.auth``), plus the write-scope rule and header parsing of the gateway."""
from __future__ import annotations

from agentstream.api.auth import KeyStore, Principal, hash_key

WRITE_SCOPE = "write"

__all__ = ["WRITE_SCOPE", "KeyStore", "Principal", "bearer_key", "hash_key"]


def bearer_key(authorization: str | None, x_api_key: str | None) -> str | None:
    """The key from ``Authorization: Bearer <key>`` (what OTLP exporters send through their
    ``headers`` option) or ``X-API-Key``."""
    if x_api_key and x_api_key.strip():
        return x_api_key.strip()
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return None
