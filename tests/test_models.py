"""The generated structuring functions and the detailed converter must agree.

The generated function builds every model of a good response; the cattrs converter only
explains a refused one. Any body one accepts the other accepts, into equal objects.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from notify_async import ApiKey, InvalidResponseError, SendEmailResult
from notify_async._models import Parser, Reader, _detailed_converter, decode_json

timestamps = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(timezone.utc)
).map(lambda moment: moment.isoformat().replace("+00:00", "Z"))
# Naive and offset timestamps too: both sides read a naive one as UTC.
any_timestamps = timestamps | st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2100, 1, 1),
    timezones=st.sampled_from([None, timezone(timedelta(hours=2))]),
).map(datetime.isoformat)
json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
field_values = json_scalars | any_timestamps | st.lists(json_scalars, max_size=2)

well_formed_keys = st.fixed_dictionaries(
    {
        "id": st.uuids().map(str),
        "name": st.text(max_size=30),
        "createdAt": any_timestamps,
        "updatedAt": any_timestamps,
        "active": st.booleans(),
        "prefix": st.text(max_size=11),
    },
    optional={"extra": json_scalars},
)
# What a JSON body can carry: no NaN or infinity, which JSON has no words for.
json_keys = st.fixed_dictionaries(
    {
        "id": st.uuids().map(str),
        "name": st.text(max_size=30),
        "createdAt": any_timestamps,
        "updatedAt": any_timestamps,
        "active": st.booleans(),
        "prefix": st.text(max_size=11),
    },
    optional={"extra": st.none() | st.booleans() | st.integers() | st.text(max_size=30)},
)
any_keys = (
    st.dictionaries(
        st.sampled_from(["id", "name", "createdAt", "updatedAt", "active", "prefix", "other"]),
        field_values,
    )
    | well_formed_keys.flatmap(
        lambda key: st.sampled_from(sorted(key)).flatmap(
            lambda name: field_values.map(lambda value: {**key, name: value})
        )
    )
    | json_scalars
)

parse_keys = Parser(list[ApiKey], path="data")
parse_result = Parser(SendEmailResult, path="$")


def detailed(value: object, model: Any) -> Any:
    try:
        return _detailed_converter().structure(value, model)
    except Exception:
        return None


def parsed(parser: Parser[Any], value: object) -> Any:
    try:
        return parser(value)
    except InvalidResponseError:
        return None


@settings(max_examples=500)
@given(st.lists(any_keys, max_size=3))
def test_the_parser_accepts_exactly_what_the_detailed_converter_accepts(
    items: list[Any],
) -> None:
    # filterwarnings = error: the warning for a disagreement would fail this test too.
    assert parsed(parse_keys, items) == detailed(items, list[ApiKey])


@settings(max_examples=300)
@given(
    st.dictionaries(st.sampled_from(["success", "message", "other"]), field_values | st.booleans())
    | json_scalars
)
def test_the_send_result_parser_agrees_with_the_detailed_converter(value: Any) -> None:
    assert parsed(parse_result, value) == detailed(value, SendEmailResult)


@settings(max_examples=300)
@given(well_formed_keys)
def test_a_well_formed_key_gives_an_exact_aware_api_key(value: dict[str, Any]) -> None:
    (key,) = parse_keys([value])
    assert type(key) is ApiKey
    assert key == detailed(value, ApiKey)
    assert key.created_at.tzinfo is not None
    assert key.updated_at.tzinfo is not None
    with pytest.raises(AttributeError):
        key.name = "changed"  # type: ignore[misc]


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(json_keys, min_size=1, max_size=40), st.randoms(use_true_random=False))
def test_a_thousand_key_answer_structures_into_the_detailed_converters_keys(
    drawn: list[dict[str, Any]], random: Any
) -> None:
    # Hypothesis cannot draw 1,000 keys in one example; 1,000 draws from its keys, each with
    # its own id and prefix, in a drawn order, make an answer of that size.
    items = [
        {**random.choice(drawn), "id": f"key-{n}", "prefix": f"nk_{n:05d}..."} for n in range(1_000)
    ]
    body = json.dumps({"success": True, "data": items}, allow_nan=False).encode()
    keys = parse_keys(decode_json(body)["data"])
    assert keys == _detailed_converter().structure(json.loads(body)["data"], list[ApiKey])
    assert len(keys) == 1_000
    assert {type(key) for key in keys} == {ApiKey}


def test_a_naive_timestamp_is_read_as_utc() -> None:
    value = {
        "id": "k1",
        "name": "dev",
        "createdAt": "2025-04-10T12:00:00",
        "updatedAt": "2025-04-10T12:00:00+02:00",
        "active": True,
        "prefix": "nk_abc...",
    }
    (key,) = parse_keys([value])
    assert key.created_at.tzinfo is timezone.utc
    assert key.updated_at.utcoffset() == timedelta(hours=2)


def test_a_refused_body_names_the_wire_field_and_hides_the_value() -> None:
    value = {
        "id": "k1",
        "name": "dev",
        "createdAt": "nk_secret_value_123",
        "updatedAt": "2025-04-10T12:00:00Z",
        "active": True,
        "prefix": "nk_abc...",
    }
    # filterwarnings = error (pyproject.toml): a disagreement warning would fail this too.
    with pytest.raises(InvalidResponseError) as caught:
        parse_keys([value, value])
    assert "expected an ISO-8601 timestamp @ data[0].createdAt" in str(caught.value)
    assert "nk_secret" not in str(caught.value)
    assert caught.value.__context__ is None


@pytest.mark.parametrize("body", [{}, "[]", None, 3])
def test_a_list_parser_refuses_anything_but_a_json_array(body: object) -> None:
    with pytest.raises(InvalidResponseError, match="expected a JSON array"):
        parse_keys(body)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"a": 1}', {"a": 1}),
        (b" \r\n\t[1, 2] \n", [1, 2]),
        ('{"name": "Zoë"}'.encode(), {"name": "Zoë"}),
    ],
)
def test_decode_json_reads_utf8_json_with_surrounding_whitespace(raw: bytes, expected: Any) -> None:
    assert decode_json(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [b'{"a": 1} trailing', b"\xa0{}", b"\xff\xfe{}", b"", b"{} {}", b"nul", b'{"a": NaN}'],
)
def test_decode_json_refuses_anything_that_is_not_one_utf8_json_value(raw: bytes) -> None:
    with pytest.raises(InvalidResponseError) as caught:
        decode_json(raw)
    assert caught.value.__context__ is None


GOOD_KEY = {
    "id": "k1",
    "name": "dev",
    "createdAt": "2025-04-10T12:00:00Z",
    "updatedAt": "2025-04-10T12:00:00Z",
    "active": True,
    "prefix": "nk_abc...",
}


@pytest.mark.parametrize("bad_at", [None, 0, 499, 999])
@pytest.mark.parametrize("collector_on", [True, False])
def test_a_long_list_leaves_the_collector_as_it_found_it(
    bad_at: int | None, collector_on: bool
) -> None:
    # The collector is paused while a long list is built; a good answer, and one refused
    # at its first, middle or last item, must both hand it back as it was.
    items = [{**GOOD_KEY, "id": f"k{n}"} for n in range(1_000)]
    if bad_at is not None:
        items[bad_at] = {**GOOD_KEY, "active": "yes"}
    was_on = gc.isenabled()
    if not collector_on:
        gc.disable()
    try:
        if bad_at is None:
            assert [key.id for key in parse_keys(items)] == [f"k{n}" for n in range(1_000)]
        else:
            with pytest.raises(InvalidResponseError, match=rf"data\[{bad_at}\]\.active"):
                parse_keys(items)
        assert gc.isenabled() is collector_on
    finally:
        if was_on:
            gc.enable()


@pytest.mark.parametrize("item", [[], "key", 3, 1.5, True, None, ["id"]])
def test_an_item_that_is_not_an_object_is_refused_as_such(item: object) -> None:
    # The generated function reads fields without checking the item's type first: for
    # anything orjson gives but an object, the read itself raises.
    with pytest.raises(InvalidResponseError, match=r"expected a JSON object, got \w+ @ data\[1\]"):
        parse_keys([GOOD_KEY, item])
    with pytest.raises(InvalidResponseError, match="expected a JSON object"):
        parse_result(item)


@attrs.frozen
class _DefaultFirst:
    note: str = ""
    name: str = attrs.field(kw_only=True)


@pytest.mark.parametrize("item", [[], "key", 3, None])
def test_a_model_whose_first_field_has_a_default_refuses_a_non_object(item: object) -> None:
    # Its first read is .get(), which a list or a string would answer with AttributeError,
    # escaping raw; the detailed converter does not know this model, so only the class of
    # the error is checked.
    parse = Parser(_DefaultFirst, path="$")
    with pytest.raises(InvalidResponseError, match="unexpected response shape"):
        parse(item)
    assert parse({"name": "n"}) == _DefaultFirst(name="n")


@pytest.mark.parametrize(("size", "paused"), [(63, False), (64, True), (1_000, True)])
def test_no_collection_runs_while_a_long_list_is_built(size: int, paused: bool) -> None:
    # With a threshold of 10 allocations, building even 63 keys sets off collections; from
    # 64 items on, none may start until the list is built.
    items = [{**GOOD_KEY, "id": f"k{n}"} for n in range(size)]
    started: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started.append(info["generation"])

    threshold = gc.get_threshold()
    gc.collect()
    gc.set_threshold(10)
    gc.callbacks.append(count)
    try:
        keys = parse_keys(items)
    finally:
        gc.callbacks.remove(count)
        gc.set_threshold(*threshold)
    assert len(keys) == size
    assert (started == []) is paused


# -- Reader: the model straight from the answer's bytes ----------------------------------

read_keys = Reader(list[ApiKey], field="data")
read_result = Reader(SendEmailResult, field=None)


def the_long_way(reader: Reader[Any], raw: bytes) -> Any:
    """What the pipeline makes of ``raw`` when ``Reader.fast`` declines it."""
    try:
        body = decode_json(raw)
    except InvalidResponseError:
        return None
    if type(body) is not dict or body.get("success", True) is not True:
        return None
    try:
        return reader.parse(body)
    except InvalidResponseError:
        return None


def answer(value: object) -> bytes:
    # NaN and infinity come out as words JSON does not have: both ways must refuse them.
    return json.dumps(value).encode()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)
any_list_answers = st.fixed_dictionaries(
    {"data": st.lists(any_keys, max_size=3) | json_scalars},
    optional={"success": st.booleans() | json_scalars, "extra": json_scalars},
)


@settings(max_examples=500)
@given(any_list_answers | json_values)
def test_the_fast_read_takes_nothing_the_long_way_refuses(value: Any) -> None:
    # Whatever the fast read accepts, the long way accepts into equal keys; what it declines
    # goes the long way in the pipeline, so the two can never give different results.
    raw = answer(value)
    fast = read_keys.fast(raw)
    if fast is not None:
        assert fast == the_long_way(read_keys, raw)
        assert {type(key) for key in fast} <= {ApiKey}


@settings(max_examples=300)
@given(
    st.dictionaries(st.sampled_from(["success", "message", "other"]), field_values | st.booleans())
    | json_values
)
def test_the_fast_send_result_read_takes_nothing_the_long_way_refuses(value: Any) -> None:
    raw = answer(value)
    fast = read_result.fast(raw)
    if fast is not None:
        assert type(fast) is SendEmailResult
        assert fast == the_long_way(read_result, raw)


@settings(max_examples=300)
@given(st.lists(json_keys, max_size=5), st.sampled_from([None, True]))
def test_a_well_formed_answer_is_read_the_fast_way(
    items: list[dict[str, Any]], success: bool | None
) -> None:
    # The fast read must not quietly decline good answers: that would leave every list
    # on the long way, correct but slow.
    body: dict[str, Any] = {"data": items} if success is None else {"success": True, "data": items}
    raw = answer(body)
    keys = read_keys.fast(raw)
    assert keys is not None
    assert keys == _detailed_converter().structure(items, list[ApiKey])
    for key in keys:
        assert key.created_at.tzinfo is not None
        assert key.updated_at.tzinfo is not None


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(json_keys, min_size=1, max_size=40), st.randoms(use_true_random=False))
def test_a_thousand_key_answer_read_from_its_bytes_equals_the_detailed_converters(
    drawn: list[dict[str, Any]], random: Any
) -> None:
    # The same answer as the test above, read the way the pipeline reads it: from the bytes.
    items = [
        {**random.choice(drawn), "id": f"key-{n}", "prefix": f"nk_{n:05d}..."} for n in range(1_000)
    ]
    raw = answer({"success": True, "data": items})
    keys = read_keys.fast(raw)
    assert keys is not None
    assert keys == _detailed_converter().structure(json.loads(raw)["data"], list[ApiKey])
    assert len(keys) == 1_000
    assert {type(key) for key in keys} == {ApiKey}


@pytest.mark.parametrize(
    "moment",
    [
        "2025-04-10T12:00:00.1234567Z",  # msgspec would round the 7th digit; fromisoformat cuts
        "2025-04-10t12:00:00z",  # msgspec would accept lowercase; fromisoformat refuses
        "2025-04-10T12:00:00",  # naive: read as UTC
        "2025-04-10T12:00:00+02:00",
        "2025-04-10 12:00:00Z",
        "20250410T120000Z",  # basic format: fromisoformat reads it, msgspec would not
        "2025-02-30T00:00:00Z",
    ],
)
def test_timestamps_read_the_fast_way_as_the_long_way_reads_them(moment: str) -> None:
    raw = answer({"success": True, "data": [{**GOOD_KEY, "createdAt": moment}]})
    fast = read_keys.fast(raw)
    assert (fast if fast is not None else the_long_way(read_keys, raw)) == detailed(
        [{**GOOD_KEY, "createdAt": moment}], list[ApiKey]
    )


@pytest.mark.parametrize(
    "raw",
    [
        b'{"success": false, "data": []}',
        b'{"success": "true", "data": []}',
        b'{"success": true}',
        b'{"success": true, "data": {}}',
        b'{"success": true, "data": [1]}',
        b"[]",
        b"",
        b"\xff",
        b'{"data": []} trailing',
        b'{"a":' * 5_000 + b"1" + b"}" * 5_000,  # deeper than msgspec's stack
    ],
)
def test_the_fast_read_declines_what_is_not_a_good_answer(raw: bytes) -> None:
    assert read_keys.fast(raw) is None


def test_a_number_no_float_holds_in_a_field_no_model_reads_is_skipped() -> None:
    # The one documented difference between the ways (Reader's docstring): Notify's
    # unknown fields are accepted whatever they hold, and msgspec skips them unread, while
    # the long way's orjson refuses the whole body.
    raw = b'{"success": true, "data": [], "quota": 1e400}'
    assert read_keys.fast(raw) == []
    assert the_long_way(read_keys, raw) is None


@pytest.mark.parametrize(
    "raw",
    [
        b'{"success": true, "data": [], "note": "\xff"}',
        b'{"success": true, "data": [], "n\xc3\x28": 1}',
        b'{"success": true, "message": "sent", "x": "\xed\xa0\x80"}',
    ],
)
def test_bytes_that_are_not_utf8_are_declined_even_where_no_model_reads(raw: bytes) -> None:
    # msgspec checks the UTF-8 of the strings it reads, not of those it skips.
    assert read_keys.fast(raw) is None
    assert read_result.fast(raw) is None


def test_a_deep_answer_cannot_crash_an_app_that_raised_its_recursion_limit() -> None:
    # msgspec nests as deep as the recursion limit lets it, on the C stack; 300,000 levels
    # crash the process where the limit allows them. In a child, so that a regression
    # fails this test rather than killing the suite.
    probe = (
        "import sys; sys.setrecursionlimit(1_000_000); "
        "from notify_async import ApiKey; from notify_async._models import Reader; "
        "raw = b'{\"success\": true, \"data\": [], \"x\": ' + b'[' * 300_000 + b']' * 300_000 "
        "+ b'}'; print(Reader(list[ApiKey], field='data').fast(raw))"
    )
    child = subprocess.run(  # noqa: S603  # a fixed probe, run by this interpreter
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False
    )
    assert (child.returncode, child.stdout.strip()) == (0, "None")


def test_a_reader_refuses_a_field_type_msgspec_would_read_loosely() -> None:
    @attrs.frozen
    class Quota:
        used: int
        ratio: float

    with pytest.raises(TypeError, match=r"Quota\.used is .*int"):
        Reader(Quota, field="data")


def test_nesting_past_orjsons_limit_in_a_field_no_model_reads_is_skipped() -> None:
    # The other documented difference: orjson refuses JSON nested deeper than 1,024
    # levels, msgspec goes as deep as the interpreter lets it (here a raised limit).
    deep = b"[" * 1_100 + b"]" * 1_100
    raw = b'{"success": true, "data": [], "x": ' + deep + b"}"
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(3_000)
    try:
        assert read_keys.fast(raw) == []
    finally:
        sys.setrecursionlimit(limit)
    assert the_long_way(read_keys, raw) is None
