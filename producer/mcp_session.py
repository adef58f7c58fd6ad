"""MCP tool-call capture and enforcement, independent of the transport (stdio or HTTP).

One MCP session is one run. ``McpSession`` sees every JSON-RPC message that crosses the proxy:
a client's ``tools/call`` request opens a TOOL step (tool name and the keyed digest of its
arguments, never the arguments), the server's response closes it (latency, status, error code),
and a ``notifications/cancelled`` closes it as CANCELLED. Everything else passes untouched.

Enforcement happens before forwarding: opening the step runs the run's gate (local budgets,
remote STOP/THROTTLE commands), and a durable tool (the tenant policy's
``governance.durable_tools``) waits for Kafka to acknowledge its audit record. A refused call is answered by the proxy itself with a tool
error result (``isError: true``), so the server never sees it; the first refusal ends the run
with its enforcement outcome, and every later call of the session is refused the same way.

The transports call ``on_client`` / ``on_server`` from their own threads; state shared between
them (the pending calls) is behind a lock. A fault here never breaks the proxied traffic: the
message is forwarded and the failure is counted in the tracer's stats.
"""
from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from .durable import confirm_begun
from .errors import AuditUnavailable, EnforcementError

if TYPE_CHECKING:
    from .run import Run
    from .tracer import Tracer

log = logging.getLogger("agentstream.producer")

MAX_NAME = 256
# JSON-RPC's reserved codes, named for the failure code of a tool step that got one.
RPC_ERRORS = {-32700: "parse_error", -32600: "invalid_request", -32601: "method_not_found",
              -32602: "invalid_params", -32603: "internal_error", -32001: "request_timeout",
              -32002: "resource_not_found", -32042: "url_elicitation_required"}


def _short(value: Any, limit: int = MAX_NAME) -> str:
    s = value if isinstance(value, str) else str(value)
    return s[:limit]


def refusal(request_id: Any, exc: EnforcementError) -> dict[str, Any]:
    """The MCP answer to a refused ``tools/call``: a tool error result the model can read."""
    return {"jsonrpc": "2.0", "id": request_id, "result": {
        "content": [{"type": "text", "text": f"agentstream refused this tool call: {exc}"}],
        "isError": True,
        "_meta": {"agentstream/refused": type(exc).__name__}}}


class McpSession:
    """The run of one MCP session. ``transport`` (``stdio``, ``streamable_http``) and
    ``server_label`` (the server command's name or URL host) become run attributes."""

    def __init__(self, tracer: Tracer, *, transport: str, server_label: str,
                 run_id: str | None = None, session_id: str | None = None,
                 run_name: str = "mcp session") -> None:
        self.tracer = tracer
        self.transport = transport
        self.server_label = server_label
        self._run_id = run_id
        self._session_id = session_id
        self._run_name = run_name
        self._attrs = {"mcp.transport": transport, "mcp.server": _short(server_label)}
        self.run: Run | None = None
        self._pending: dict[Any, Any] = {}
        self._lock = threading.Lock()
        self._refused: EnforcementError | None = None
        self.calls = 0
        self.refused = 0
        self.closed = False

    # ---- the run ------------------------------------------------------------------------
    def ensure_run(self) -> Run:
        """The session's run, started at the server's first answer or the first tool call
        (by then an HTTP session has its id, which RUN_START carries)."""
        with self._lock:
            if self.run is None:
                attrs: dict[str, Any] = dict(self._attrs)  # run attributes, as **kwargs
                if self._session_id:
                    attrs["mcp.session.id"] = _short(self._session_id)
                self.run = self.tracer.run(self._run_name, run_id=self._run_id,
                                           session_id=self._session_id, **attrs)
                self.run.start()
            return self.run

    def _add_attrs(self, attrs: dict[str, str]) -> None:
        with self._lock:
            if self.run is None:  # after RUN_START they would not travel
                self._attrs.update(attrs)

    def set_session_id(self, session_id: str) -> None:
        """The server's ``Mcp-Session-Id``, known only after the initialize response."""
        self._session_id = session_id
        if self.run is not None and self.run.session_id is None:
            self.run.session_id = session_id

    # ---- messages -----------------------------------------------------------------------
    def on_client(self, msg: Any) -> dict[str, Any] | None:
        """A client→server message. Returns the proxy's own reply when the call is refused
        (then it must not be forwarded), else None (forward it)."""
        if not isinstance(msg, dict):
            return None
        method = msg.get("method")
        try:
            if method == "initialize":
                self._note_client(msg.get("params"))
            elif method == "notifications/cancelled":
                self._cancelled(msg.get("params"))
            elif method == "tools/call" and "id" in msg:
                return self._tool_call(msg)
        except Exception:  # capture must never break the proxied session
            log.warning("agentstream: MCP capture failed; message forwarded", exc_info=True)
            self.tracer._transport.failed += 1
        return None

    def on_server(self, msg: Any) -> None:
        """A server→client message: a response closes the tool step it answers."""
        if not isinstance(msg, dict) or "method" in msg or "id" not in msg:
            return
        try:
            with self._lock:
                step = self._pending.pop(_id_key(msg["id"]), None)
            if step is not None:
                self._close(step, msg)
                self._end_if_idle()
            elif isinstance(msg.get("result"), dict) and "serverInfo" in msg["result"]:
                info = msg["result"]["serverInfo"]
                if isinstance(info, dict) and info.get("name"):
                    self._add_attrs({"mcp.server.name": _short(info["name"])})
                self.ensure_run()
        except Exception:
            log.warning("agentstream: MCP capture failed on a response", exc_info=True)
            self.tracer._transport.failed += 1

    def _note_client(self, params: Any) -> None:
        info = params.get("clientInfo") if isinstance(params, dict) else None
        if isinstance(info, dict) and info.get("name"):
            self._add_attrs({"mcp.client.name": _short(info["name"])})
        if isinstance(params, dict) and params.get("protocolVersion"):
            self._add_attrs({"mcp.protocol.version": _short(params["protocolVersion"], 32)})

    def _tool_call(self, msg: dict[str, Any]) -> dict[str, Any] | None:
        request_id = msg["id"]
        raw = msg.get("params")
        params: dict[str, Any] = raw if isinstance(raw, dict) else {}
        name = params.get("name")
        name = _short(name) if isinstance(name, str) and name else "unknown"
        args = params.get("arguments")
        if self._refused is not None:
            self.refused += 1
            return refusal(request_id, self._refused)
        run = self.ensure_run()
        step = run.tool_step(name, {} if args is None else args, call_id=_short(request_id, 128))
        step.set_attribute("mcp.method.name", "tools/call")
        step.set_attribute("gen_ai.operation.name", "execute_tool")
        step.set_attribute("jsonrpc.request.id", _short(request_id, 128))
        if self._session_id:
            step.set_attribute("mcp.session.id", _short(self._session_id))
        try:
            step.begin()  # the gate: budgets and remote commands, before the server is called
        except EnforcementError as exc:
            self._refused = exc
            self.refused += 1
            self._end_if_idle()
            return refusal(request_id, exc)
        if self.tracer.is_durable(name):
            # a durable tool (governance.durable_tools, or set_durable_tools) reaches the server
            # only once Kafka acknowledged its audit record; refused calls end nothing else
            try:
                confirm_begun(step, self.tracer._audit_writer, name, None)
            except AuditUnavailable as exc:
                self.refused += 1
                return refusal(request_id, exc)
        with self._lock:
            self._pending[_id_key(request_id)] = step
        self.calls += 1
        return None

    def _close(self, step: Any, msg: dict[str, Any]) -> None:
        err = msg.get("error")
        result = msg.get("result")
        if isinstance(err, dict):
            code = err.get("code")
            step.set_attribute("rpc.jsonrpc.error_code", code if isinstance(code, int) else -1)
            step.set_attribute("error.type", "jsonrpc_error")
            failure = RPC_ERRORS.get(code, "jsonrpc_error") if isinstance(code, int) else \
                "jsonrpc_error"
            step.fail("tool", failure, retryable=failure in ("request_timeout", "internal_error"))
        elif isinstance(result, dict) and result.get("isError") is True:
            step.set_attribute("error.type", "tool_error")
            step.fail("tool", "tool_error")
        step.end()

    def _cancelled(self, params: Any) -> None:
        if not isinstance(params, dict) or "requestId" not in params:
            return
        with self._lock:
            step = self._pending.pop(_id_key(params["requestId"]), None)
        if step is not None:
            step.set_status("CANCELLED")
            step.end()
            self._end_if_idle()

    # ---- the end ------------------------------------------------------------------------
    def _end_if_idle(self) -> None:
        """A refused session's run ends once the calls still running have answered, so
        their steps come before RUN_END."""
        with self._lock:
            idle = not self._pending
        if idle and self._refused is not None and self.run is not None and not self.run.ended:
            self.run.end(self._refused)

    def close(self, error: BaseException | None = None) -> None:
        """The session ended (client gone, DELETE, proxy stopping): calls still waiting for a
        response are CANCELLED, and the run ends (FAILURE if the server died under it)."""
        if self.closed:
            return
        self.closed = True
        with self._lock:
            pending = list(self._pending.values())
            self._pending.clear()
        for step in pending:
            try:
                step.set_status("CANCELLED")
                step.end()
            except Exception:  # noqa: BLE001 - never raise into the agent: counted
                self.tracer._transport.failed += 1
        if self.run is not None and not self.run.ended:
            if error is not None:
                self.run.failure("tool", "mcp_server_exited", _short(str(error), 200))
            self.run.end(error)


def _id_key(request_id: Any) -> Any:
    """JSON-RPC ids are strings or numbers; 1 and "1" are different requests."""
    return (type(request_id).__name__, request_id if isinstance(request_id, (str, int, float))
            else repr(request_id))
