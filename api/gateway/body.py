"""Reads a request body within the size limit, before and after decompression."""
from __future__ import annotations

import zlib

from starlette.requests import Request

from .errors import GatewayError


def too_large(limit: int, what: str = "request body") -> GatewayError:
    return GatewayError(413, "payload_too_large", f"{what} exceeds {limit} bytes",
                        {"max_body_bytes": limit})


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise too_large(limit)  # refused before reading a byte of it
        except ValueError:
            raise GatewayError(400, "invalid_request", "Content-Length is not a number") from None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    body = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding in ("gzip", "deflate"):
        return _inflate(body, limit, gzip=encoding == "gzip")
    raise GatewayError(415, "unsupported_encoding", f"Content-Encoding {encoding!r} is not "
                       "supported; use gzip, deflate or none")


def _inflate(body: bytes, limit: int, gzip: bool) -> bytes:
    """The body decompressed, all of it or a 4xx: one gzip member (or zlib stream) ending in its
    checksum, nothing after it. A decompressor stops at the first member's end and keeps the
    rest aside (``unused_data``), and a stream cut short decompresses as far as it goes without
    an error: both were accepted as if whole, a second member or trailing bytes ignored."""
    what = "gzip" if gzip else "deflate"
    # The limit applies to the decompressed size too: a small bomb must not become a big body.
    d = zlib.decompressobj(wbits=31 if gzip else 15)
    try:
        out = d.decompress(body, limit + 1)
        if len(out) > limit or d.unconsumed_tail:
            raise too_large(limit, "decompressed request body")
        out += d.flush()
    except zlib.error:
        # zlib's text ("invalid distance too far back") helps no client: say what is wrong
        raise GatewayError(400, "malformed_body", f"body is not valid {what}: its compressed "
                           "data is corrupt") from None
    if not d.eof:
        raise GatewayError(400, "malformed_body", f"body is not valid {what}: the compressed "
                           "stream is truncated (no end of stream or checksum)")
    if d.unused_data:
        raise GatewayError(400, "malformed_body", f"body is not valid {what}: "
                           f"{len(d.unused_data)} bytes follow the end of the compressed stream "
                           "(send one member, with nothing after it)")
    if len(out) > limit:
        raise too_large(limit, "decompressed request body")
    return out
