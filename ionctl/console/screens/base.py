"""What the step screens share: the app and its flow, the next/back keys, a titled layout; and `both_cases`,
which every screen's letter keys go through so that Caps Lock cannot disable one."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import TYPE_CHECKING, ClassVar, cast

from textual.binding import Binding, BindingType
from textual.screen import Screen

if TYPE_CHECKING:
    from ionctl.console.app import ConsoleApp, Flow


def both_cases(bindings: Iterable[BindingType]) -> list[BindingType]:
    """The same bindings with every single-letter key bound in both cases.

    With Caps Lock on, a terminal sends `S` for the S key (in the legacy encoding and in the kitty keyboard
    protocol alike), and Textual matches keys exactly: a console bound to `s` alone would ignore STOP and ABORT
    without a word. A binding on one letter shows that letter in upper case in the key help, as the screens
    and the README name the keys. Ctrl combinations need nothing: Caps Lock does not change them."""
    result: list[BindingType] = []
    for item in bindings:
        binding = item if isinstance(item, Binding) else Binding(*item)
        keys = [key.strip() for key in binding.key.split(",")]
        letters = [key for key in keys if len(key) == 1 and key.isalpha()]
        if not letters:
            result.append(binding)
            continue
        added = [key.swapcase() for key in letters if key.swapcase() not in keys]
        display = binding.key_display or (letters[0].upper() if len(keys) == 1 else None)
        result.append(dataclasses.replace(binding, key=",".join(keys + added), key_display=display))
    return result


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
