"""Kafka ``events``/``alerts`` -> ClickHouse, exactly once in query results.

Library entry (the embedded launcher runs it in the same process as the API)::

    from agentstream.sink import Sink, SinkSettings, apply_migrations, make_client
    sink = Sink(SinkSettings(...), client=None).start()   # or sink.run(stop_event)
    sink.health(); sink.stop()
"""
from .settings import SinkSettings
from .storage import apply_migrations, make_client
from .service import Sink

__all__ = ["Sink", "SinkSettings", "apply_migrations", "make_client"]
