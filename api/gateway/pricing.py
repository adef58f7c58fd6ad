"""LLM cost for OTLP spans that carry tokens but no cost: a price table, overridable per site.

Prices are USD per million tokens. OpenTelemetry's ``gen_ai.usage.input_tokens`` counts cached
tokens too, so cached reads and writes are taken out of the input count and priced at their
own rates. Models match exactly, else by the longest known prefix, so dated snapshots
(``gpt-4o-mini-2024-07-18``) find their family. Override files use either a flat
``{"model": {"input", "output", "cache_read", "cache_write"}}`` or the SDK's
``{"providers": {"openai": {"model": {...}}}}`` layout, so one file can serve both.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Price:
    input: float
    output: float
    cache_read: float | None = None  # None: priced as input
    cache_write: float | None = None  # None: priced as input


# Same figures as the SDK's table (producer/prices.json, updated 2025-11-01), so a run costs the
# same whichever way it came in. USD per million tokens.
DEFAULT_PRICES: dict[str, Price] = {
    # openai
    "gpt-5-nano": Price(0.05, 0.4, 0.005, 0.0),
    "gpt-5-mini": Price(0.25, 2.0, 0.025, 0.0),
    "gpt-5": Price(1.25, 10.0, 0.125, 0.0),
    "gpt-4.1-nano": Price(0.1, 0.4, 0.025, 0.0),
    "gpt-4.1-mini": Price(0.4, 1.6, 0.1, 0.0),
    "gpt-4.1": Price(2.0, 8.0, 0.5, 0.0),
    "gpt-4o-mini": Price(0.15, 0.6, 0.075, 0.0),
    "gpt-4o": Price(2.5, 10.0, 1.25, 0.0),
    "gpt-4-turbo": Price(10.0, 30.0, 10.0, 0.0),
    "gpt-3.5-turbo": Price(0.5, 1.5, 0.5, 0.0),
    "o4-mini": Price(1.1, 4.4, 0.275, 0.0),
    "o3-mini": Price(1.1, 4.4, 0.55, 0.0),
    "o3": Price(2.0, 8.0, 0.5, 0.0),
    "o1-mini": Price(1.1, 4.4, 0.55, 0.0),
    "o1": Price(15.0, 60.0, 7.5, 0.0),
    "text-embedding-3-small": Price(0.02, 0.0, 0.02, 0.0),
    "text-embedding-3-large": Price(0.13, 0.0, 0.13, 0.0),
    # anthropic
    "claude-opus-4-5": Price(5.0, 25.0, 0.5, 6.25),
    "claude-opus-4": Price(15.0, 75.0, 1.5, 18.75),
    "claude-sonnet-4": Price(3.0, 15.0, 0.3, 3.75),
    "claude-haiku-4-5": Price(1.0, 5.0, 0.1, 1.25),
    "claude-3-7-sonnet": Price(3.0, 15.0, 0.3, 3.75),
    "claude-3-5-sonnet": Price(3.0, 15.0, 0.3, 3.75),
    "claude-3-5-haiku": Price(0.8, 4.0, 0.08, 1.0),
    "claude-3-opus": Price(15.0, 75.0, 1.5, 18.75),
    "claude-3-haiku": Price(0.25, 1.25, 0.03, 0.3),
    # gcp.gemini
    "gemini-2.5-pro": Price(1.25, 10.0, 0.31, 0.0),
    "gemini-2.5-flash-lite": Price(0.1, 0.4, 0.025, 0.0),
    "gemini-2.5-flash": Price(0.3, 2.5, 0.075, 0.0),
    "gemini-2.0-flash": Price(0.1, 0.4, 0.025, 0.0),
}


class PriceTable:
    def __init__(self, prices: dict[str, Price] | None = None) -> None:
        self.prices = dict(DEFAULT_PRICES if prices is None else prices)
        self._by_len = sorted(self.prices, key=len, reverse=True)

    @classmethod
    def load(cls, override_file: str | None) -> "PriceTable":
        prices = dict(DEFAULT_PRICES)
        if override_file:
            doc = json.loads(Path(override_file).read_text())
            flat = {m: p for models in doc["providers"].values() for m, p in models.items()} \
                if isinstance(doc.get("providers"), dict) else doc
            for model, p in flat.items():
                if not isinstance(p, dict):
                    continue  # "doc", "updated" and other notes
                prices[model] = Price(float(p["input"]), float(p["output"]),
                                      _opt(p.get("cache_read")), _opt(p.get("cache_write")))
        return cls(prices)

    def find(self, model: str | None) -> Price | None:
        if not model:
            return None
        m = model.lower()
        if m in self.prices:
            return self.prices[m]
        m = m.rsplit("/", 1)[-1]  # "openai/gpt-4o", "models/gemini-2.5-pro"
        for name in self._by_len:
            if m.startswith(name):
                return self.prices[name]
        return None

    def cost(self, models: tuple[str | None, ...], input_tokens: int, output_tokens: int,
             cache_read: int = 0, cache_write: int = 0) -> float | None:
        """USD for one call, or None when no model of ``models`` has a price."""
        price = next((p for p in map(self.find, models) if p is not None), None)
        if price is None:
            return None
        plain = max(0, input_tokens - cache_read - cache_write)
        usd = (plain * price.input + output_tokens * price.output
               + cache_read * (price.input if price.cache_read is None else price.cache_read)
               + cache_write * (price.input if price.cache_write is None else price.cache_write))
        return round(usd / 1_000_000, 10)


def _opt(v: Any) -> float | None:
    """An optional price from the JSON file: float() refuses what is not a number, as for input."""
    return None if v is None else float(v)
