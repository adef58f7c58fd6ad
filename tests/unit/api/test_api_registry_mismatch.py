"""The query API's Kafka paths with a Schema Registry that does not hold agentstream's ids:
a clear 503 naming the mismatch, never records framed with the registry's other ids."""
from __future__ import annotations

import pytest

from agentstream.api.errors import ApiError
from agentstream.api.kafka_io import KafkaWriter, PoliciesTail
from agentstream.api.settings import ApiSettings


@pytest.mark.parametrize("kind", [KafkaWriter, PoliciesTail])
def test_a_registry_without_the_built_in_ids_is_a_503(kind):
    # Confluent's in-memory mock registry starts empty: no built-in id is there
    settings = ApiSettings(bootstrap_servers="127.0.0.1:1", schema_registry_url="mock://api-mismatch")
    with pytest.raises(ApiError) as err:
        kind(settings)
    assert err.value.status == 503 and err.value.code == "schema_registry_mismatch"
    assert "agentstream schemas register" in str(err.value.message)
