from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from store import codec

json_keys = st.text(max_size=8)
values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
    | st.datetimes(timezones=st.none() | st.just(UTC))
    | st.dates(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(json_keys, children, max_size=4)
    ),
    max_leaves=20,
)


@given(values)
def test_values_round_trip(value):
    assert codec.decode(codec.encode(value)) == value


def test_datetimes_and_nested_structures_come_back_as_themselves():
    value = {
        "at": datetime(2026, 11, 24, 6, 30, tzinfo=timezone(timedelta(hours=2))),
        "day": date(2026, 1, 2),
        "nested": [{"when": datetime(2020, 1, 1)}, [1, 2.5, None, True]],
        "$datetime": "not a tag",  # a user key that looks like a tag stays a key
    }
    assert codec.decode(codec.encode(value)) == value
    assert codec.decode(codec.encode({"$datetime": "x"})) == {"$datetime": "x"}


def test_tuples_become_lists_and_models_become_dicts():
    class Point(BaseModel):
        x: int
        y: int

    assert codec.decode(codec.encode((1, 2))) == [1, 2]
    assert codec.decode(codec.encode({"p": Point(x=1, y=2)})) == {"p": {"x": 1, "y": 2}}


@pytest.mark.parametrize(
    ("value", "error", "says"),
    [
        ({"a": [1, object()]}, TypeError, "value['a'][1]"),
        ({1: "x"}, TypeError, "keys must be strings"),
        ({"f": float("nan")}, ValueError, "value['f']"),
        (lambda: 1, TypeError, "function"),
    ],
)
def test_unserialisable_values_name_the_problem(value, error, says):
    with pytest.raises(error) as info:
        codec.encode(value)
    assert says in str(info.value)


def test_values_over_the_limit_are_refused():
    with pytest.raises(ValueError, match="limit"):
        codec.encode("x" * (codec.MAX_VALUE_BYTES + 1))
