"""LLM cost for OTLP spans that carry tokens but no cost: a price table, overridable per site.

Prices are USD per million tokens. OpenTelemetry's ``gen_ai.usage.input_tokens`` counts cached
tokens too, so cached reads and writes are taken out of the input count and priced at their
own rates. Models match exactly, else by the longest known prefix, so dated snapshots
(``gpt-4o-mini-2024-07-18``) find their family.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Price:
    input: float
    output: float
    cache_read: float | None = None  # None: priced as input
    cache_write: float | None = None


DEFAULT_PRICES: dict[str, Price] = {
    "gpt-4o": Price(2.50, 10.00, 1.25),
    "gpt-4o-mini": Price(0.15, 0.60, 0.075),
    "gpt-4.1": Price(2.00, 8.00, 0.50),
    "gpt-4.1-mini": Price(0.40, 1.60, 0.10),
    "gpt-4.1-nano": Price(0.10, 0.40, 0.025),
    "o3": Price(2.00, 8.00, 0.50),
    "o4-mini": Price(1.10, 4.40, 0.275),
    "text-embedding-3-small": Price(0.02, 0.0),
    "text-embedding-3-large": Price(0.13, 0.0),
    "claude-opus-4": Price(15.00, 75.00, 1.50, 18.75),
    "claude-sonnet-4": Price(3.00, 15.00, 0.30, 3.75),
    "claude-3-7-sonnet": Price(3.00, 15.00, 0.30, 3.75),
    "claude-3-5-sonnet": Price(3.00, 15.00, 0.30, 3.75),
    "claude-3-5-haiku": Price(0.80, 4.00, 0.08, 1.00),
    "claude-haiku-4": Price(1.00, 5.00, 0.10, 1.25),
    "gemini-2.5-pro": Price(1.25, 10.00, 0.31),
    "gemini-2.5-flash": Price(0.30, 2.50, 0.075),
    "gemini-2.0-flash": Price(0.10, 0.40, 0.025),
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
            for model, p in doc.items():
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
            if m == name or m.startswith(name + "-") or m.startswith(name + "@"):
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


def _opt(v: object) -> float | None:
    return None if v is None else float(v)  # type: ignore[arg-type]
