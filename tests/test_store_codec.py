"""The store's array / text encodings round-trip exactly (property tests)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects import postgresql, sqlite

from tether.errors import StoreError
from tether.store.codec import pack_floats, pack_ints, unpack_floats, unpack_ints
from tether.store.tables import SafeText

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)


@given(st.lists(INT64, max_size=200))
def test_ints_round_trip(values: list[int]) -> None:
    assert unpack_ints(pack_ints(values)) == values


@given(st.lists(st.integers(min_value=0, max_value=1), min_size=1, max_size=100))
def test_masks_take_one_byte_each(mask: list[int]) -> None:
    assert len(pack_ints(mask)) == 1 + len(mask)


@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=200))
def test_floats_round_trip_bit_for_bit(values: list[float]) -> None:
    back = unpack_floats(pack_floats(values))
    assert [struct.pack("<d", v) for v in back] == [struct.pack("<d", v) for v in values]


def test_out_of_range_and_corrupt_data_raise_store_error() -> None:
    with pytest.raises(StoreError):
        pack_ints([2**63])
    with pytest.raises(StoreError):
        unpack_ints(b"\x03abc")
    with pytest.raises(StoreError):
        unpack_floats(b"\x01abcdefgh")


@given(st.one_of(st.text(), st.just("\x01J"), st.just("\x01J{}"), st.text().map(lambda t: "\x00" + t)))
def test_safe_text_round_trips_and_never_stores_nul(value: str) -> None:
    col = SafeText()
    for dialect in (sqlite.dialect(), postgresql.dialect()):
        stored = col.process_bind_param(value, dialect)
        assert stored is not None and "\x00" not in stored
        assert col.process_result_value(stored, dialect) == value
