"""What librdkafka hands a delivery report callback, for the tests' stand-in producers."""
from __future__ import annotations


class Err:
    """A delivery error (librdkafka's code; -192 is ``_MSG_TIMED_OUT``, -185 ``_TIMED_OUT``)."""

    def __init__(self, code: int = -192) -> None:
        self._code = code

    def code(self) -> int:
        return self._code

    def fatal(self) -> bool:
        return False


class Msg:
    def __init__(self, key: bytes, value: bytes) -> None:
        self._k, self._v = key, value

    def key(self) -> bytes:
        return self._k

    def value(self) -> bytes:
        return self._v
