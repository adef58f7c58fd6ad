"""Session-wide real components: one embedded broker and one chDB directory per test process.

chDB allows one data directory per process, so every in-process ClickHouse test shares
``chdb_client``; tests isolate themselves with their own tenant ids and run ids, not tables.
"""
from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import pytest

if TYPE_CHECKING:
    from agentstream.cli.embedded_broker import EmbeddedBroker


# The longest files start first, so that under `make test`'s workers (pytest-xdist, one file per
# worker at a time) none of them is left running alone at the end. Longest-first, by wall time
# seen in `--durations`; a file missing here only starts later.
LONG_FIRST = (
    "integration/test_sink_exactly_once.py", "ci/test_lint_and_types.py",
    "integration/test_processors_redaction.py", "integration/test_stack_lifecycle.py",
    "integration/test_sink_events.py", "integration/test_processors_detectors.py",
    "integration/test_many_workers.py", "integration/test_producer_outage.py",
    "integration/test_e2e_bench.py", "integration/test_processors_errors.py",
    "integration/test_demo.py", "integration/test_detection_scenarios.py",
)


def _start_rank(item: pytest.Item) -> int:
    path = item.nodeid.split("::", 1)[0]
    for i, tail in enumerate(LONG_FIRST):
        if path.endswith(tail):
            return i
    return len(LONG_FIRST) + (0 if "/integration/" in path else 1 if "/browser/" in path else 2)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=_start_rank)  # stable: the order inside a file is kept


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator["EmbeddedBroker"]:
    from agentstream.cli.embedded_broker import EmbeddedBroker

    log = tmp_path_factory.mktemp("broker") / "tansu.log"
    b = EmbeddedBroker(log_path=str(log)).start()
    yield b
    b.stop()


@pytest.fixture(scope="session")
def bootstrap(broker) -> str:
    return broker.bootstrap_servers


@pytest.fixture(scope="session")
def topic_prefix(bootstrap: str) -> str:
    """The catalog's topics, created once under a session prefix."""
    from agentstream.schemas.topics import create_topics

    prefix = "t" + uuid.uuid4().hex[:6] + "."
    create_topics(bootstrap, prefix=prefix, partitions=4)
    return prefix


@pytest.fixture(scope="session")
def chdb_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("chdb") / "data"


@pytest.fixture(scope="session")
def chdb_client(chdb_path: Path):
    import clickhouse_connect

    return clickhouse_connect.get_client(dsn=f"chdb://{chdb_path}")


@pytest.fixture
def unique() -> str:
    """A short unique suffix for tenant ids, run ids and consumer groups in one test."""
    return uuid.uuid4().hex[:10]
