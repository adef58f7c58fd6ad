"""One librdkafka producer per process and configuration, shared by every tracer's delivery.

A multi-tenant agent service makes a ``Tracer`` per (tenant, agent): hundreds in one process.
With a producer each, every tracer keeps its own librdkafka threads and broker connections, and
splits the process's traffic into its own batches: 12 tracers at 10k events/s made ~12x the
produce requests and stored batches of one, and the embedded broker's cost goes with the
batches it keeps (bench/RESULTS.md). Sharing one handle, the batches of a partition carry every
tracer's records.

What stays per tracer: its queue, its worker thread, its delivery state (online, offline,
replaying) and its spool. What a delivery must do because the handle is shared
(``transport_delivery.Delivery``):

- pass its own ``on_delivery`` with each record, so a report reaches its owner whichever
  thread's ``poll`` serves it;
- count its own records in flight, and wait for those (not for the handle's whole queue, which
  other tracers keep filling) in ``flush``;
- never ``purge`` a handle others still use: the last owner to leave does;
- poll it only if it is the handle's poller (``polls``): one owner's thread serves every
  report. With every owner polling, each report took the GIL back on a thread contended by all
  the others: 12 tracers spent ~4 µs more per record in their transport threads.

A broker error (all brokers down, a fatal producer error) goes to every owner. An owner that
comes back online after an outage asks for a fresh handle (``replace``): the broker may have
forgotten the idempotent producer's state. Owners still on the old handle move when they
recover in turn.
"""
from __future__ import annotations

import os
import threading
import weakref
from typing import Any, Callable

# Conf entries that are per owner (callbacks) or not comparable; the rest decide who shares.
_NOT_IN_KEY = ("error_cb", "on_delivery", "logger", "stats_cb", "throttle_cb")


class _Shared:
    """One handle and the deliveries using it."""

    def __init__(self, key: tuple, factory: Callable[[dict[str, Any]], Any], conf: dict[str, Any]) -> None:
        self.key = key
        self.owners: weakref.WeakSet[Any] = weakref.WeakSet()
        self.handle = factory({**conf, "error_cb": self.on_error})
        self._poller: weakref.ref[Any] | None = None

    def add(self, owner: Any) -> None:
        self.owners.add(owner)
        if self.poller() is None:
            self._poller = weakref.ref(owner)

    def discard(self, owner: Any) -> None:
        self.owners.discard(owner)
        if self.poller() is owner or self.poller() is None:
            rest = list(self.owners)
            self._poller = weakref.ref(rest[0]) if rest else None

    def poller(self) -> Any:
        return self._poller() if self._poller is not None else None

    def on_error(self, err: Any) -> None:
        """librdkafka's error callback, on whichever thread polled: every owner hears it."""
        for owner in list(self.owners):
            owner.broker_error(err)


class ProducerPool:
    """The process's shared handles, by configuration (and factory, so tests stay apart).

    Held weakly: a handle lives as long as a delivery produces with it (its error callback
    keeps its ``_Shared``), so tracers dropped without ``close`` do not leave it behind."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: weakref.WeakValueDictionary[tuple, _Shared] = weakref.WeakValueDictionary()
        self._by_handle: weakref.WeakValueDictionary[int, _Shared] = weakref.WeakValueDictionary()

    @staticmethod
    def key(conf: dict[str, Any], factory: Callable[..., Any]) -> tuple:
        return (factory,) + tuple(sorted((k, repr(v)) for k, v in conf.items() if k not in _NOT_IN_KEY))

    def _new(self, k: tuple, factory: Callable[..., Any], conf: dict[str, Any]) -> _Shared:
        shared = self._current[k] = _Shared(k, factory, conf)
        self._by_handle[id(shared.handle)] = shared
        return shared

    def acquire(self, owner: Any, conf: dict[str, Any], factory: Callable[..., Any]) -> Any:
        """The handle ``owner`` produces with; created on the first call for ``conf``."""
        k = self.key(conf, factory)
        with self._lock:
            shared = self._current.get(k) or self._new(k, factory, conf)
            shared.add(owner)
            return shared.handle

    def replace(self, owner: Any, old: Any, conf: dict[str, Any], factory: Callable[..., Any]) -> Any:
        """``owner`` leaves ``old``; a fresh handle if ``old`` is still the current one for
        ``conf`` (another owner may have replaced it already: then that one)."""
        k = self.key(conf, factory)
        with self._lock:
            was = self._by_handle.get(id(old))
            if was is not None:
                was.discard(owner)
            shared = self._current.get(k)
            if shared is None or shared is was:
                shared = self._new(k, factory, conf)
            shared.add(owner)
            return shared.handle

    def release(self, owner: Any, handle: Any) -> bool:
        """``owner`` is done with ``handle``; True when nobody else uses it (the caller may
        then purge and drop it)."""
        with self._lock:
            shared = self._by_handle.get(id(handle))
            if shared is None:
                return True
            shared.discard(owner)
            if shared.owners:
                return False
            del self._by_handle[id(handle)]
            if self._current.get(shared.key) is shared:
                del self._current[shared.key]
            return True

    def polls(self, owner: Any, handle: Any) -> bool:
        """Whether ``owner`` is the one to poll ``handle`` (read without the lock; a handle the
        pool does not know is its owner's to poll)."""
        shared = self._by_handle.get(id(handle))
        return shared is None or shared.poller() is owner

    def owners(self, handle: Any) -> int:
        with self._lock:
            shared = self._by_handle.get(id(handle))
            return len(shared.owners) if shared is not None else 0

    def forget(self) -> None:
        """After ``fork()``, in the child: the parent's handles are not ours (their threads did
        not survive); each delivery keeps its old one alive, unused (``forget_after_fork``)."""
        self._lock = threading.Lock()
        self._current = weakref.WeakValueDictionary()
        self._by_handle = weakref.WeakValueDictionary()


POOL = ProducerPool()
os.register_at_fork(after_in_child=POOL.forget)
