"""Lua scripts: one file per atomic operation, each prefixed with the shared event prelude."""

from __future__ import annotations

from functools import cache
from importlib.resources import files


@cache
def source(name: str) -> str:
    """Text of ``store/<name>.lua`` with ``_event.lua`` in front (the event contract)."""
    here = files(__package__)
    return here.joinpath("_event.lua").read_text() + "\n" + here.joinpath(f"{name}.lua").read_text()
