"""Untrusted text for display: literal, one line, every character visible, bounded.

Everything an agent or a store holds (session ids, messages, state names, model names) goes
through here before it reaches the screen: as ``rich.text.Text`` built from plain strings (never
markup), with every character that could move the cursor, style the terminal or reorder the line
replaced by a visible stand-in.

Also here: every duration, age and ETA the panes show (``humanise_age`` and when it next
changes, ``duration``, ``span_text``, ``eta_text``, ``clock_time``).
"""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo

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


# -- durations, ages and ETAs: every pane's, here --------------------------------------------

_AGE_UNITS = (10_000, 60_000, 3_600_000, 86_400_000)  # ms per step: 10 s, m, h, d
"""Under a minute an age moves in 10-second steps: a column of ages that changed every second
redrew every visible row once a second, the biggest part of an idle dashboard's cost."""


def humanise_age(ms: int) -> str:
    """<10s, 20s, 3m, 2h, 4d (whole steps, rounded down; never negative; at most 999d)."""
    seconds = max(ms, 0) // 1000
    if seconds < 10:
        return "<10s"
    if seconds < 60:
        return f"{seconds // 10 * 10}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h"
    return f"{min(seconds // 86400, 999)}d"


def age_due(since_ms: int, now_ms: int) -> int:
    """When (clock ms) :func:`humanise_age` of ``now - since`` next shows another text: the
    next 10-second step under a minute, the next minute under an hour, and so on."""
    age = max(now_ms - since_ms, 0)
    unit = next((u for u, limit in zip(_AGE_UNITS, (60_000, 3_600_000, 86_400_000), strict=False)
                 if age < limit), _AGE_UNITS[-1])  # fmt: skip
    return since_ms + (age // unit + 1) * unit


def humanise_count(n: int) -> str:
    """At most 4 characters: 9999, 12k, 999k, 1.2M, 12M."""
    if n < 10_000:
        return str(n)
    if n < 1_000_000:
        return f"{n // 1000}k"
    if n < 10_000_000:
        return f"{n / 1_000_000:.1f}M"
    return f"{min(n // 1_000_000, 999)}M"


def duration(ms: int) -> str:
    """A running time, compact: 42s, 3m07s, 2h05m, 4d03h."""
    seconds = max(0, ms // 1000)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def span_text(ms: int) -> str:
    """A duration in ms, roughly: '45 s', '12 min', '3 h'."""
    seconds = max(ms, 0) / 1000
    if seconds < 1:
        return "< 1 s"
    if seconds < 90:
        return f"{round(seconds)} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    hours = seconds / 3600
    return f"{round(hours)} h" if hours < 48 else f"{round(hours / 24):,} d"


def eta_text(duration: timedelta | None) -> str:
    """Time until something (a budget's exhaustion), roughly: '~12 min', '~3 h', '~4 d'; '—'
    when it never comes at this pace."""
    if duration is None:
        return "—"
    minutes = duration.total_seconds() / 60
    if minutes < 1:
        return "< 1 min"
    if minutes < 90:
        return f"~{round(minutes)} min"
    hours = minutes / 60
    if hours < 48:
        return f"~{round(hours)} h"
    days = hours / 24
    if days < 1000:
        return f"~{round(days):,} d"
    return "> 1,000 d"


def clock_time(ms: object, tz: tzinfo | None = None) -> str:
    """Server ms as HH:MM:SS on ``tz``'s clock (default: local); --:--:-- when not a time."""
    try:
        return datetime.fromtimestamp(int(ms) / 1000, tz).strftime("%H:%M:%S")  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError, OSError):
        return "--:--:--"
