"""LLM cost from a maintained price table (``prices.json``), overridable per deployment.

Token semantics follow the OpenTelemetry GenAI conventions: ``input_tokens`` counts every input
token, cached ones included; ``cache_read_tokens`` and ``cache_write_tokens`` are the parts of it
billed at the cache rates. (Anthropic reports cache tokens outside ``input_tokens``; the
instrumentation adds them in before calling ``cost``.)
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any, Mapping

# Names seen in gen_ai.provider.name / gen_ai.system mapped to the table's provider keys.
PROVIDER_ALIASES = {"azure.ai.openai": "openai", "azure_openai": "openai", "gemini": "gcp.gemini",
                    "google": "gcp.gemini", "gcp.vertex_ai": "gcp.gemini",
                    "aws.bedrock": "anthropic"}


@dataclass(frozen=True)
class Price:
    input: float
    output: float
    cache_read: float = 0.0
    cache_write: float = 0.0


class PriceTable:
    def __init__(self, table: Mapping[str, Mapping[str, Mapping[str, float]]]) -> None:
        self._table = {p: {m: Price(**{k: float(v) for k, v in price.items()})
                           for m, price in models.items()} for p, models in table.items()}
        self._cache: dict[tuple[str, str], Price | None] = {}

    @classmethod
    def load(cls, path: str | None = None, overrides: Mapping[str, Any] | None = None
             ) -> "PriceTable":
        """The bundled table, then the file at ``path``, then ``overrides`` (later wins)."""
        bundled = json.loads(resources.files(__package__).joinpath("prices.json").read_text())
        table: dict[str, dict[str, Any]] = {p: dict(m) for p, m in bundled["providers"].items()}
        extra: list[Mapping[str, Any]] = []
        if path:
            with open(path) as f:
                data = json.load(f)
            extra.append(data.get("providers", data))
        if overrides:
            extra.append(overrides.get("providers", overrides))
        for ov in extra:
            for provider, models in ov.items():
                table.setdefault(provider, {}).update(models)
        return cls(table)

    def lookup(self, provider: str, model: str) -> Price | None:
        key = (provider, model)
        try:
            return self._cache[key]
        except KeyError:
            pass
        p = PROVIDER_ALIASES.get(provider, provider)
        candidates = [self._table.get(p, {})] + [m for q, m in self._table.items() if q != p]
        found = None
        for models in candidates:
            best = max((name for name in models if model.startswith(name)), key=len, default=None)
            if best is not None:
                found = models[best]
                break
        self._cache[key] = found
        return found

    def cost(self, provider: str, model: str, input_tokens: int, output_tokens: int,
             cache_read_tokens: int = 0, cache_write_tokens: int = 0) -> float | None:
        # (once per model call on the agent's thread: the cache hit and the clamp inline)
        try:
            price = self._cache[provider, model]
        except KeyError:
            price = self.lookup(provider, model)
        if price is None:
            return None
        uncached = input_tokens - cache_read_tokens - cache_write_tokens
        if uncached < 0:
            uncached = 0
        return (uncached * price.input + output_tokens * price.output
                + cache_read_tokens * price.cache_read
                + cache_write_tokens * price.cache_write) / 1_000_000
