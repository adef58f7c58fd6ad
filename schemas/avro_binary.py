"""Avro binary primitives for the parts that read or write framed records without fastavro
(the sink's containers, the processors' summary patch): long encoding and decoding."""
from __future__ import annotations


def encode_long(n: int) -> bytes:
    """Avro's long/int encoding: zigzag, then little-endian base-128 varint."""
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def read_long(buf: bytes, pos: int) -> tuple[int, int]:
    """(value, position after it) of the Avro long at ``pos``."""
    shift = result = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return (result >> 1) ^ -(result & 1), pos
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")
