"""Compact, exact encodings for what the SQL store keeps in its columns.

- Integer arrays (token ids, loss masks) are packed little-endian with the narrowest
  signed width that holds every value (1, 2, 4 or 8 bytes), behind a one-byte tag.
- Float arrays (logprobs) are packed as little-endian IEEE-754 doubles, so Python
  floats come back bit for bit (``-0.0``, ``inf`` and NaN payloads included).
- JSON text keeps ``NaN``/``Infinity`` (metrics can be NaN), unlike JSONB.
- Datetimes are stored in UTC; naive datetimes are taken to be UTC.

Every function raises ``StoreError`` on data it cannot encode or decode.
"""

from __future__ import annotations

import json
import sys
from array import array
from datetime import UTC, datetime
from typing import Any

from tether.errors import StoreError

_LITTLE = sys.byteorder == "little"
# tag byte -> array typecode; the codes with these item sizes on every supported platform
_INT_CODES: dict[int, str] = {1: "b", 2: "h", 4: "i", 8: "q"}
_INT_TAGS: dict[str, int] = {"b": 1, "h": 2, "i": 4, "q": 8}
_FLOAT_TAG = 0x64  # 'd'


def _to_le(a: array) -> bytes:  # type: ignore[type-arg]
    if not _LITTLE:
        a.byteswap()
    return a.tobytes()


def pack_ints(values: list[int]) -> bytes:
    """Pack a list of ints (each within signed 64 bits); ``[]`` packs to ``b""``."""
    if not values:
        return b""
    lo, hi = min(values), max(values)
    if lo >= -(2**7) and hi < 2**7:
        code = "b"
    elif lo >= -(2**15) and hi < 2**15:
        code = "h"
    elif lo >= -(2**31) and hi < 2**31:
        code = "i"
    elif lo >= -(2**63) and hi < 2**63:
        code = "q"
    else:
        raise StoreError("An integer array holds a value that does not fit in 64 bits.")
    return bytes((_INT_TAGS[code],)) + _to_le(array(code, values))


def unpack_ints(data: bytes | None) -> list[int]:
    """Inverse of ``pack_ints``."""
    if not data:
        return []
    code = _INT_CODES.get(data[0])
    if code is None:
        raise StoreError(f"Corrupt integer array in the store (tag {data[0]}).")
    a = array(code)
    a.frombytes(memoryview(data)[1:])
    if not _LITTLE:
        a.byteswap()
    return a.tolist()


def pack_floats(values: list[float]) -> bytes:
    """Pack a list of floats as little-endian doubles; ``[]`` packs to ``b""``."""
    if not values:
        return b""
    return bytes((_FLOAT_TAG,)) + _to_le(array("d", values))


def unpack_floats(data: bytes | None) -> list[float]:
    """Inverse of ``pack_floats``."""
    if not data:
        return []
    if data[0] != _FLOAT_TAG:
        raise StoreError(f"Corrupt float array in the store (tag {data[0]}).")
    a = array("d")
    a.frombytes(memoryview(data)[1:])
    if not _LITTLE:
        a.byteswap()
    return a.tolist()


def dumps(value: Any) -> str:
    """JSON text, compact, NaN/inf allowed, unicode kept as is."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=True)


def loads(text: str | None) -> Any:
    """Inverse of ``dumps``; ``None`` stays ``None``."""
    return None if text is None else json.loads(text)


def to_utc(value: datetime) -> datetime:
    """The same instant as an aware UTC datetime (naive input is taken to be UTC)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
