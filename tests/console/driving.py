"""Driving the console in tests: a clinic's site file and record store with its people (tests/people.py), an
in-process simulator behind it, a gate that holds the session thread where a test wants to look or act, a
clock for the idle lock that moves only when a test moves it, and pilot helpers that log in, read the screen
and type like a technician."""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from textual.app import App
from textual.pilot import Pilot
from textual.widget import Widget
from textual.widgets import Digits, Input, Static

from ionctl.config import load_config
from ionctl.config.people import Act
from ionctl.console.app import ConsoleApp
from ionctl.console.setup import ConsoleSetup
from ionctl.drivers.discovery import Found
from sim.device import FaultSpec, SimulatedDevice
from sim.plant import LOAD_PRESETS
from tests.people import PASSWORDS, SUPERVISOR, TECHNICIAN, TEST_COST, Clinic, make_clinic
from tests.session.inprocess import GroundTruth, InProcessSource, simulated

ADDRESS = "inprocess:sim"
#: Real seconds a test waits for anything before failing (the machine may be slow and shared).
PATIENCE_S = 60.0


class Gate:
    """A `before_read` hook: holds the session's thread at the first read where the predicate given to
    `hold_when` is true, until the test calls `release()`. Each predicate holds once; a hold never outlasts
    PATIENCE_S (so a failing test cannot hang the session thread)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._when: Callable[[InProcessSource], bool] | None = None
        self.held = False

    def hold_when(self, when: Callable[[InProcessSource], bool]) -> None:
        with self._cond:
            self._when = when

    def release(self) -> None:
        with self._cond:
            self.held = False
            self._cond.notify_all()

    def __call__(self, source: InProcessSource) -> None:
        with self._cond:
            when = self._when
            if when is None or not when(source):
                return
            self._when, self.held = None, True
            deadline = time.monotonic() + PATIENCE_S
            while self.held and time.monotonic() < deadline:
                self._cond.wait(deadline - time.monotonic())
            self.held = False


def run_async(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test on its own event loop (the suite has no async plugin)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


def energised_for(seconds: float) -> Callable[[InProcessSource], bool]:
    def when(source: InProcessSource) -> bool:
        since = source.since_energised_s
        return since is not None and since >= seconds

    return when


class Clock:
    """The idle lock's clock: host seconds that pass only when a test says (`advance`)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def clinic_in(folder: Path, accounts: str = "") -> Clinic:
    """A clinic (tests/people.py) in `folder`: the site file (`ionctl config init`'s, naming its administrator),
    with `accounts` added to its `[accounts]` table and approved by the supervisor, and the record store
    `folder/records.sqlite3` with one person of each role."""
    if (folder / "site.toml").exists():  # the same clinic again (the console opened a second time)
        config = folder / "site.toml"
        (administrator,) = load_config(config).accounts.administrators
        return Clinic(config, folder / "records.sqlite3", administrator)
    clinic = make_clinic(folder, approve=not accounts)
    if accounts:
        text = clinic.config.read_text(encoding="utf-8").replace("[accounts]\n", f"[accounts]\n{accounts}\n", 1)
        clinic.config.write_text(text, encoding="utf-8")
        from ionctl.records import Store

        with Store(clinic.store) as store:
            site = load_config(clinic.config)
            detail = {"path": site.source, "sha256": site.sha256, "presets": sorted(site.presets), "note": ""}
            clinic.people(store).signed(clinic.login(store, SUPERVISOR), "config-approve", detail)
    return clinic


def console_setup(
    tmp_path: Path, *, faults: tuple[str, ...] = (), load: str = "normal", accounts: str = "", **options: Any
) -> tuple[ConsoleSetup, InProcessSource, Gate]:
    """A clinic in `tmp_path` (`clinic_in`: its site file, its record store and people), and a simulated device
    (skin `load`) behind the address `inprocess:sim`, with its session thread paced by a `Gate`. The idle lock
    reads a `Clock` (`setup.clock`) unless `options` give another."""
    source, _ = simulated(LOAD_PRESETS[load], faults=[FaultSpec.parse(f) for f in faults])
    gate = Gate()
    source.before_read = gate
    opened: list[str] = []

    def open_device(address: str) -> InProcessSource:
        opened.append(address)
        assert address == ADDRESS, address
        return source

    clinic = clinic_in(tmp_path, accounts)
    options = {"clock": Clock(), **options}
    setup = ConsoleSetup.from_config(
        load_config(clinic.config), clinic.store, device=ADDRESS, open_device=open_device,
        discover=lambda: ([Found(ADDRESS, "serial", "simulated device")], None), reconnect=False,
        export_dir=tmp_path, cost=TEST_COST, **options,
    )  # fmt: skip
    return setup, source, gate


def visit_setup(
    tmp_path: Path, count: int = 2, *, faults: dict[int, tuple[str, ...]] | None = None, **options: Any
) -> tuple[ConsoleSetup, list[InProcessSource], list[GroundTruth], list[Gate]]:
    """`console_setup` with `count` in-process simulated devices for a visit, at `inprocess:sim1`, `inprocess:sim2`,
    ... (all discovered), each with its faults (`faults[n]`, n 1-based), its ground truth and its own gate."""
    sources, truths, gates = [], [], []
    for n in range(1, count + 1):
        device_faults = [FaultSpec.parse(f) for f in (faults or {}).get(n, ())]
        truth = GroundTruth()
        truth.device = SimulatedDevice(LOAD_PRESETS["normal"], faults=device_faults, seed=n, trace=truth)
        source = InProcessSource(truth.device, address=f"{ADDRESS}{n}")
        gate = Gate()
        source.before_read = gate
        sources.append(source)
        truths.append(truth)
        gates.append(gate)
    by_address = {source.address: source for source in sources}

    def open_device(address: str) -> InProcessSource:
        return by_address[address]

    clinic = clinic_in(tmp_path)
    found = [Found(address, "serial", f"simulated device {n}") for n, address in enumerate(by_address, start=1)]
    setup = ConsoleSetup.from_config(
        load_config(clinic.config), clinic.store, device=None, open_device=open_device,
        discover=lambda: (found, None), reconnect=False, export_dir=tmp_path, cost=TEST_COST,
        **{"clock": Clock(), **options},
    )  # fmt: skip
    return setup, sources, truths, gates


def new_app(setup: ConsoleSetup) -> ConsoleApp:
    return ConsoleApp(setup)


async def log_in(pilot: Pilot[Any], name: str = TECHNICIAN, password: str | None = None) -> None:
    """The login screen, by keyboard: the name, Enter, the password (the clinic's for `name`), Enter; then wait
    for the first step (the device) and the person logged in."""
    from ionctl.console.screens.login import LoginScreen

    await on_screen(pilot, LoginScreen)
    await fill(pilot, "#login-name", name)
    await pilot.press("enter", *(password if password is not None else PASSWORDS[name]), "enter")
    await until(pilot, lambda: _logged_in(pilot.app, name), f"{name} to be logged in")


def _logged_in(app: App[Any], name: str) -> bool:
    identity = getattr(app, "identity", None)
    return identity is not None and identity.name == name and identity.may(Act.RUN_SESSION)


def text_of(app: App[Any]) -> str:
    """Everything the top screen shows as text: its Statics and Labels, Digits, and Inputs' values."""
    parts: list[str] = []
    for widget in app.screen.query(Widget):
        if isinstance(widget, Digits):
            parts.append(widget.value)
        elif isinstance(widget, Static):
            parts.append(str(widget.render()))
        elif isinstance(widget, Input):
            parts.append(widget.value)
    return "\n".join(parts)


async def until(pilot: Pilot[Any], condition: Callable[[], bool], what: str) -> None:
    """Let the app run until `condition()` holds; fail after PATIENCE_S."""
    deadline = time.monotonic() + PATIENCE_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; the screen shows:\n{text_of(pilot.app)}")
        await pilot.pause(0.02)


async def on_screen(pilot: Pilot[Any], kind: type, what: str | None = None) -> None:
    await until(pilot, lambda: isinstance(pilot.app.screen, kind), what or f"the {kind.__name__}")


async def shows(pilot: Pilot[Any], text: str) -> None:
    await until(pilot, lambda: text in text_of(pilot.app), f"{text!r} on the screen")


async def fill(pilot: Pilot[Any], selector: str, text: str) -> None:
    """Replace an input's text by keyboard: focus it, clear it, type."""
    field = pilot.app.screen.query_one(selector, Input)
    field.focus()
    await pilot.press("home", "ctrl+k", *text)


def fully_visible(app: App[Any], widget: Widget) -> bool:
    """`widget` is inside the terminal and shows at its corners: not clipped by the screen's edge, not scrolled
    out of its container, not covered by another widget."""
    region = widget.region
    if region.area == 0 or not app.screen.region.contains_region(region):
        return False
    for x, y in {(region.x, region.y), (region.right - 1, region.bottom - 1)}:
        try:
            shown, _ = app.screen.get_widget_at(x, y)
        except Exception:  # nothing there
            return False
        if shown is not widget and widget not in shown.ancestors:
            return False
    return True


def key_help(app: App[Any]) -> list[Widget]:
    """The key help of the top screen: its footer's keys."""
    from textual.widgets import Footer
    from textual.widgets._footer import FooterKey

    return list(app.screen.query_one(Footer).query(FooterKey))


def trace_text(app: App[Any]) -> str:
    """The run screen's live trace as drawn, one line per row."""
    from textual.geometry import Region

    from ionctl.console.screens.run import Trace

    trace = app.screen.query_one("#trace", Trace)
    return "\n".join(strip.text for strip in trace.render_lines(Region(0, 0, *trace.size)))


BRAILLE = range(0x2800, 0x2900)


def has_braille(text: str) -> bool:
    return any(ord(c) in BRAILLE for c in text)


async def answer_skin(pilot: Pilot[Any], answers: dict[str, str] | None = None, *, key: str = "n",
                      reasons: dict[str, str] | None = None) -> None:  # fmt: skip
    """Answer the skin check form on the screen by keyboard: each item's key (`n`, `y` or `i`, either case;
    `key` for those not in `answers`; "" leaves the item unanswered), and the reason typed beside an item not
    inspected."""
    from ionctl.records.skin import ITEMS

    answers = answers or {}
    first = f"#skin-{next(iter(ITEMS))}"
    await until(pilot, lambda: bool(pilot.app.screen.query(first)), "the skin check form")  # a new screen mounts
    for item in ITEMS:
        if answers.get(item, key):
            pilot.app.screen.query_one(f"#skin-{item}").focus()
            await pilot.press(answers.get(item, key))
    for item, reason in (reasons or {}).items():
        await fill(pilot, f"#skin-{item}-reason", reason)
