"""Avro binary primitives for the parts that read or write framed records without fastavro
(the sink's containers, the processors' summary patch, the API's RowBinary reader): long
encoding and decoding."""
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


def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """(value, position after it) of the unsigned LEB128 varint at ``pos``: Avro's long before its
    zigzag, and ClickHouse RowBinary's lengths and counts."""
    shift = result = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")


def read_long(buf: bytes, pos: int) -> tuple[int, int]:
    """(value, position after it) of the Avro long at ``pos``."""
    n, pos = read_varint(buf, pos)
    return (n >> 1) ^ -(n & 1), pos
