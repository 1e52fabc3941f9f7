"""Small modal prompts for operator actions: pick a state, type a number."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

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


class NumberPrompt(ModalScreen[int | None]):
    """Ask for a positive whole number (e.g. a new token limit)."""

    AUTO_FOCUS = "*"  # the app's own AUTO_FOCUS names a widget of the main screen
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, title: str, value: int | None = None) -> None:
        super().__init__()
        self._title = title
        self._value = value

    def compose(self) -> ComposeResult:
        with Vertical(classes="prompt"):
            yield Static(Text(self._title, style="bold"))
            yield Input(
                value="" if self._value is None else str(self._value),
                type="integer",
                id="number",
            )
            yield Static(Text("enter saves · esc cancels", style="dim"))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        try:
            number = int(event.value)
        except ValueError:
            self.notify("a whole number, please", severity="warning")
            return
        if number <= 0:
            self.notify("it must be above 0", severity="warning")
            return
        self.dismiss(number)


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
