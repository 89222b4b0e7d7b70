"""What the step screens share: the app and its flow, the next/back keys, a titled layout."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from textual.binding import Binding, BindingType
from textual.screen import Screen

if TYPE_CHECKING:
    from ionctl.console.app import ConsoleApp, Flow


class Step(Screen[None]):
    """A step of the flow: ctrl+n goes on (when the step is complete), escape goes back."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+n", "next", "Next"),
        Binding("escape", "back", "Back"),
    ]

    @property
    def console(self) -> ConsoleApp:
        return cast("ConsoleApp", self.app)

    @property
    def flow(self) -> Flow:
        return self.console.flow

    def action_next(self) -> None:
        """Go on to the next step if this one is complete (each step says what is missing otherwise)."""

    def action_back(self) -> None:
        """Go back one step."""
