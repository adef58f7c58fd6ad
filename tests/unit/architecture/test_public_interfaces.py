"""Unit tests go through public interfaces (issue #24): a unit test that reads or writes a
leading-underscore attribute of an agentstream object, or imports a private name or module of
agentstream, pins an implementation detail instead of a contract, and breaks on a refactor
that keeps every promise. The SDK and the sink give tests a public route (``InMemoryTransport``
with ``worker_thread=False``, ``Tracer.stats()``, ``Sink.commits``...).

Allowed: a test's own privates (``self._x`` of a class the test file defines, its ``_helper``
functions), other libraries' (``os._exit``, ``KafkaError._PURGE_QUEUE``), and the public names
of a private *module* - an accelerated core and its reference (``producer/_speedups``,
``stream_processors/_fieldreader*``) are compared by differential tests, and those names are
the module's interface to its package. What truly has no public route yet is in ``ALLOWED``, one entry per (file, name) with the reason; an entry that
is no longer needed fails the test too, so the list only shrinks."""
from __future__ import annotations

import ast
import functools
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
UNIT = ROOT / "tests" / "unit"
ACCESSORS = {"getattr", "setattr", "hasattr", "delattr"}

ALLOWED: dict[tuple[str, str], str] = {
    # white-box by nature: two implementations of one thing compared
    ("stream_processors/test_redaction_generated.py", "_prefilter"):
        "the Hyperscan prefilter against the re reference on the same texts; no public route "
        "reaches the prefilter alone (a miss and a hit both end in the full scan)",
    ("stream_processors/test_hot_path.py", "_walk"):
        "the fast path against the full walk on the same event; the full walk has no public "
        "entry of its own (stream processors' owner)",
}


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _is_module(package: str, name: str) -> bool:
    """Whether ``name`` in the agentstream package ``package`` is a module (or subpackage)."""
    folder = ROOT.joinpath(*package.split(".")[1:])
    return (folder / f"{name}.py").exists() or (folder / name).is_dir() \
        or any(folder.glob(f"{name}.*.so"))


def _root(node: ast.expr) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def _own_and_foreign(tree: ast.Module) -> tuple[set[str], set[str]]:
    """The private names the file defines on its own classes, and the names it imported from
    other libraries than agentstream."""
    own: set[str] = set()
    foreign: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for sub in ast.walk(node):
                if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    own.add(sub.name)
                elif isinstance(sub, ast.Attribute) and isinstance(sub.ctx, ast.Store) \
                        and isinstance(sub.value, ast.Name) and sub.value.id in ("self", "cls"):
                    own.add(sub.attr)
            for stmt in node.body:
                targets = stmt.targets if isinstance(stmt, ast.Assign) else \
                    [stmt.target] if isinstance(stmt, ast.AnnAssign) else []
                own.update(t.id for t in targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.Import):
            foreign.update((a.asname or a.name).split(".")[0] for a in node.names
                           if not a.name.startswith("agentstream"))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and not node.module.startswith("agentstream"):
            foreign.update(a.asname or a.name for a in node.names)
    return own, foreign


def private_uses(source: str) -> list[tuple[int, str]]:
    """(line, name) of every use of an agentstream private in a test's source."""
    tree = ast.parse(source)
    own, foreign = _own_and_foreign(tree)
    out: set[tuple[int, str]] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            base = node.value
            mine = isinstance(base, ast.Name) and base.id in ("self", "cls") and node.attr in own
            if not mine and _root(base) not in foreign:
                out.add((node.lineno, node.attr))
        elif isinstance(node, ast.Call) and isinstance(node.func, (ast.Name, ast.Attribute)):
            fn = node.func.id if isinstance(node.func, ast.Name) else node.func.attr
            arg = node.args[1] if len(node.args) >= 2 else None
            if fn in ACCESSORS and isinstance(arg, ast.Constant) and isinstance(arg.value, str) \
                    and _private(arg.value) and _root(node.args[0]) not in foreign:
                out.add((node.lineno, arg.value))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [node.module or ""] if isinstance(node, ast.ImportFrom) else \
                [a.name for a in node.names]
            for mod in modules:
                if isinstance(node, ast.ImportFrom) and mod.startswith("agentstream"):
                    out.update((node.lineno, a.name) for a in node.names
                               if _private(a.name) and not _is_module(mod, a.name))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and node.value.startswith("agentstream.") and node.value.isascii() \
                and " " not in node.value:
            # a dotted path, as monkeypatch.setattr("agentstream.x._y", ...) takes
            package, _, name = node.value.rpartition(".")
            if _private(name) and not _is_module(package, name):
                out.add((node.lineno, name))
    return sorted(out)


@functools.cache
def _uses_in_unit_tests() -> dict[tuple[str, str], list[int]]:
    found: dict[tuple[str, str], list[int]] = {}
    for path in sorted(UNIT.rglob("*.py")):
        rel = path.relative_to(UNIT).as_posix()
        for line, name in private_uses(path.read_text()):
            found.setdefault((rel, name), []).append(line)
    return found


def test_unit_tests_use_only_public_interfaces():
    found = _uses_in_unit_tests()
    bad = [f"tests/unit/{rel}:{lines[0]}: .{name}" for (rel, name), lines in sorted(found.items())
           if (rel, name) not in ALLOWED]
    assert not bad, ("unit tests reaching into agentstream's private state; go through a public "
                     "interface (or add one the users would want too):\n" + "\n".join(bad))


def test_the_allowlist_only_shrinks():
    stale = sorted(set(ALLOWED) - set(_uses_in_unit_tests()))
    assert not stale, f"no longer used, remove from ALLOWED: {stale}"
    assert all(len(reason) > 30 for reason in ALLOWED.values())


def _uses(snippet: str) -> list[str]:
    return sorted(name for _line, name in private_uses(textwrap.dedent(snippet)))


def test_the_guard_sees_every_way_into_private_state():
    assert _uses("""
        def test_x(tracer):
            q = tracer._transport.q
            tracer._pipeline.process(q.popleft())
    """) == ["_pipeline", "_transport"]
    assert _uses("""
        from agentstream.sink.service import Sink
        def test_x():
            s = Sink(None, client=object())
            s._consumer = object()
            s._assigned = set()
    """) == ["_assigned", "_consumer"]
    assert _uses("from agentstream.api.gateway.body import _inflate") == ["_inflate"]
    assert _uses("from agentstream.producer.tracer import _DISABLED, Tracer") == ["_DISABLED"]
    assert _uses("from agentstream.producer import _speedups as c\nc._private") == ["_private"]
    assert _uses("x = getattr(tracer, '_policy')") == ["_policy"]
    assert _uses("monkeypatch.setattr('agentstream.producer.tracer._DISABLED', None)") \
        == ["_DISABLED"]
    assert _uses("assert rig.metrics.records_in._value.get() == 1") == ["_value"]
    # a test class's own private is fine, but not a product private reached through self
    # (a subclass of a product class), nor a test class's private name reused on another object
    assert _uses("""
        class Fake(Transport):
            def __init__(self):
                self._n = 0
            def bump(self):
                self._n += 1
                return self._queue
        def test_x(sink):
            return sink._n
    """) == ["_n", "_queue"]


def test_the_guard_leaves_tests_own_and_other_libraries_privates_alone():
    assert _uses("""
        import os
        from confluent_kafka import KafkaError
        class Rec:
            _cache = None
            def __init__(self, o):
                self._o = o
            def offset(self):
                return self._o, self._cache, self._helper()
            def _helper(self):
                return cls.__name__
        def _drain(x):
            return x.__class__, x.__dict__
        def test_x():
            os._exit, KafkaError._PURGE_QUEUE, _drain(1)
    """) == []
    assert _uses("""
        import agentstream.producer._speedups
        from agentstream.producer import _speedups
        from agentstream.stream_processors._fieldreader_py import PyReader
        monkeypatch.setattr("agentstream.producer._speedups", None)
    """) == []
