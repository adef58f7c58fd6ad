"""Type stub for the optional C extension ``_wirecore.c`` (the transport's Event v2 encoder)."""
from typing import Any

def encode_event(pre: bytes, middle: bytes, id_base: bytes, tail: bytes, seq: int, ts_us: int,
                 emitted_us: int, parent_step_id: str | None, attributes: dict[str, Any] | None,
                 kind_prefix: bytes, step: tuple[Any, ...] | None, body: bytes | None, /
                 ) -> bytes | None: ...
