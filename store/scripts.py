"""Lua scripts: one file per atomic operation, each prefixed with the shared event prelude and,
where one exists, its component's shared helpers (``_<component>.lua`` for ``<component>_*``)."""

from __future__ import annotations

from functools import cache
from importlib.resources import files


@cache
def source(name: str) -> str:
    """Text of ``store/<name>.lua`` with ``_event.lua`` (the event contract) in front, and
    ``_<component>.lua`` after it when the component has one."""
    here = files(__package__)
    parts = [here.joinpath("_event.lua")]
    shared = here.joinpath(f"_{name.split('_', 1)[0]}.lua")
    if shared.is_file():
        parts.append(shared)
    parts.append(here.joinpath(f"{name}.lua"))
    return "\n".join(part.read_text() for part in parts)
