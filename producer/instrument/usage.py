"""Provider usage objects normalised to OTel GenAI token semantics."""
from __future__ import annotations

from typing import Any


def _get(obj: Any, name: str, default: Any = 0) -> Any:
    if obj is None:
        return default
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def normalise_usage(usage: Any, model: str | None = None) -> dict[str, Any]:
    """input_tokens includes cached tokens; cache_read/cache_write are the cached parts."""
    if _get(usage, "prompt_tokens", None) is not None:  # OpenAI chat completions
        details = _get(usage, "prompt_tokens_details", None)
        return {"input_tokens": int(_get(usage, "prompt_tokens") or 0),
                "output_tokens": int(_get(usage, "completion_tokens") or 0),
                "cache_read_tokens": int(_get(details, "cached_tokens") or 0),
                "cache_write_tokens": 0, "response_model": model}
    cache_read = int(_get(usage, "cache_read_input_tokens") or 0)
    cache_write = int(_get(usage, "cache_creation_input_tokens") or 0)
    details = _get(usage, "input_tokens_details", None)
    if details is not None:  # OpenAI Responses API: input_tokens already includes cached
        return {"input_tokens": int(_get(usage, "input_tokens") or 0),
                "output_tokens": int(_get(usage, "output_tokens") or 0),
                "cache_read_tokens": int(_get(details, "cached_tokens") or 0),
                "cache_write_tokens": 0, "response_model": model}
    # Anthropic: input_tokens excludes the cache reads and writes; add them in.
    return {"input_tokens": int(_get(usage, "input_tokens") or 0) + cache_read + cache_write,
            "output_tokens": int(_get(usage, "output_tokens") or 0),
            "cache_read_tokens": cache_read, "cache_write_tokens": cache_write,
            "response_model": model}
