"""A small Confluent-compatible Schema Registry for the tests (no registry server is installable here).

It speaks the REST API as Confluent's clients use it, with Confluent's status and error codes:
subjects and versions, one id per schema across subjects (ids assigned max + 1), lookups,
``/schemas/ids/{id}``, per-subject and global compatibility (NONE, BACKWARD, FORWARD, FULL and
their _TRANSITIVE forms, checked on register and by ``/compatibility``), and modes (READWRITE,
READONLY, IMPORT): in IMPORT a registration may carry its ``id`` and ``version`` and skips the
compatibility check; IMPORT on a subject that has versions needs ``force=true``; an id already
holding another schema is refused (42207). Schemas are compared by Avro parsing canonical form.
Loopback only; ``RegistryServer().start()`` returns it with ``.url`` set.
"""
from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from agentstream.schemas.catalog import parse
from agentstream.schemas.compatibility import check_backward
from agentstream.schemas.registry_sync import fingerprint

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
MODES = ("READWRITE", "READONLY", "IMPORT")
LEVELS = ("NONE", "BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL", "FULL_TRANSITIVE")


class ApiError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class Registry:
    """The registry's state and rules, apart from HTTP."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.schemas: dict[int, dict[str, Any]] = {}  # id -> {"schema", "fp"}
        self.subjects: dict[str, list[dict[str, int]]] = {}  # subject -> [{"version", "id"}]
        self.modes: dict[str, str] = {}
        self.global_mode = "READWRITE"
        self.levels: dict[str, str] = {}
        self.global_level = "BACKWARD"
        self.requests: list[tuple[str, str]] = []  # (method, path), for tests to see what a client did
        # False plays a registry without IMPORT mode (older or partial implementations)
        self.supports_import = True

    # ---- lookups
    def versions(self, subject: str) -> list[dict[str, int]]:
        if not self.subjects.get(subject):
            raise ApiError(404, 40401, f"Subject '{subject}' not found.")
        return self.subjects[subject]

    def version(self, subject: str, ref: str) -> dict[str, Any]:
        vs = self.versions(subject)
        if ref in ("latest", "-1"):
            v = vs[-1]
        else:
            found = [x for x in vs if str(x["version"]) == ref]
            if not found:
                raise ApiError(404, 40402, f"Version {ref} not found.")
            v = found[0]
        return {"subject": subject, "id": v["id"], "version": v["version"], "schema": self.schemas[v["id"]]["schema"]}

    def by_id(self, sid: int) -> dict[str, Any]:
        if sid not in self.schemas:
            raise ApiError(404, 40403, f"Schema {sid} not found")
        return self.schemas[sid]

    def lookup(self, subject: str, text: str) -> dict[str, Any]:
        fp = _fingerprint(text)
        for v in self.versions(subject):
            if self.schemas[v["id"]]["fp"] == fp:
                return {"subject": subject, "id": v["id"], "version": v["version"],
                        "schema": self.schemas[v["id"]]["schema"]}
        raise ApiError(404, 40403, "Schema not found")

    # ---- writes
    def mode(self, subject: str | None) -> str:
        return self.modes.get(subject, self.global_mode) if subject else self.global_mode

    def set_mode(self, subject: str | None, mode: str, force: bool) -> str:
        if mode not in MODES or (mode == "IMPORT" and not self.supports_import):
            raise ApiError(422, 42204, f"Invalid mode {mode}")
        if mode == "IMPORT" and not force:
            taken = self.subjects.get(subject) if subject else any(self.subjects.values())
            if taken:
                raise ApiError(422, 42205, "Cannot import since found existing subjects")
        if subject:
            self.modes[subject] = mode
        else:
            self.global_mode = mode
        return mode

    def level(self, subject: str | None) -> str:
        return self.levels.get(subject, self.global_level) if subject else self.global_level

    def compatible(self, subject: str, text: str, against: list[dict[str, int]] | None = None) -> list[str]:
        level = self.level(subject)
        existing = self.subjects.get(subject) or []
        if against is None:
            against = existing if level.endswith("_TRANSITIVE") else existing[-1:]
        new = json.loads(text)
        problems = []
        for v in against:
            old = json.loads(self.schemas[v["id"]]["schema"])
            if level.startswith(("BACKWARD", "FULL")):
                problems += check_backward(old, new)
            if level.startswith(("FORWARD", "FULL")):
                problems += check_backward(new, old)
        return problems

    def register(self, subject: str, body: dict[str, Any]) -> dict[str, int]:
        text = body.get("schema")
        if (body.get("schemaType") or "AVRO") != "AVRO" or not isinstance(text, str):
            raise ApiError(422, 42201, "Invalid schema: only AVRO schema strings are served here")
        try:
            fp = _fingerprint(text)
        except Exception as exc:  # noqa: BLE001 - any parse failure is the client's bad schema
            raise ApiError(422, 42201, f"Invalid schema: {exc}") from None
        mode = self.mode(subject)
        if mode == "READONLY":
            raise ApiError(422, 42205, f"Subject {subject} is in read-only mode")
        want_id, want_version = body.get("id"), body.get("version")
        if want_id is not None and mode != "IMPORT":
            raise ApiError(422, 42205, "Schema id can only be set in IMPORT mode")
        vs = self.subjects.setdefault(subject, [])
        for v in vs:
            if self.schemas[v["id"]]["fp"] == fp:
                if want_id is not None and want_id != v["id"]:
                    raise ApiError(422, 42207, f"Schema already registered with id {v['id']} instead of input id {want_id}")
                return {"id": v["id"]}
        if mode == "IMPORT" and want_id is not None:
            held = self.schemas.get(want_id)
            if held is not None and held["fp"] != fp:
                raise ApiError(422, 42207, f"Overwrite new schema with id {want_id} is not permitted.")
            sid = want_id
        else:
            if self.level(subject) != "NONE":
                problems = self.compatible(subject, text)
                if problems:
                    raise ApiError(409, 409, "Schema being registered is incompatible with an earlier schema "
                                   f"for subject \"{subject}\", details: {problems}")
            same = [i for i, s in self.schemas.items() if s["fp"] == fp]
            sid = same[0] if same else max(self.schemas, default=0) + 1
        version = want_version if want_version is not None else max((v["version"] for v in vs), default=0) + 1
        if any(v["version"] == version for v in vs):
            raise ApiError(422, 42202, f"Version {version} already exists under {subject}")
        self.schemas.setdefault(sid, {"schema": text, "fp": fp})
        vs.append({"version": version, "id": sid})
        vs.sort(key=lambda v: v["version"])
        return {"id": sid}


def _fingerprint(text: str) -> str:
    parse(text)  # refuses what fastavro cannot parse
    return fingerprint(text)


ROUTES: list[tuple[str, re.Pattern[str], str]] = [(m, re.compile(p), h) for m, p, h in [
    ("GET", r"^/subjects$", "subjects"),
    ("GET", r"^/subjects/([^/]+)/versions$", "subject_versions"),
    ("GET", r"^/subjects/([^/]+)/versions/([^/]+)$", "subject_version"),
    ("GET", r"^/subjects/([^/]+)/versions/([^/]+)/schema$", "subject_version_schema"),
    ("POST", r"^/subjects/([^/]+)/versions$", "register"),
    ("POST", r"^/subjects/([^/]+)$", "lookup"),
    ("DELETE", r"^/subjects/([^/]+)$", "delete_subject"),
    ("GET", r"^/schemas/ids/(\d+)$", "schema_by_id"),
    ("GET", r"^/schemas/ids/(\d+)/schema$", "raw_schema_by_id"),
    ("GET", r"^/schemas/ids/(\d+)/subjects$", "subjects_of_id"),
    ("GET", r"^/schemas/ids/(\d+)/versions$", "versions_of_id"),
    ("GET", r"^/schemas/types$", "types"),
    ("GET", r"^/mode$", "get_mode"), ("PUT", r"^/mode$", "put_mode"),
    ("GET", r"^/mode/([^/]+)$", "get_mode"), ("PUT", r"^/mode/([^/]+)$", "put_mode"),
    ("DELETE", r"^/mode/([^/]+)$", "delete_mode"),
    ("GET", r"^/config$", "get_config"), ("PUT", r"^/config$", "put_config"),
    ("GET", r"^/config/([^/]+)$", "get_config"), ("PUT", r"^/config/([^/]+)$", "put_config"),
    ("POST", r"^/compatibility/subjects/([^/]+)/versions/([^/]+)$", "compatibility"),
    ("POST", r"^/compatibility/subjects/([^/]+)/versions$", "compatibility_all"),
]]


class Handlers:
    """One method per route: (registry, decoded path groups, query, body) -> JSON."""

    @staticmethod
    def subjects(r: Registry, g, q, b):
        return sorted(s for s, vs in r.subjects.items() if vs)

    @staticmethod
    def subject_versions(r, g, q, b):
        return [v["version"] for v in r.versions(g[0])]

    @staticmethod
    def subject_version(r, g, q, b):
        return r.version(g[0], g[1])

    @staticmethod
    def subject_version_schema(r, g, q, b):
        return json.loads(r.version(g[0], g[1])["schema"])

    @staticmethod
    def register(r, g, q, b):
        return r.register(g[0], b)

    @staticmethod
    def lookup(r, g, q, b):
        return r.lookup(g[0], b.get("schema", ""))

    @staticmethod
    def delete_subject(r, g, q, b):
        return [v["version"] for v in r.subjects.pop(g[0], None) or r.versions(g[0])]

    @staticmethod
    def schema_by_id(r, g, q, b):
        return {"schema": r.by_id(int(g[0]))["schema"]}

    @staticmethod
    def raw_schema_by_id(r, g, q, b):
        return json.loads(r.by_id(int(g[0]))["schema"])

    @staticmethod
    def subjects_of_id(r, g, q, b):
        r.by_id(int(g[0]))
        return sorted(s for s, vs in r.subjects.items() if any(v["id"] == int(g[0]) for v in vs))

    @staticmethod
    def versions_of_id(r, g, q, b):
        r.by_id(int(g[0]))
        return [{"subject": s, "version": v["version"]} for s, vs in sorted(r.subjects.items())
                for v in vs if v["id"] == int(g[0])]

    @staticmethod
    def types(r, g, q, b):
        return ["AVRO"]

    @staticmethod
    def get_mode(r, g, q, b):
        return {"mode": r.mode(g[0] if g else None)}

    @staticmethod
    def put_mode(r, g, q, b):
        force = (q.get("force") or ["false"])[0].lower() == "true"
        return {"mode": r.set_mode(g[0] if g else None, str(b.get("mode", "")).upper(), force)}

    @staticmethod
    def delete_mode(r, g, q, b):
        return {"mode": r.modes.pop(g[0], r.global_mode)}

    @staticmethod
    def get_config(r, g, q, b):
        return {"compatibilityLevel": r.level(g[0] if g else None)}

    @staticmethod
    def put_config(r, g, q, b):
        level = str(b.get("compatibility", "")).upper()
        if level not in LEVELS:
            raise ApiError(422, 42203, f"Invalid compatibility level {level}")
        if g:
            r.levels[g[0]] = level
        else:
            r.global_level = level
        return {"compatibility": level}

    @staticmethod
    def compatibility(r, g, q, b):
        against = r.subjects.get(g[0]) or []
        if against and g[1] not in ("latest", "-1"):
            against = [v for v in against if str(v["version"]) == g[1]]
            if not against:
                raise ApiError(404, 40402, f"Version {g[1]} not found.")
        problems = r.compatible(g[0], b.get("schema", ""), against[-1:])
        out: dict[str, Any] = {"is_compatible": not problems}
        if (q.get("verbose") or ["false"])[0].lower() == "true":
            out["messages"] = problems
        return out

    @staticmethod
    def compatibility_all(r, g, q, b):
        return {"is_compatible": not r.compatible(g[0], b.get("schema", ""), r.subjects.get(g[0]) or [])}


class _Handler(BaseHTTPRequestHandler):
    registry: Registry

    def log_message(self, *args: Any) -> None:  # quiet test output
        pass

    def _serve(self, method: str) -> None:
        parts = urlsplit(self.path)
        path, query = parts.path.rstrip("/") or "/", parse_qs(parts.query)
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length)) if length else {}
        except ValueError:
            return self._send(400, {"error_code": 400, "message": "Unrecognized JSON body"})
        self.registry.requests.append((method, path))
        for m, rx, name in ROUTES:
            match = rx.match(path)
            if m == method and match:
                groups = [unquote(x) for x in match.groups()]
                try:
                    with self.registry.lock:
                        out = getattr(Handlers, name)(self.registry, groups, query, body)
                except ApiError as exc:
                    return self._send(exc.status, {"error_code": exc.code, "message": exc.message})
                return self._send(200, out)
        return self._send(404, {"error_code": 404, "message": f"HTTP 404 Not Found: {method} {path}"})

    def _send(self, status: int, doc: Any) -> None:
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # http.server's naming
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")


class RegistryServer:
    def __init__(self) -> None:
        self.registry = Registry()
        handler = type("Handler", (_Handler,), {"registry": self.registry})
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}"
        self._thread = threading.Thread(target=self._http.serve_forever, name="registry", daemon=True)

    def start(self) -> "RegistryServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()

    def __enter__(self) -> "RegistryServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
