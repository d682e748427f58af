"""The codec under arbitrary input: values round-trip, and bytes that are not an encoding
(random, a tagged tree with bodies of any shape, an encoding with a byte changed) are a
DecodeError, never another exception, whichever of decode, check and check_call reads
them. What check accepts, decode reads (or says, with a DecodeError, what it lacks).
"""

from __future__ import annotations

import datetime as dt

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from muscle_mem.codec import _DECODERS, check, check_call, decode, encode, encode_call
from muscle_mem.errors import DecodeError

from .common import rounds

EXAMPLES = rounds(150, 3_000)

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=8),
    st.binary(max_size=8),
    st.dates(),
    st.datetimes(timezones=st.none() | st.just(dt.timezone.utc)).map(lambda d: d.replace(fold=0)),
    st.timedeltas(),
    st.decimals(allow_nan=False),
    st.uuids(),
)
_keys = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5)),
    lambda inner: st.tuples(inner, inner) | st.frozensets(inner, max_size=3),
    max_leaves=4,
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.tuples(inner, inner),
        st.dictionaries(st.text(max_size=4), inner, max_size=3),
        st.dictionaries(_keys, inner, max_size=3),
        st.sets(_keys, max_size=3),
    ),
    max_leaves=12,
)


def _same(a, b):
    """Equality that counts NaN as equal to itself and keeps 1 apart from True."""
    if isinstance(a, float) and isinstance(b, float) and a != a:
        return b != b
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


@settings(max_examples=EXAMPLES, deadline=None)
@given(_values)
def test_values_round_trip_and_their_encodings_check(value):
    data = encode(value)
    check(data)
    assert _same(decode(data), value)
    assert encode(decode(data)) == data


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.lists(_values, max_size=3), st.dictionaries(st.text(max_size=4), _values, max_size=3))
def test_calls_round_trip_in_the_order_they_were_passed(args, kwargs):
    call = (tuple(args), kwargs)
    data = encode_call(call)
    check_call(data)
    back = decode(data)
    assert _same(back, call) and list(back[1]) == list(kwargs)


def _only_decode_errors(data):
    readers = (decode, check, lambda d: check(d, ordered=True), check_call)
    failed: dict[object, DecodeError] = {}
    for read in readers:
        try:
            read(data)
        except DecodeError as error:
            failed[read] = error
    if check not in failed and decode in failed:
        # What check passes, decode reads, unless it needs what this process lacks or a
        # set holds a tuple of lists (which check, walking without building, can't see).
        error = failed[decode]
        assert error.missing or "unhashable" in str(error), error


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.binary(max_size=64))
def test_any_bytes_are_read_or_are_a_decode_error(data):
    _only_decode_errors(data)


_tags = st.sampled_from([*_DECODERS, "v", "f", "shape", "data", "torch", "zz"])
_json = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=6),
        st.sampled_from(["2024-01-01", "12:00", "nan", "mod:Name", "AAAA", "<i4", "1.5"]),
    ),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(_tags | st.text(max_size=3), inner, min_size=1, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=EXAMPLES, deadline=None)
@given(_json)
def test_any_tagged_tree_is_read_or_is_a_decode_error(tree):
    _only_decode_errors(msgspec.json.encode(tree))


@settings(max_examples=EXAMPLES, deadline=None)
@given(_values, st.data())
def test_an_encoding_with_a_byte_changed_is_read_or_is_a_decode_error(value, data):
    encoded = bytearray(encode_call(((value,), {"k": value})))
    at = data.draw(st.integers(0, len(encoded) - 1))
    encoded[at] = data.draw(st.integers(0, 255))
    _only_decode_errors(bytes(encoded))
