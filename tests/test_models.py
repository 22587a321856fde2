"""The fast and the detailed converter must agree: the fast one is only a shortcut."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from notify_async import ApiKey, InvalidResponseError
from notify_async._models import _detailed_converter, _fast_converter, decode_json

timestamps = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(timezone.utc)
).map(lambda moment: moment.isoformat().replace("+00:00", "Z"))
json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
field_values = json_scalars | timestamps | st.lists(json_scalars, max_size=2)

well_formed_keys = st.fixed_dictionaries(
    {
        "id": st.uuids().map(str),
        "name": st.text(max_size=30),
        "createdAt": timestamps,
        "updatedAt": timestamps,
        "active": st.booleans(),
        "prefix": st.text(max_size=11),
    },
    optional={"extra": json_scalars},
)
any_keys = st.dictionaries(
    st.sampled_from(["id", "name", "createdAt", "updatedAt", "active", "prefix", "other"]),
    field_values,
) | well_formed_keys.flatmap(
    lambda key: st.sampled_from(sorted(key)).flatmap(
        lambda name: field_values.map(lambda value: {**key, name: value})
    )
)


def structure(converter: Any, value: object) -> ApiKey | None:
    try:
        result: ApiKey = converter.structure(value, ApiKey)
    except Exception:
        return None
    return result


@settings(max_examples=500)
@given(any_keys)
def test_the_fast_path_never_accepts_what_the_detailed_one_refuses(value: dict[str, Any]) -> None:
    fast = structure(_fast_converter, value)
    if fast is not None:
        assert fast == structure(_detailed_converter, value)


@settings(max_examples=300)
@given(well_formed_keys)
def test_a_well_formed_key_takes_the_fast_path(value: dict[str, Any]) -> None:
    fast = structure(_fast_converter, value)
    assert fast is not None
    assert fast == structure(_detailed_converter, value)
    assert fast.created_at.tzinfo is not None


def test_a_naive_timestamp_falls_back_to_the_detailed_converter_which_reads_utc() -> None:
    value = {
        "id": "k1",
        "name": "dev",
        "createdAt": "2025-04-10T12:00:00",
        "updatedAt": "2025-04-10T12:00:00+02:00",
        "active": True,
        "prefix": "nk_abc...",
    }
    assert structure(_fast_converter, value) is None
    key = structure(_detailed_converter, value)
    assert key is not None
    assert key.created_at.tzinfo is timezone.utc
    assert key.updated_at.utcoffset() == timedelta(hours=2)


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
    "raw", [b'{"a": 1} trailing', b"\xa0{}", b"\xff\xfe{}", b"", b"{} {}", b"nul"]
)
def test_decode_json_refuses_anything_json_loads_would_refuse(raw: bytes) -> None:
    with pytest.raises(InvalidResponseError):
        decode_json(raw)
