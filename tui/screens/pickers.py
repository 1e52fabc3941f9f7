"""Small modal prompts for operator actions: pick a state, type a number or a limit, confirm."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, OptionList, Static
from textual.widgets.option_list import Option

from store.budget import parse_tokens

from ..text import literal


class StatePicker(ModalScreen[str | None]):
    """Choose the workflow's next state (valid ones), or any state when forcing."""

    AUTO_FOCUS = "*"  # the app's own AUTO_FOCUS names a widget of the main screen
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, title: str, states: Sequence[str]) -> None:
        super().__init__()
        self._title = title
        self._states = list(states)

    def compose(self) -> ComposeResult:
        with Vertical(classes="prompt"):
            yield Static(Text(self._title, style="bold"))
            if self._states:
                yield OptionList(
                    *(Option(literal(state), id=str(i)) for i, state in enumerate(self._states)),
                    id="states",
                )
            else:
                yield Static(Text("no state to move to from here", style="dim"))
            yield Static(Text("enter picks · esc cancels", style="dim"))

    def on_mount(self) -> None:
        for options in self.query(OptionList):
            options.highlighted = 0
            options.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self._states[int(event.option.id or 0)])


class TextPrompt(ModalScreen[str | None]):
    """Ask for one line of text (e.g. why a state is forced)."""

    AUTO_FOCUS = "*"  # the app's own AUTO_FOCUS names a widget of the main screen
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, title: str) -> None:
        super().__init__()
        self._title = title

    def compose(self) -> ComposeResult:
        with Vertical(classes="prompt"):
            yield Static(Text(self._title, style="bold"))
            yield Input(id="text")
            yield Static(Text("enter saves · esc cancels", style="dim"))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.dismiss(event.value.strip())


class LimitPrompt(ModalScreen[int | str | None]):
    """A token limit that binds the agent, or ``off`` to lift the binding (the limit stays).

    Returns the new limit, :data:`LimitPrompt.OFF`, or None (cancelled)."""

    AUTO_FOCUS = "*"  # the app's own AUTO_FOCUS names a widget of the main screen
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]
    OFF = "off"
    OFF_WORDS = frozenset({"off", "none", "unbind", "lift"})

    def __init__(self, title: str, value: int | None = None) -> None:
        super().__init__()
        self._title = title
        self._value = value

    def compose(self) -> ComposeResult:
        with Vertical(classes="prompt"):
            yield Static(Text(self._title, style="bold"))
            yield Input(value="" if self._value is None else str(self._value), id="number")
            yield Static(
                Text(
                    "a number binds the agent to that limit (held once it is spent) · "
                    "'off' lifts the binding, keeps the limit",
                    style="dim",
                )
            )
            yield Static(Text("enter saves · esc cancels", style="dim"))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        value = event.value.strip()
        if value.lower() in self.OFF_WORDS:
            self.dismiss(self.OFF)
            return
        try:
            number = parse_tokens(value)
        except ValueError as error:
            self.notify(f"{error} (or 'off')", severity="warning", markup=False)
            return
        self.dismiss(number)


class Confirm(ModalScreen[bool]):
    """A yes/no question: ``y`` (or enter on Yes) says yes; ``n`` or escape says no."""

    AUTO_FOCUS = "#confirm-no"  # the safe answer has the focus
    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: Text | str, detail: Text | str = "", yes: str = "Yes") -> None:
        super().__init__()
        self._question = question if isinstance(question, Text) else Text(question)
        self._detail = detail if isinstance(detail, Text) else Text(detail)
        self._yes = yes

    def compose(self) -> ComposeResult:
        with Vertical(classes="prompt"):
            question = self._question.copy()
            question.stylize("bold")
            yield Static(question)
            if self._detail:
                yield Static(self._detail)
            with Horizontal(id="confirm-buttons"):
                yield Button(Text(f"{self._yes} (y)"), variant="warning", id="confirm-yes")
                yield Button(Text("Cancel (n)"), id="confirm-no")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "confirm-yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
