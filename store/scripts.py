"""Lua scripts: one file per atomic operation, each prefixed with the shared event prelude and,
where one exists, its component's shared helpers (``_<component>.lua`` for ``<component>_*``).

A script that needs another component's helpers names them on lines of its own at the top:
``--! include _notes.lua`` (the steering script delivers notes the same way notes_deliver does).
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

_INCLUDE = "--! include "


@cache
def source(name: str) -> str:
    """Text of ``store/<name>.lua`` with ``_event.lua`` (the event contract) in front, and
    ``_<component>.lua`` and any ``--! include`` after it."""
    here = files(__package__)
    body = here.joinpath(f"{name}.lua").read_text()
    parts = [here.joinpath("_event.lua").read_text()]
    shared = here.joinpath(f"_{name.split('_', 1)[0]}.lua")
    if shared.is_file():
        parts.append(shared.read_text())
    for line in body.splitlines():
        if line.startswith(_INCLUDE):
            parts.append(here.joinpath(line[len(_INCLUDE) :].strip()).read_text())
    parts.append(body)
    return "\n".join(parts)
