"""Values as data: the canonical codec, and tools called with arguments of any shape.

Tiers (see conftest): the encode/decode tests need no store and run once; the tests
through an engine (tools and checks called with data of every shape) run on every store
kind, since each store keeps the encoded bytes its own way.
"""

import dataclasses
import datetime as dt
import decimal
import enum
import math
import os
import subprocess
import sys
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import muscle_mem
from muscle_mem import Check
from muscle_mem.codec import MAX_DEPTH, check, check_call, decode, encode, encode_call
from muscle_mem.errors import DecodeError


class Color(enum.Enum):
    RED = "red"
    BLUE = (0, 0, 255)


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: float


@dataclasses.dataclass
class Shape:
    name: str
    points: list
    color: Color = Color.RED
    meta: dict = dataclasses.field(default_factory=dict)


def typed(value):
    """A value's structure with its types spelled out, so that ``True`` is not ``1``.

    Dicts and sets become sorted lists, so the order of insertion does not count.
    """
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, [typed(v) for v in value])
    if isinstance(value, dict):
        return ("dict", sorted((repr(typed(k)), repr(typed(v))) for k, v in value.items()))
    if isinstance(value, (set, frozenset)):
        return (type(value).__name__, sorted(repr(typed(v)) for v in value))
    if dataclasses.is_dataclass(value):
        fields = {f.name: typed(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return (type(value).__qualname__, fields)
    if isinstance(value, float) and math.isnan(value):
        return ("float", "nan")
    return (type(value).__qualname__, repr(value))


def assert_round_trip(value):
    data = encode(value)
    assert isinstance(data, bytes)
    back = decode(data)
    assert typed(back) == typed(value)
    assert encode(back) == data


ROUND_TRIPS = [
    None,
    True,
    False,
    0,
    -1,
    2**80,
    1.5,
    -0.0,
    1e300,
    5e-324,
    float("inf"),
    float("-inf"),
    "",
    "héllo wörld ✓ 日本",
    '{"p": "name"}',  # text that looks like a tag stays text
    b"",
    b"\x00\xff binary",
    [],
    [1, "a", None, [2.5, [True]]],
    (),
    (1,),
    (1, (2, [3, (4,)])),
    {},
    {"a": 1, "b": [None]},
    {"t": [1], "d": {"p": "x"}, "m": ()},  # keys that are also tag names
    {1: "a", "b": 2, (1, 2): None, None: 0, frozenset({3}): 1.5, 2.5: True, False: b"x"},
    set(),
    {1, 2, "three", (4, 5), None},
    frozenset(),
    frozenset({"a", 1.5}),
    {frozenset({1}), frozenset()},
    [{"nested": ({1, 2}, frozenset({(3,)}))}, ((), [], {})],
    dt.datetime(2024, 2, 29, 13, 45, 1, 123456),
    dt.datetime(2024, 2, 29, 13, 45, tzinfo=dt.timezone(dt.timedelta(hours=-5, minutes=-30))),
    dt.date(1999, 12, 31),
    dt.time(23, 59, 59, 999999),
    dt.time(1, 2, tzinfo=dt.timezone.utc),
    dt.timedelta(days=-3, seconds=5, microseconds=7),
    dt.timedelta(0),
    decimal.Decimal("1.10"),
    decimal.Decimal("-0.000"),
    decimal.Decimal("1E+30"),
    decimal.Decimal("Infinity"),
    uuid.UUID("12345678-1234-5678-1234-567812345678"),
    Color.RED,
    Color.BLUE,
    Level.HIGH,
    Point(1, 2.5),
    Shape("tri", [Point(0, 0.0), Point(1, 1.0)], Color.BLUE, {"k": (1, {2})}),
    {"when": [dt.date(2020, 1, 1), dt.timedelta(hours=1)], Color.RED: Level.LOW},
]


@pytest.mark.parametrize("value", ROUND_TRIPS, ids=lambda v: type(v).__name__)
def test_round_trip_keeps_values_and_types(value):
    assert_round_trip(value)


def test_not_a_number_round_trips():
    assert math.isnan(decode(encode(float("nan"))))
    assert decode(encode(decimal.Decimal("NaN"))).is_nan()
    back = decode(encode([float("nan"), {"x": float("nan")}]))
    assert math.isnan(back[0]) and math.isnan(back[1]["x"])


def test_decoded_containers_are_fresh_copies():
    data = encode({"a": [1]})
    first = decode(data)
    first["a"].append(2)
    assert decode(data) == {"a": [1]}


def test_numpy_arrays_and_scalars_round_trip():
    np = pytest.importorskip("numpy")
    for array in (
        np.arange(12, dtype=np.int32).reshape(3, 4),
        np.array([[1.5, np.nan], [np.inf, -0.0]], dtype=np.float64),
        np.array([], dtype=np.uint8),
        np.arange(6)[::2],  # not contiguous
    ):
        back = decode(encode(array))
        assert isinstance(back, np.ndarray)
        assert back.dtype == array.dtype and back.shape == array.shape
        np.testing.assert_array_equal(back, array)
        back[...] = 0  # writable: not a view of the encoded bytes
    scalar = decode(encode(np.float32(1.5)))
    assert type(scalar) is np.float32 and scalar == 1.5
    assert encode(np.int64(1)) != encode(1) != encode(np.int32(1))
    with pytest.raises(muscle_mem.EncodeError, match="numpy"):
        encode(np.array([object()], dtype=object))


def test_pydantic_models_round_trip_into_the_live_class():
    pydantic = pytest.importorskip("pydantic")

    class Campaign(pydantic.BaseModel):  # local: found through `like`, not by name
        name: str
        budget: float
        tags: tuple[str, ...] = ()

    campaign = Campaign(name="spring", budget=1200.0, tags=("b2b",))
    back = decode(encode(campaign), like=Campaign(name="x", budget=0))
    assert type(back) is Campaign and back == campaign
    with pytest.raises(DecodeError, match="not loaded"):
        decode(encode(campaign))  # no live value to go by, and not importable by name


def test_a_torch_tensor_goes_through_numpy():
    torch = pytest.importorskip("torch", reason="torch is optional and not a test dependency")
    tensor = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    back = decode(encode(tensor))
    assert isinstance(back, torch.Tensor) and torch.equal(back, tensor)


# -- property tests --------------------------------------------------------------

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=10),
    st.binary(max_size=10),
)
_hashables = st.recursive(
    _scalars,
    lambda inner: st.tuples(inner, inner) | st.frozensets(inner, max_size=3),
    max_leaves=6,
)
_leaves = st.one_of(
    _scalars,
    st.dates(),
    # fold is left out: naive datetimes equal but for fold encode alike (see the report).
    st.datetimes(timezones=st.none() | st.just(dt.timezone.utc)).map(lambda d: d.replace(fold=0)),
    st.timedeltas(),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.uuids(),
    st.sampled_from([Color.RED, Color.BLUE, Level.LOW]),
    st.builds(Point, st.integers(), st.floats(allow_nan=False)),
)
_values = st.recursive(
    _leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(st.text(max_size=5), inner, max_size=4),
        st.dictionaries(_hashables, inner, max_size=3),
        st.sets(_hashables, max_size=4),
        st.frozensets(_hashables, max_size=3),
    ),
    max_leaves=20,
)


@settings(max_examples=60, deadline=None)
@given(_values)
def test_any_nested_value_round_trips(value):
    assert_round_trip(value)


def reordered(value):
    """The same value built in another order: dicts reversed, sets rebuilt backwards."""
    if type(value) is dict:
        return {k: reordered(v) for k, v in reversed(list(value.items()))}
    if type(value) is list:
        return [reordered(v) for v in value]
    if type(value) is tuple:
        return tuple(reordered(v) for v in value)
    if isinstance(value, (set, frozenset)):
        return type(value)(reversed(sorted(value, key=repr)))
    return value


@settings(max_examples=60, deadline=None)
@given(_values)
def test_encoding_does_not_depend_on_insertion_order(value):
    assert encode(reordered(value)) == encode(value)


# -- canonical and type-exact encoding -------------------------------------------


def test_dicts_with_the_same_items_encode_alike_in_any_order():
    assert encode({"b": 1, "a": 2}) == encode({"a": 2, "b": 1})
    assert encode({2: "x", 1: "y", "z": 0}) == encode({"z": 0, 1: "y", 2: "x"})
    assert encode([{"b": {"d": 1, "c": 2}, "a": None}]) == encode(
        [{"a": None, "b": {"c": 2, "d": 1}}]
    )
    assert encode({"a": 1}) != encode({"a": 2})


def test_sets_with_the_same_items_encode_alike_in_any_order():
    assert encode({3, 1, 2}) == encode({1, 2, 3})
    assert encode(set(["c", "a", "b"])) == encode(set(["b", "c", "a"]))
    assert encode(frozenset({(1, "a"), (0, "b")})) == encode(frozenset({(0, "b"), (1, "a")}))
    assert encode({1, 2}) != encode({1, 3})


def test_set_and_dict_encodings_do_not_depend_on_the_hash_seed():
    """Set iteration order follows string hashes, which change from process to process."""
    code = (
        "import sys; from muscle_mem.codec import encode; "
        "v = {'set': {'alpha', 'beta', 'gamma', 'delta', 'epsilon', 'zeta'}, "
        "'fs': frozenset('abcdefgh'), 'map': {frozenset({'x', 'y', 'z'}): 1, ('k',): 2}}; "
        "sys.stdout.write(encode(v).hex())"
    )
    outputs = set()
    for seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        outputs.add(done.stdout)
    assert len(outputs) == 1


@pytest.mark.parametrize(
    "values",
    [
        [True, 1, 1.0, "1", b"1", decimal.Decimal(1), Level.LOW],
        [False, 0, 0.0, None, "", b"", [], (), {}, set(), frozenset()],
        [[1], (1,), {1}, frozenset({1}), {1: None}],
        [[True], [1], [1.0]],
        [{"k": True}, {"k": 1}, {"k": 1.0}],
        [{True: "v"}, {1: "v"}, {1.0: "v"}, {"1": "v"}],
        [{1, 2}, {True, 2}, {1.0, 2}],
        [(True, 1), (1, True), (1, 1), (True, True)],
        [Point(1, 2.0), {"x": 1, "y": 2.0}, (1, 2.0)],
        [Color.RED, "red"],
        [dt.date(2020, 1, 1), dt.datetime(2020, 1, 1), "2020-01-01"],
        [uuid.UUID(int=1), str(uuid.UUID(int=1))],
    ],
    ids=lambda vs: "-".join(type(v).__name__ for v in vs),
)
def test_values_of_other_types_encode_differently(values):
    encodings = [encode(v) for v in values]
    assert len(set(encodings)) == len(values)


# -- what cannot be encoded ----------------------------------------------------------


def test_an_open_file_cannot_be_encoded_and_the_error_says_where(tmp_path):
    with open(tmp_path / "f.txt", "w") as f:
        with pytest.raises(muscle_mem.EncodeError, match=r"argument 'log' is a TextIOWrapper"):
            encode(f, "argument 'log'")
        with pytest.raises(muscle_mem.EncodeError) as info:
            encode({"files": [1, f]}, "argument 'opts'")
    message = str(info.value)
    assert "argument 'opts'['files'][1]" in message
    assert "TextIOWrapper" in message and "cannot store" in message


@pytest.mark.parametrize(
    ("value", "where"),
    [
        (lambda: 1, "value"),
        ([1, (2, lambda: 3)], "value[1][1]"),
        ({1: object()}, "value[1]"),
        ({object(): 1}, "value key"),
        ({1, object()}, "value item"),
        (Shape("s", [1, lambda: 2]), "value.points[1]"),
    ],
    ids=["lambda", "in-a-tuple", "dict-value", "dict-key", "set-item", "dataclass-field"],
)
def test_unencodable_values_raise_encode_error_naming_the_place(value, where):
    with pytest.raises(muscle_mem.EncodeError) as info:
        encode(value)
    assert str(info.value).startswith(f"{where} is a ")
    assert isinstance(info.value, TypeError)  # a misuse error of the built-in kind too


@pytest.mark.parametrize(
    "container", [str, lambda v: [v], lambda v: {"k": v}], ids=["bare", "in-a-list", "in-a-dict"]
)
def test_a_string_with_a_lone_surrogate_is_an_encode_error(container):
    # UTF-8 cannot hold it, and no store could keep it: refused where it is made.
    with pytest.raises(muscle_mem.EncodeError, match="surrogates not allowed"):
        encode(container("bad name \udcff"))


def test_a_huge_int_is_an_encode_error():
    # Past Python's limit on int-to-text conversion (4300 digits by default).
    with pytest.raises(
        muscle_mem.EncodeError, match=r"^value cannot be stored as data: .*integer string conv"
    ):
        encode(10**5000)


def test_a_class_that_is_not_loaded_is_a_decode_error_unless_given_like():
    @dataclasses.dataclass
    class Local:
        x: int

    data = encode(Local(1))
    with pytest.raises(DecodeError, match="Local"):
        decode(data)
    back = decode(data, like=Local(0))
    assert type(back) is Local and back == Local(1)
    with pytest.raises(DecodeError):
        decode(b"{not json")


# -- depth, and bytes that are not an encoding -------------------------------------


def nested(depth, make=lambda inner: [inner]):
    value = None
    for _ in range(depth):
        value = make(value)
    return value


def contains_itself():
    loop = []
    loop.append({"again": loop})
    return loop


@pytest.mark.parametrize(
    "value",
    [
        nested(MAX_DEPTH + 1),
        nested(MAX_DEPTH + 1, lambda inner: {"k": inner}),
        nested(MAX_DEPTH + 1, lambda inner: (inner,)),
        nested(MAX_DEPTH + 1, lambda inner: {1: inner}),
        nested(5_000),
        contains_itself(),
    ],
    ids=["lists", "dicts", "tuples", "maps", "very-deep", "contains-itself"],
)
def test_a_value_nested_too_deeply_is_an_encode_error_naming_it(value):
    for encoder in (encode, encode_call):
        with pytest.raises(
            muscle_mem.EncodeError, match=rf"^the payload is nested more than {MAX_DEPTH} levels"
        ):
            encoder(value, "the payload")


def test_a_value_nested_up_to_the_limit_round_trips():
    # (Not through typed(): it takes exponential time on nested dicts.)
    for value in (nested(MAX_DEPTH), nested(MAX_DEPTH // 2, lambda inner: ({"k": inner},))):
        data = encode(value)
        assert decode(data) == value and encode(decode(data)) == data


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xff",
        b'{"t":5}',
        b'{"t":[1,2',
        b'{"dt":"nope"}',
        b'{"date":5}',
        b'{"td":["a"]}',
        b'{"m":[1]}',
        b'{"m":[[[1],2]]}',
        b'{"s":[[1]]}',
        b'{"dec":"x"}',
        b'{"uuid":"x"}',
        b'{"fl":"one"}',
        b'{"by":5}',
        b'{"np":"O","shape":[1],"data":"AA=="}',
        b'{"np":"<i4","shape":[3],"data":"AA=="}',
        b'{"unknown":1}',
        b"[" * 100_000 + b"]" * 100_000,
        b'{"t":' * 100_000 + b"[]" + b"}" * 100_000,
        "text, not bytes",
        None,
    ],
)
def test_bytes_that_are_not_an_encoding_are_a_decode_error(data):
    with pytest.raises(DecodeError):
        decode(data)
    with pytest.raises(DecodeError):
        check(data)


def test_check_accepts_what_encode_writes_and_names_what_it_refuses():
    for value in ROUND_TRIPS:
        check(encode(value))
    with pytest.raises(DecodeError, match="a list was expected"):
        check(b'{"t":5}')
    with pytest.raises(DecodeError, match="NUL"):
        check(encode("a") + b"\0" + encode("b"))


def test_check_passes_a_class_this_process_has_not_loaded():
    @dataclasses.dataclass
    class Elsewhere:
        x: int

    data = encode([Elsewhere(1)])
    check(data)  # well formed: another process may have the class
    with pytest.raises(DecodeError) as raised:
        decode(data)
    assert raised.value.missing
    with pytest.raises(DecodeError, match="int from builtins"):
        decode(b'{"dc":"builtins:int","f":{"x":1}}')  # a class, but not a dataclass


def test_check_call_takes_a_tool_call_and_nothing_else():
    call = encode_call(((1, "a"), {"opts": {"z": 1, "a": 2}}))
    assert b"\0" in call  # the dict was out of canonical order
    check_call(call)
    check_call(encode_call(((), {})))
    # Keyword arguments named like tags, in an order that needs the ordered part.
    check_call(encode_call(((), {"m": {2: 1, 1: 2}, "": None, "d": {"z": 1, "a": 2}})))
    for data in (b"5", encode([1, 2, 3]), encode((1, 2)), encode(((1,), [])), encode(("a", {}))):
        with pytest.raises(DecodeError, match="not a tool call's arguments"):
            check_call(data)


def test_a_call_whose_ordered_part_says_something_else_is_refused():
    call = encode_call(((1,), {"opts": {"z": 1, "a": 2}}))
    canonical, _, ordered = call.partition(b"\0")
    altered = canonical + b"\0" + ordered.replace(b'"z":1', b'"z":9')
    assert decode(altered) != decode(call)  # what replay would hand the tool
    with pytest.raises(DecodeError, match="ordered part is not the value"):
        check_call(altered)


# -- tools called with data of any shape ---------------------------------------------


SHAPES = [
    ((None,), {}),
    ((None, None), {"key": None}),
    (((1, (2, 3)), ()), {}),
    (([{"a": [1, {"b": None}], "c": ()}],), {"opts": {"x": [(), []], 2: (None,)}}),
    (({1, 2}, frozenset({"a"})), {"mixed": [{"s": {(1, 2)}}]}),
    ((b"\x00bytes", 2**70, -0.0, float("inf")), {"flag": True, "n": 1, "f": 1.0}),
    ((dt.date(2024, 1, 1), dt.timedelta(minutes=5)), {"at": dt.datetime(2024, 1, 1, 9)}),
    ((decimal.Decimal("9.90"), uuid.UUID(int=7)), {"color": Color.BLUE, "level": Level.LOW}),
    ((Point(1, 2.0),), {"shape": Shape("sq", [Point(0, 0.0)], meta={"k": (1,)})}),
]


@pytest.mark.parametrize(("args", "kwargs"), SHAPES, ids=range(len(SHAPES)))
def test_tools_called_with_any_data_shape_record_and_hit(engine, args, kwargs):
    received = []

    @engine.function(pre_check=Check(lambda *a, **k: "env"))
    def tool(*a, **k):
        received.append((a, k))

    engine.set_agent(lambda task: tool(*args, **kwargs))
    assert engine("t").status == "miss"
    outcome = engine("t")
    assert (outcome.status, outcome.replayed) == ("hit", 1)
    assert engine("t").status == "hit"
    assert len(received) == 3
    for call in received:
        assert typed(call) == typed((args, kwargs))


def test_task_arguments_of_any_data_shape_key_the_cache(engine):
    @engine.function()
    def tool():
        pass

    engine.set_agent(lambda *args, **kwargs: tool())
    task = ([None, (1, 2), {"a": {"b": [None]}}], {3: frozenset({4})})
    assert engine(*task, opts={"z": None, "y": (1,)}).status == "miss"
    assert engine(*task, opts={"y": (1,), "z": None}).status == "hit"  # dict order is moot
    assert engine([None, [1, 2], {"a": {"b": [None]}}], task[1]).status == "miss"


def test_a_tool_mutating_its_list_argument_does_not_change_the_recording(engine):
    seen = []

    @engine.function()
    def append_to(items, opts):
        seen.append((list(items), dict(opts)))
        items.append("added")
        opts["added"] = True

    engine.set_agent(lambda task: append_to([], {"k": [1]}))
    for _ in range(3):
        engine("t")
    assert seen == [([], {"k": [1]})] * 3
    assert engine("t").status == "hit"


def test_a_tool_mutating_its_dataclass_argument_does_not_change_the_recording(engine):
    seen = []

    @engine.function()
    def add_point(shape):
        seen.append(list(shape.points))
        shape.points.append(Point(9, 9.0))

    engine.set_agent(lambda task: add_point(Shape("s", [])))
    for _ in range(3):
        engine("t")
    assert seen == [[]] * 3


def test_a_tool_argument_of_a_local_class_never_breaks_later_runs(engine):
    """Its class can't be found from the stored name: the step is skipped, not fatal."""

    @dataclasses.dataclass(frozen=True)
    class Local:
        x: int

    received = []

    @engine.function()
    def tool(value):
        received.append(value)

    engine.set_agent(lambda task: tool(Local(1)))
    assert engine("t").status == "miss"
    outcome = engine("t")
    assert (outcome.status, outcome.replayed) == ("miss", 0)
    assert "Local" in outcome.reason
    assert received == [Local(1), Local(1)]  # the agent ran both times


def test_a_pre_check_capture_of_none_hits_while_it_stays_none(engine, world):
    calls = []

    @engine.function(pre_check=Check(lambda: world.state.get("banner")))
    def click():
        calls.append("click")

    engine.set_agent(lambda task: click())
    assert engine("t").status == "miss"
    assert engine("t").status == "hit"
    world.state["banner"] = "cookie consent"
    outcome = engine("t")
    assert (outcome.status, outcome.replayed) == ("miss", 0)
    assert "pre-check" in outcome.reason and "cookie consent" in outcome.reason
    world.state["banner"] = None
    assert engine("t").status == "hit"
    assert calls == ["click"] * 4


def test_a_pre_check_capture_of_none_with_a_compare(engine, world):
    @engine.function(pre_check=Check(lambda: world.state.get("banner"), lambda a, b: a == b))
    def click():
        pass

    engine.set_agent(lambda task: click())
    engine("t")
    assert engine("t").status == "hit"
    world.state["banner"] = "x"
    assert engine("t").status == "miss"


def test_a_later_capture_leaving_none_hands_off(engine, world):
    @engine.function(pre_check=Check(lambda: None))
    def first():
        pass

    @engine.function(pre_check=Check(lambda: world.state.get("dialog")))
    def second():
        pass

    def agent(task):
        if muscle_mem.handoff() is None:
            first()
        second()

    engine.set_agent(agent)
    engine("t")
    assert engine("t").status == "hit"
    world.state["dialog"] = {"open": True}
    outcome = engine("t")
    assert (outcome.status, outcome.replayed, outcome.diverged_at) == ("handoff", 1, 1)
    assert "second" in outcome.reason


def test_an_unencodable_tool_argument_names_the_tool_and_the_argument(engine, tmp_path):
    @engine.function()
    def upload(name, f, *, mode="w"):
        pass

    with open(tmp_path / "f.txt", "w") as f:
        engine.set_agent(lambda task: upload("report", f))
        with pytest.raises(muscle_mem.EncodeError) as positional:
            engine("t")
        engine.set_agent(lambda task: upload("report", "x.txt", mode=f))
        with pytest.raises(muscle_mem.EncodeError) as keyword:
            engine("t")
    for info, argument in ((positional, "'f'"), (keyword, "'mode'")):
        message = str(info.value)
        assert f"argument {argument} of tool" in message
        assert "upload" in message and "TextIOWrapper" in message
    assert len(engine.store.tree(engine.task_key("t"))) == 0
    assert [r.status for r in engine.store.runs()] == ["error", "error"]


def test_an_unencodable_nested_tool_argument_says_where_inside_it(engine):
    @engine.function()
    def send(payload):
        pass

    engine.set_agent(lambda task: send({"items": [1, object()]}))
    with pytest.raises(muscle_mem.EncodeError, match=r"argument 'payload' of tool \S*send\["):
        engine("t")


def test_an_unencodable_tool_argument_is_named_with_container_params(engine, tmp_path):
    @engine.function()
    def upload(name, f):
        pass

    with open(tmp_path / "f.txt", "w") as f:
        engine.set_agent(lambda task: upload("report", f))
        with pytest.raises(muscle_mem.EncodeError, match=r"argument 'f' of tool \S*upload"):
            engine("t", params={"ids": [1, 2]})


def test_a_tool_argument_with_a_lone_surrogate_names_the_argument(engine):
    @engine.function()
    def rename(path):
        pass

    engine.set_agent(lambda task: rename(["ok", "bad \udcff"]))
    with pytest.raises(muscle_mem.EncodeError, match=r"argument 'path' of tool \S*rename"):
        engine("t")


def test_an_unencodable_capture_names_the_tool_and_the_check(engine):
    @engine.function(pre_check=Check(lambda: object()))
    def click():
        pass

    engine.set_agent(lambda task: click())
    with pytest.raises(muscle_mem.EncodeError, match=r"tool \S*click: the pre-check capture"):
        engine("t")


def test_an_unencodable_param_names_the_param(engine):
    @engine.function()
    def click():
        pass

    engine.set_agent(lambda task: click())
    with pytest.raises(muscle_mem.EncodeError, match=r"param 'session'"):
        engine("t", params={"session": object()})


def test_an_unencodable_task_argument_says_how_to_pass_it(engine, engines):
    @engine.function()
    def click():
        pass

    engine.set_agent(lambda task, browser: click())
    with pytest.raises(muscle_mem.EncodeError, match=r"match_task=False") as info:
        engine("t", object())
    assert "the task's arguments[1]" in str(info.value)
    # Keyed by tags alone, the agent takes any object.
    loose = engines(match_task=False)
    loose_calls = []

    @loose.function()
    def tap():
        loose_calls.append("tap")

    loose.set_agent(lambda task, browser: tap())
    assert loose("t", object()).status == "miss"
    assert loose("t", object()).status == "hit"
    assert loose_calls == ["tap", "tap"]


@pytest.mark.parametrize("params", [{}, {"who": "ann"}, {"ids": [1, 2]}])
def test_a_tool_argument_that_contains_itself_names_the_tool_and_argument(memory_engine, params):
    @memory_engine.function()
    def send(to, payload):
        pass

    memory_engine.set_agent(lambda task: send("ann", contains_itself()))
    with pytest.raises(muscle_mem.EncodeError, match=r"argument 'payload' of tool \S*send is nes"):
        memory_engine("t", params=params)
    with pytest.raises(muscle_mem.EncodeError, match=r"the task's arguments is nested more"):
        memory_engine("t", nested(MAX_DEPTH + 1), params=params)
