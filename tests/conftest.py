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
