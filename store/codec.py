"""Values as JSON, so that what an agent stores is what it reads back.

Plain JSON would turn a ``datetime`` into a string and an ``int`` dict key into a ``str``;
here datetimes and dates are tagged (``{"$datetime": iso}``) and come back as themselves,
pydantic models and other pydantic-serialisable types are stored as their JSON form, and
anything that would not round-trip (non-string keys, NaN, unknown objects) is refused with
an error that names where in the value it sits.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Any

import pydantic_core
from pydantic import BaseModel

MAX_VALUE_BYTES = 1024 * 1024
"""Largest JSON encoding of one stored value; bigger values are refused, not truncated."""

_DATETIME = "$datetime"
_DATE = "$date"
_DICT = "$dict"  # a user dict whose only key starts with "$": kept apart from the tags
_TAGS = (_DATETIME, _DATE, _DICT)


class _PathError(Exception):
    def __init__(self, path: str, error: Exception) -> None:
        self.path, self.error = path, error


def encode(value: Any, *, limit: int = MAX_VALUE_BYTES) -> str:
    """JSON text of ``value``; raises TypeError/ValueError naming the offending part."""
    try:
        tagged = _tag(value)
    except _PathError as e:
        message = f"value{e.path}: {e.error}"
        error = TypeError if isinstance(e.error, TypeError) else ValueError
        raise error(message) from None
    text = pydantic_core.to_json(tagged).decode()
    if len(text) > limit:
        raise ValueError(f"value is {len(text)} bytes as JSON; the limit is {limit}")
    return text


def decode(text: str | bytes) -> Any:
    value = pydantic_core.from_json(text)
    if (b'"$' if isinstance(text, bytes) else '"$') in text:
        return _untag(value)
    return value


def _tag(value: Any) -> Any:
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is float:
        if not math.isfinite(value):
            raise _PathError("", ValueError(f"{value} is not valid JSON"))
        return value
    if kind is dict:
        out = {}
        for key, item in value.items():
            if type(key) is not str:
                raise _PathError("", TypeError(f"dict keys must be strings, not {key!r}"))
            try:
                out[key] = _tag(item)
            except _PathError as e:
                raise _PathError(f"[{key!r}]{e.path}", e.error) from None
        if len(out) == 1 and next(iter(out)).startswith("$"):
            return {_DICT: list(out.items())}
        return out
    if kind is list or kind is tuple:
        items = []
        for index, item in enumerate(value):
            try:
                items.append(_tag(item))
            except _PathError as e:
                raise _PathError(f"[{index}]{e.path}", e.error) from None
        return items
    if isinstance(value, datetime):
        return {_DATETIME: value.isoformat()}
    if isinstance(value, date):
        return {_DATE: value.isoformat()}
    if isinstance(value, BaseModel):
        return _tag(value.model_dump(mode="json"))
    try:
        return _tag(pydantic_core.to_jsonable_python(value))
    except pydantic_core.PydanticSerializationError:
        raise _PathError("", TypeError(f"cannot store a {kind.__name__} as JSON")) from None


def untag(value: Any) -> Any:
    """A value already parsed from JSON (e.g. inside an event) back to what was stored."""
    return _untag(value)


def _untag(value: Any) -> Any:
    if type(value) is list:
        return [_untag(item) for item in value]
    if type(value) is not dict:
        return value
    if len(value) == 1:
        tag, inner = next(iter(value.items()))
        if tag == _DATETIME:
            return datetime.fromisoformat(inner)
        if tag == _DATE:
            return date.fromisoformat(inner)
        if tag == _DICT:
            return {key: _untag(item) for key, item in inner}
    return {key: _untag(item) for key, item in value.items()}
