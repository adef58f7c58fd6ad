"""Dashboard sessions: log in with an API key once, then a signed, HttpOnly session cookie.

The cookie holds the tenant, the *hash* of the key used to log in and an expiry, signed with
HMAC-SHA256. It never holds the key. Every request re-checks that the key hash is still in the keys
file for that tenant, so revoking the key ends its dashboard sessions at once. The signing secret
comes from the API settings (``dashboard_session_secret``) so several API replicas accept each
other's cookies; without one, a random per-process secret is used and sessions end on restart.

Cookie-authenticated writes must carry the ``X-AgentStream-CSRF`` header: a cross-site form
cannot set a custom header, and the cookie is ``SameSite=Strict`` as well.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentstream.api.auth import ApiKey, Principal, hash_key, load_keys

log = logging.getLogger("agentstream.api.dashboard")

COOKIE_NAME = "as_session"
CSRF_HEADER = "X-AgentStream-CSRF"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Session:
    tenant_id: str
    key_hash: str
    expires: float
    principal: Principal


class KeyIndex:
    """The keys file by hash, re-read when its mtime or size changes (same rule as the API)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._stamp: tuple[int, int] | None = None
        self._by_hash: dict[str, ApiKey] = {}
        self._lock = threading.Lock()

    def get(self, key_hash: str) -> ApiKey | None:
        try:
            st = self.path.stat()
            stamp = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = (0, -1)
        if stamp != self._stamp:
            with self._lock:
                try:
                    self._by_hash = {k.key_hash: k for k in load_keys(self.path)}
                    self._stamp = stamp
                except (ValueError, KeyError, TypeError):
                    pass  # a half-edited file: keep the last good set
        return self._by_hash.get(key_hash)


class SessionManager:
    def __init__(self, keys_file: str | Path, secret: str | None, max_age_s: float = 12 * 3600,
                 secure_cookie: bool | None = None) -> None:
        if not secret:
            log.warning("no dashboard_session_secret configured: using a per-process secret, "
                        "dashboard sessions end when the API restarts")
            secret = secrets.token_urlsafe(32)
        self._secret = hashlib.sha256(("agentstream-dashboard:" + secret).encode()).digest()
        self.keys = KeyIndex(keys_file)
        self.max_age_s = max_age_s
        self.secure_cookie = secure_cookie

    def _sign(self, payload: bytes) -> str:
        return _b64(hmac.new(self._secret, payload, hashlib.sha256).digest())

    def login(self, api_key: str) -> tuple[str, Session] | None:
        """The cookie value and session for a valid key with the read scope, else None."""
        if not api_key or len(api_key) > 512:
            return None
        h = hash_key(api_key.strip())
        entry = self.keys.get(h)
        if entry is None or not hmac.compare_digest(entry.key_hash, h) or "read" not in entry.scopes:
            return None
        expires = time.time() + self.max_age_s
        payload = json.dumps({"t": entry.tenant_id, "h": h, "x": int(expires),
                              "n": secrets.token_urlsafe(8)}, separators=(",", ":")).encode()
        value = _b64(payload) + "." + self._sign(payload)
        return value, self._session(entry, expires)

    def verify(self, cookie: str | None) -> Session | None:
        if not cookie or len(cookie) > 1024 or "." not in cookie:
            return None
        body, sig = cookie.rsplit(".", 1)
        try:
            payload = _unb64(body)
            if not hmac.compare_digest(self._sign(payload), sig):
                return None
            data: dict[str, Any] = json.loads(payload)
            tenant, h, expires = str(data["t"]), str(data["h"]), float(data["x"])
        except (ValueError, KeyError, TypeError):
            return None
        if expires < time.time():
            return None
        entry = self.keys.get(h)
        if entry is None or entry.tenant_id != tenant or "read" not in entry.scopes:
            return None  # revoked, or moved to another tenant: the session is over
        return self._session(entry, expires)

    @staticmethod
    def _session(entry: ApiKey, expires: float) -> Session:
        principal = Principal(entry.tenant_id, frozenset(entry.scopes), entry.name or "dashboard")
        return Session(entry.tenant_id, entry.key_hash, expires, principal)

    def cookie_kwargs(self, secure: bool) -> dict[str, Any]:
        return {"key": COOKIE_NAME, "max_age": int(self.max_age_s), "httponly": True,
                "samesite": "strict", "path": "/",
                "secure": self.secure_cookie if self.secure_cookie is not None else secure}
