"""The agent's entry point: ``Tracer(tenant_id, agent_id, agent_version, environment)``."""
from __future__ import annotations

import logging
import os
import secrets
import struct
import threading
import time
from typing import Any, Callable

from agentstream.schemas.id_format import is_storable_id
from agentstream.schemas import COMMAND, EVENT, POLICY, Codec, load_catalog, make_resolver, topic_name

from .bounds import ID_MAX, NAME_MAX
from .capture import CapturePolicy
from .commands import CommandListener
from .context import current_run, current_step, propagate
from .decorators import Decorators
from .enforcement import Budget
from .ids import uuid4_str
from .pipeline import EventPipeline
from .policy_follower import DurablePolicy, PolicyFollower
from .pricing import PriceTable
from .run import FastRun, Run
from .settings import ProducerSettings
from .transport import Transport

SDK_VERSION = "agentstream-py/0.1.0"
log = logging.getLogger("agentstream.producer")
log.addHandler(logging.NullHandler())


WIRE_EVENT_VERSION = 2  # the Event version producer/wire.py encodes
REGISTRY_RECHECK_S = 30.0


def _event_header(settings: ProducerSettings) -> Callable[[], bytes]:
    """The Confluent frame of the Event version the wire encoder writes (v2)."""

    failed: list[tuple[float, Exception]] = []

    def header() -> bytes:
        v = next(v for v in load_catalog().versions(EVENT) if v.version == WIRE_EVENT_VERSION)
        if settings.schema_registry_url:
            # Raises SchemaIdMismatch unless the registry holds the built-in ids (`agentstream
            # schemas register`); the transport then drops and logs rather than mis-frame. A
            # failure is re-checked at most every REGISTRY_RECHECK_S, not once per event.
            if failed and time.monotonic() - failed[0][0] < REGISTRY_RECHECK_S:
                raise failed[0][1]
            try:
                make_resolver(settings.schema_registry_url)
            except Exception as exc:
                failed[:] = [(time.monotonic(), exc)]
                raise
        return struct.pack(">bI", 0, v.id)

    return header


class Tracer(Decorators):
    def __init__(self, tenant_id: str, agent_id: str, agent_version: str = "0.0.0",
                 environment: str = "development", settings: ProducerSettings | None = None, *,
                 prices: dict[str, Any] | None = None,
                 content_store: Callable[[str], str] | None = None,
                 producer_factory: Callable[[dict], Any] | None = None,
                 **overrides: Any) -> None:
        """``overrides`` are ProducerSettings fields (e.g. ``max_steps=20``); they beat the
        ``AGENTSTREAM_PRODUCER_*`` environment, which beats the defaults."""
        if settings is None:
            settings = ProducerSettings(**overrides)
        elif overrides:
            settings = settings.model_copy(update=overrides)
        self.settings = settings
        self.tenant_id = tenant_id
        self.agent_id = agent_id
        self.agent_version = agent_version
        self.environment = environment
        key = settings.digest_key.get_secret_value().encode() or secrets.token_bytes(32)
        self._policy = CapturePolicy(settings.capture_mode, settings.policy_version, key,
                                     content_store)
        try:
            self.prices = PriceTable.load(settings.price_table_path, prices)
        except Exception:  # a broken override file must not break the agent
            log.exception("agentstream: price table override unreadable, using the bundled one")
            self.prices = PriceTable.load()
        self.topic = topic_name("raw", settings.topic_prefix)
        self.commands_topic = topic_name("commands", settings.topic_prefix)
        self._pipeline = EventPipeline(_event_header(settings), SDK_VERSION,
                                       self._policy.wire_mode, settings.policy_version,
                                       settings.sample_buffer_max, settings.speedups)
        self._transport = Transport(settings, self.topic, self._pipeline.process,
                                    producer_factory)
        self._pipeline.bounds.counter = self._transport  # cuts show in stats()["truncated"]
        # The tracer's identity is in every event's envelope: bounded once, here (bounds.py).
        self.agent_id, self.agent_version, self.environment = (
            self._pipeline.bounds.text(v) for v in (agent_id, agent_version, environment))
        self.tenant_id = self._pipeline.bounds.text(tenant_id, ID_MAX)
        self._producer_factory = producer_factory  # the durable-action audit producer's too
        self._live: dict[str, Run] = {}
        self._run_type = FastRun if settings.speedups and FastRun is not None else Run
        self._limits = Budget().resolve(settings)
        self._limits_any = self._limits.any()  # asked by every run that keeps these limits
        self._listener: CommandListener | None = None
        self._listener_lock = threading.Lock()
        self._listener_pid = os.getpid()
        self._follower: PolicyFollower | None = None
        self._policy_state: DurablePolicy | None = None
        self._follower_pid = os.getpid()

    # ---- runs ---------------------------------------------------------------------------
    def run(self, name: str = "run", *, session_id: str | None = None,
            parent_run_id: str | None = None, parent: Run | None = None, role: str | None = None,
            budget: Budget | None = None, run_id: str | None = None,
            sampled: bool | None = None, end_user_id: Any = None, **attrs: Any) -> Run:
        """``with tracer.run("triage") as run:`` (or ``async with``). ``parent`` links a
        handoff: the parent's run id, session and end user carry over. ``budget`` fields
        override the environment's limits for this run. ``end_user_id`` (the user the agent
        acts for) travels only as its keyed digest (``digest_key``), never raw."""
        digest = self._end_user_digest(end_user_id)
        if run_id is not None or session_id is not None or parent_run_id is not None or role is not None \
                or parent is not None or budget is not None or name.__class__ is not str:
            name, run_id, session_id, parent_run_id, role, parent, budget = self._run_args(
                name, run_id, session_id, parent_run_id, role, parent, budget)
        if parent is not None:
            parent_run_id = parent_run_id or parent.run_id
            session_id = session_id or parent.session_id
            digest = digest or parent.end_user_id
        limits = budget.resolve(self._limits) if budget is not None else self._limits
        rid = run_id
        if sampled is None:
            rate = self.settings.sample_rate
            if rate >= 1.0:
                sampled = True
            else:
                rid = rid or uuid4_str()
                sampled = (int(rid.replace("-", "")[:8], 16) / 0xFFFFFFFF) < rate \
                    if _is_hex(rid) else (hash(rid) % 10_000) / 10_000 < rate
        if self._transport.needs_start and self.settings.enabled:
            self._transport.start()
        if self.settings.commands_enabled and self.settings.enabled:
            self._ensure_listener()
        r = self._run_type(self, name, rid, session_id, parent_run_id, role, limits, sampled,
                           attrs, end_user_id=digest)
        if not self.settings.enabled:
            r._t = _DISABLED  # type: ignore[assignment]  # the run-facing part of Transport
            r._q, r._qmax = _DISABLED.q, 0
        return r

    start_run = run

    def _run_args(self, name: Any, run_id: Any, session_id: Any, parent_run_id: Any, role: Any,
                  parent: Any, budget: Any) -> tuple[Any, ...]:
        """``run``'s arguments as a run can carry them, never raising into the agent: an id or
        a name that is a number becomes its text; what is neither text nor a number, a
        ``parent`` that is not a run and a ``budget`` that is not a ``Budget`` are left out,
        each counted in ``stats()["failed"]`` and logged."""
        cut = self._pipeline.bounds.text

        def text(v: Any, what: str, limit: int = ID_MAX) -> str | None:
            if v is None:
                return None
            if v.__class__ is str or isinstance(v, (str, int)) and not isinstance(v, bool):
                v = cut(v if v.__class__ is str else str(v), limit)  # cut: bounds.py, counted
                # An id the sink would refuse (a blank or a control character in it,
                # schemas/id_format.is_storable_id) is left out as any other unusable id: a run
                # id is drawn.
                if limit != ID_MAX or is_storable_id(v):
                    return v
            self._bad_argument(what)
            return None

        ids = [text(v, w) for v, w in ((run_id, "run_id"), (session_id, "session_id"),
                                       (parent_run_id, "parent_run_id"))]
        ids.append(text(role, "role", NAME_MAX))
        if parent is not None and getattr(parent, "run_id", None).__class__ is not str:
            self._bad_argument("parent (not a run)")
            parent = None
        if budget is not None and not isinstance(budget, Budget):
            self._bad_argument("budget (not a Budget)")
            budget = None
        return (text(name, "name", NAME_MAX) or "run", *ids, parent, budget)

    def _bad_argument(self, what: str) -> None:
        self._transport.failed += 1
        log.warning("agentstream: run argument %s left out", what)

    def _end_user_digest(self, end_user_id: Any) -> str | None:
        """The keyed digest of an end-user id (the same keyed HMAC as tool arguments, so the
        gateway, given the same key, makes the same digest); None for no id. Never raises."""
        if end_user_id is None:
            return None
        try:
            raw = end_user_id if isinstance(end_user_id, str) else str(end_user_id)
            return self._policy.digest(raw) if raw else None
        except Exception:  # a bad id must not break the agent; dropped, not sent
            log.warning("agentstream: end_user_id could not be digested; dropped", exc_info=True)
            return None

    def digest(self, value: Any) -> str:
        """The keyed digest the SDK sends in place of ``value`` (tool arguments, approvals,
        end-user ids): HMAC-SHA256 of its canonical JSON under ``digest_key``. The same key
        gives the same digest, so a team can find the events about a value it holds (an
        end user's, ``digest(str(user_id))``) without the value leaving the agent."""
        return self._policy.digest(value)

    def current_run(self) -> Run | None:
        return current_run.get()

    def current_step(self) -> Any:
        return current_step.get()

    @staticmethod
    def wrap(fn: Callable) -> Callable:
        """Carries the current run/step into another thread or an executor."""
        return propagate(fn)

    def feedback(self, interaction_id: str, value: str, *, run_id: str | None = None,
                 session_id: str | None = None, source: str = "sdk") -> bool:
        """Feedback that arrives after the rated run ended: a one-event run whose parent is
        the rated run (RUN_START and RUN_END stay first and last of every run)."""
        with self.run("feedback", parent_run_id=run_id, session_id=session_id,
                      sampled=True) as r:
            ok = r.feedback(interaction_id, value, source)
        return ok

    def negative_signal(self, interaction_id: str, signal_name: str, *,
                        run_id: str | None = None, session_id: str | None = None,
                        source: str = "sdk") -> bool:
        with self.run("negative_signal", parent_run_id=run_id, session_id=session_id,
                      sampled=True) as r:
            ok = r.negative_signal(interaction_id, signal_name, source)
        return ok

    # ---- commands -----------------------------------------------------------------------
    def _ensure_listener(self) -> None:
        if self._listener is not None and self._listener_pid == os.getpid():
            return
        with self._listener_lock:
            if self._listener is not None and self._listener_pid == os.getpid():
                return
            codec = self._codec()
            self._listener = CommandListener(
                self.settings.bootstrap_servers, self.commands_topic, self.tenant_id, self._live,
                lambda b: codec.decode_as(COMMAND, b), self.settings.session_timeout_ms,
                self.settings.client_conf).start()
            self._listener_pid = os.getpid()

    def _codec(self) -> Codec:
        try:
            return Codec(make_resolver(self.settings.schema_registry_url))
        except Exception:  # registry down or mismatched: never raise into the agent
            log.warning("agentstream: schema registry unusable; commands and policies decoded "
                        "with the built-in schema ids", exc_info=True)
            return Codec()

    # ---- the tenant's policy (durable action classes) ------------------------------------
    def _durable_policy(self) -> DurablePolicy | None:
        """The followed policy (started on first use, again after a fork); None when
        ``follow_policy`` is off or the tracer is disabled."""
        if not (self.settings.follow_policy and self.settings.enabled):
            return None
        state = self._policy_state
        if state is not None and self._follower_pid == os.getpid():
            return state
        with self._listener_lock:
            if self._policy_state is None or self._follower_pid != os.getpid():
                codec = self._codec()
                self._policy_state = DurablePolicy(self.tenant_id, lambda b: codec.decode_as(POLICY, b))
                self._follower_pid = os.getpid()
                st = self.settings
                try:
                    self._follower = PolicyFollower(
                        st.bootstrap_servers, topic_name("policies", st.topic_prefix),
                        self._policy_state, st.session_timeout_ms, st.client_conf).start()
                except Exception:  # never raise into the agent: the policy stays unread (fail closed)
                    log.exception("agentstream: policy follower could not start")
            return self._policy_state

    def policy_ready(self, timeout: float = 10.0) -> bool:
        """Starts following the tenant's policy if not yet, and waits (bounded) until it has been
        read; True once it has. Until then a tool with an ``action_class`` is durable."""
        state = self._durable_policy()
        return state is not None and state.loaded.wait(timeout)

    def commands_ready(self, timeout: float = 10.0) -> bool:
        """True once the command listener has its partitions (tests wait on this)."""
        if self._listener is None:
            self._ensure_listener()
        listener = self._listener
        return listener is not None and listener.ready.wait(timeout)

    # ---- transport ----------------------------------------------------------------------
    def flush(self, timeout: float | None = None) -> bool:
        """Waits (bounded) until everything emitted so far is acked by Kafka or spooled."""
        try:
            return self._transport.flush(timeout)
        except Exception:
            log.exception("agentstream: flush failed")
            return False

    def close(self, timeout: float | None = None) -> bool:
        try:
            if self._listener is not None:
                self._listener.stop()
            if self._follower is not None:
                self._follower.stop()
            return self._transport.close(timeout)
        except Exception:
            log.exception("agentstream: close failed")
            return False

    def stats(self) -> dict[str, Any]:
        s = self._transport.stats()
        s["sampled_out"] = self._pipeline.sampled_out
        s["content_blocked"] = self._policy.blocked
        s["live_runs"] = len(self._live)
        if self._listener is not None:
            s["commands_received"] = self._listener.applied
        if self._policy_state is not None:
            s.update(self._policy_state.stats())
        return s

    def __enter__(self) -> "Tracer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _is_hex(rid: str) -> bool:
    try:
        int(rid.replace("-", "")[:8], 16)
        return True
    except ValueError:
        return False


class _Disabled:
    """The transport of a disabled tracer: accepts nothing, counts nothing."""

    q: Any = type("_NoQueue", (), {"__len__": lambda self: 1, "append": lambda self, x: None})()
    maxsize = 0
    dropped = 0
    failed = 0

    def overflow(self, item: Any) -> None:
        pass


_DISABLED = _Disabled()
