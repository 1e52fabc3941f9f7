"""Untrusted text for display: literal, one line, every character visible, bounded.

Everything an agent or a store holds (session ids, messages, state names, model names) goes
through here before it reaches the screen: as ``rich.text.Text`` built from plain strings (never
markup), with every character that could move the cursor, style the terminal or reorder the line
replaced by a visible stand-in.
"""

from __future__ import annotations

from rich.cells import cell_len, get_character_cell_size
from rich.text import Text

REPLACEMENT = "\N{REPLACEMENT CHARACTER}"


def _visible_table() -> dict[int, str]:
    """C0 controls to their Control Pictures (␀ ␇ ␛ ␍ …), newline ⏎, tab ⇥, DEL ␡; C1 controls,
    bidi and zero-width formatting characters and lone surrogates to �."""
    table: dict[int, str] = {code: chr(0x2400 + code) for code in range(0x20)}
    table.update({0x0A: "⏎", 0x09: "⇥", 0x2028: "⏎", 0x2029: "⏎"})
    hidden = [
        *range(0x80, 0xA0),  # C1 controls
        0x00AD,  # soft hyphen
        0x061C,  # Arabic letter mark
        0x180E,  # Mongolian vowel separator
        *range(0x200B, 0x2010),  # zero-width space/joiners, LRM, RLM
        *range(0x202A, 0x202F),  # bidi embeddings and overrides
        *range(0x2060, 0x2070),  # word joiner, invisible operators, bidi isolates
        0xFEFF,  # zero-width no-break space
        *range(0xFFF9, 0xFFFC),  # interlinear annotations
        *range(0xD800, 0xE000),  # lone surrogates
    ]
    table.update(dict.fromkeys(hidden, REPLACEMENT))
    table[0x7F] = "␡"  # DEL
    return table


VISIBLE = _visible_table()


def clean(value: object, limit: int = 200) -> str:
    """``value`` (its first ``limit`` characters, then …) as one line showing every character."""
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.replace("\r\n", "\n").translate(VISIBLE)


def fit(text: str, cells: int) -> str:
    """``text`` cropped to at most ``cells`` terminal cells, ending in … when cut."""
    if cells <= 0:
        return ""
    if cell_len(text) <= cells:
        return text
    kept: list[str] = []
    used = 0
    for char in text:
        size = get_character_cell_size(char)
        if used + size > cells - 1:
            break
        kept.append(char)
        used += size
    return "".join(kept) + "…"


def literal(value: object, style: str = "", limit: int = 200) -> Text:
    """A Rich Text that shows ``value`` as typed: markup and escapes are just characters."""
    return Text(clean(value, limit), style=style, no_wrap=True, overflow="ellipsis")
