"""A visit at the console: two devices marked on the device screen, one prescription, each channel its own site, the
channels side by side while they run, per-channel stop and stop-all, a channel's fault named on the fault screen,
and the visit's end. Each outcome is judged on the simulated devices' own ground truth and the stored records."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from textual.pilot import Pilot
from textual.widgets import Input

from ionctl.console.screens.checks import SkinBeforeScreen
from ionctl.console.screens.prescription import PrescriptionScreen
from ionctl.console.screens.run import ConfirmAction
from ionctl.console.screens.setup import DeviceScreen, PatientScreen, PresetScreen
from ionctl.console.screens.visit import (
    BenchScreen,
    ChannelFaultScreen,
    ChannelsScreen,
    VisitConfirmScreen,
    VisitContactScreen,
    VisitEndScreen,
    VisitRunScreen,
)
from ionctl.console.setup import ConsoleSetup
from ionctl.console.visit import VisitController
from ionctl.records import Store
from ionctl.records.clinical import ClinicalDetails
from ionctl.records.store import Record
from tests.console.driving import (
    answer_skin,
    energised_for,
    fill,
    fully_visible,
    key_help,
    log_in,
    new_app,
    on_screen,
    run_async,
    shows,
    text_of,
    until,
    visit_setup,
)
from tests.session.inprocess import FLOOR_UA

SIZE = (120, 40)
PRESETS = ("dexamethasone", "lidocaine", "tap-water-hands", "asc-exosome-hand-eczema")


def records(setup: ConsoleSetup) -> list[Record]:
    """The visit's records in channel order."""
    with Store(setup.store_path) as store:
        stored = [store.get(int(row["id"])) for row in store.list_records()]

    def channel(record: Record) -> int:
        details = ClinicalDetails.of_record(record.fields)
        assert details is not None and details.visit is not None
        return details.visit.channel

    return sorted(stored, key=channel)


def outcomes(setup: ConsoleSetup) -> list[str]:
    return [str(r.fields["outcome"]) for r in records(setup)]


def controller_of(pilot: Pilot[Any]) -> VisitController:
    controller = pilot.app.flow.visit_controller  # type: ignore[attr-defined]
    assert controller is not None
    return controller


async def to_confirm(pilot: Pilot[Any], sites: tuple[str, ...] = ("left hand", "right hand"), *,
                     dose: str = "5") -> None:  # fmt: skip
    """Log in, the devices (two: marked with Space, in order; more: typed, separated by commas), the patient,
    dexamethasone at 2 mA on 10 cm² (10 s ramps), each channel's site, every contact, the skin check: the visit's
    confirmation."""
    count = len(sites)
    await log_in(pilot)
    await on_screen(pilot, DeviceScreen)
    await shows(pilot, f"{count} found")
    if count == 2:
        found = pilot.app.screen.query_one("#found")
        found.focus()
        await pilot.press("space", "down", "space")
        await shows(pilot, "Visit: 2 channel(s) marked")
        assert [str(o.prompt).split(":")[0] for o in found.options] == ["channel 1", "channel 2"]  # type: ignore[attr-defined]
    else:
        await fill(pilot, "#address", ", ".join(f"inprocess:sim{n}" for n in range(1, count + 1)))
    await pilot.press("enter")
    await on_screen(pilot, PatientScreen)
    await shows(pilot, f"Channel {count}:")
    await pilot.press(*"P0042", "enter")
    await on_screen(pilot, PresetScreen)
    await pilot.press("enter")  # dexamethasone
    await on_screen(pilot, PrescriptionScreen)
    for name, value in {"current_ma": "2", "electrode_area_cm2": "10", "dose_ma_min": dose, "ramp_up_s": "10",
                        "ramp_down_s": "10"}.items():  # fmt: skip
        await fill(pilot, f"#{name}", value)
    await shows(pilot, "0.200 mA/cm²")
    await pilot.press("ctrl+n")
    await on_screen(pilot, ChannelsScreen)
    for n, site in enumerate(sites, start=1):
        await fill(pilot, f"#site-{n}", site)
    await pilot.press("ctrl+n")
    await on_screen(pilot, VisitContactScreen)
    await until(pilot, lambda: text_of(pilot.app).count("within the window") == count, "every contact checked")
    await pilot.press("ctrl+n")
    await on_screen(pilot, SkinBeforeScreen)
    await answer_skin(pilot)
    await pilot.press("ctrl+n")
    await on_screen(pilot, VisitConfirmScreen)
    await shows(pilot, f"Channel {count}: {sites[-1]} on inprocess:sim{count}")


@run_async
async def test_a_two_hand_visit_shows_both_channels_side_by_side_and_ends_with_a_record_per_hand(
    tmp_path: Path,
) -> None:
    setup, sources, truths, gates = visit_setup(tmp_path)
    gates[0].hold_when(energised_for(20.0))
    async with new_app(setup).run_test(size=SIZE) as pilot:
        await to_confirm(pilot)
        await pilot.press("y")
        await on_screen(pilot, VisitRunScreen)
        await until(pilot, lambda: gates[0].held, "channel 1 held while delivering")
        await until(pilot, lambda: "DELIVERING" in str(pilot.app.screen.query_one("#channel-1").query_one(".state")
                                                      .render()), "channel 1 shown delivering")  # fmt: skip
        panels = [pilot.app.screen.query_one(f"#channel-{n}") for n in (1, 2)]
        assert [p.border_title for p in panels] == ["1 left hand", "2 right hand"]
        assert [p.border_subtitle for p in panels] == ["inprocess:sim1", "inprocess:sim2"]
        current = re.search(r"(\d+\.\d\d) mA\s+\d+:\d\d left", text_of(pilot.app))
        assert current is not None and abs(float(current.group(1)) - 2.0) < 0.05, text_of(pilot.app)
        assert panels[0].region.y == panels[1].region.y and panels[0].region.x < panels[1].region.x  # side by side
        await pilot.press("b")  # the bench: every device found, each in use by its channel
        await on_screen(pilot, BenchScreen)
        await shows(pilot, "inprocess:sim2  serial  simulated device 2  channel 2 (right hand)")
        await pilot.press("escape")
        await on_screen(pilot, VisitRunScreen)
        gates[0].release()
        await on_screen(pilot, VisitEndScreen)
        await shows(pilot, "Visit ended: COMPLETED")
        await answer_skin(pilot)
        await pilot.press("ctrl+s")
        await shows(pilot, "Skin check after recorded in records")
        await pilot.press("ctrl+o")
        await shows(pilot, "Chart PDFs written")
    stored = records(setup)
    assert outcomes(setup) == ["completed", "completed"]
    details = [ClinicalDetails.of_record(r.fields) for r in stored]
    assert [d.site.text if d and d.site else None for d in details] == ["left hand", "right hand"]
    visits = [d.visit for d in details if d is not None]
    assert len(visits) == 2 and visits[0] is not None and visits[1] is not None and visits[0].id == visits[1].id
    for record, truth in zip(stored, truths, strict=True):  # each record's dose against its own device's truth
        assert abs(float(record.fields["dose_ma_min"]) - truth.dose_ma_min) <= 0.01 * truth.dose_ma_min
        assert abs(truth.dose_ma_min - 5.0) <= 0.05
        with Store(setup.store_path) as store:
            assert len(store.audit(action="skin-check-before", record_id=record.id)) == 1
            assert len(store.audit(action="skin-check-after", record_id=record.id)) == 1
    assert (tmp_path / "record-1.pdf").exists() and (tmp_path / "record-2.pdf").exists()


@run_async
async def test_stopping_one_channel_ramps_only_that_one_down_and_stop_all_ends_the_rest(tmp_path: Path) -> None:
    setup, sources, truths, gates = visit_setup(tmp_path)
    for gate in gates:  # each device's clock moves only as its channel reads: hold both where the test acts
        gate.hold_when(energised_for(20.0))
    async with new_app(setup).run_test(size=SIZE) as pilot:
        await to_confirm(pilot, dose="20")
        await pilot.press("y")
        await on_screen(pilot, VisitRunScreen)
        await until(pilot, lambda: gates[0].held and gates[1].held, "both channels held while delivering")
        await pilot.press("2", "S")  # Caps Lock on: the upper-case key does the same
        await on_screen(pilot, ConfirmAction)
        await shows(pilot, "STOP channel 2 (right hand)?")
        await pilot.press("y")
        gates[1].release()
        controller = controller_of(pilot)
        await until(pilot, lambda: not controller.channel_running(2), "channel 2 to end")
        assert controller.channel_running(1), "channel 1 went on"
        assert truths[0].current_ua >= FLOOR_UA and truths[1].current_ua < FLOOR_UA  # on the devices themselves
        await pilot.press("x")
        await on_screen(pilot, ConfirmAction)
        await shows(pilot, "STOP EVERY CHANNEL?")
        await pilot.press("y")
        gates[0].release()
        await on_screen(pilot, VisitEndScreen)
    assert outcomes(setup) == ["stopped", "stopped"]
    for truth in truths:  # both devices' outputs really at zero, and neither gave its 20 mA·min
        assert truth.current_ua < FLOOR_UA and truth.dose_ma_min < 19.0


@run_async
async def test_a_fault_on_one_channel_names_it_and_the_stop_all_policy_ramps_the_other_down(tmp_path: Path) -> None:
    setup, sources, truths, gates = visit_setup(tmp_path, faults={2: ("electrode-lift@20",)})
    # Each device's clock moves only as its channel reads: both delivering before the lift comes.
    gates[0].hold_when(energised_for(10.0))
    gates[1].hold_when(energised_for(15.0))
    async with new_app(setup).run_test(size=SIZE) as pilot:
        await to_confirm(pilot, dose="20")
        await pilot.press("y")
        await until(pilot, lambda: gates[0].held and gates[1].held, "both channels delivering")
        assert truths[0].current_ua >= 1900 and truths[1].current_ua >= 1900
        for gate in gates:
            gate.release()
        await on_screen(pilot, ChannelFaultScreen)
        await shows(pilot, "CHANNEL 2 (RIGHT HAND): FAULT")
        await shows(pilot, "Enter: back to")
        await until(pilot, lambda: not controller_of(pilot).running, "the visit to end")
        await pilot.press("enter")
        await on_screen(pilot, VisitEndScreen)
        shown = text_of(pilot.app)
        assert "Visit ended:" in shown and "FAULT" in shown, shown
    assert outcomes(setup) == ["stopped", "fault"]
    notes = " ".join(str(e["text"]) for e in records(setup)[0].events)
    assert "visit: channel 2 (right hand) faulted" in notes and "visit policy stop-all" in notes, notes
    for truth in truths:  # the other hand ramped down on its own device, well short of its dose
        assert truth.current_ua < FLOOR_UA and truth.dose_ma_min < 19.0
    assert truths[0].peak_ua >= 1900  # it had been delivering its 2 mA


@run_async
async def test_ctrl_c_during_a_visit_stops_every_channel(tmp_path: Path) -> None:
    setup, sources, truths, gates = visit_setup(tmp_path)
    for gate in gates:
        gate.hold_when(energised_for(15.0))
    async with new_app(setup).run_test(size=SIZE) as pilot:
        await to_confirm(pilot, dose="20")
        await pilot.press("y")
        await on_screen(pilot, VisitRunScreen)
        await until(pilot, lambda: gates[0].held and gates[1].held, "both channels delivering")
        await pilot.press("ctrl+c")
        for gate in gates:
            gate.release()
        await on_screen(pilot, VisitEndScreen)
    assert outcomes(setup) == ["stopped", "stopped"]
    for truth in truths:
        assert truth.current_ua < FLOOR_UA and truth.dose_ma_min < 19.0


@run_async
async def test_two_channels_on_one_site_go_no_further(tmp_path: Path) -> None:
    setup, _, truths, _ = visit_setup(tmp_path)
    async with new_app(setup).run_test(size=SIZE) as pilot:
        await log_in(pilot)
        await shows(pilot, "2 found")
        await fill(pilot, "#address", "inprocess:sim1, inprocess:sim2")  # typed, as for devices not discovered
        await pilot.press("enter")
        await on_screen(pilot, PatientScreen)
        await pilot.press(*"P0042", "enter")
        await on_screen(pilot, PresetScreen)
        await pilot.press("enter")
        await on_screen(pilot, PrescriptionScreen)
        for name, value in {"current_ma": "2", "electrode_area_cm2": "10", "dose_ma_min": "5"}.items():
            await fill(pilot, f"#{name}", value)
        await pilot.press("ctrl+n")
        await on_screen(pilot, ChannelsScreen)
        await fill(pilot, "#site-1", "left hand")
        await fill(pilot, "#site-2", "L hand")
        await shows(pilot, "channels 1 and 2 both treat the left hand")
        await pilot.press("ctrl+n")
        assert isinstance(pilot.app.screen, ChannelsScreen)
    assert all(truth.peak_ua == 0 for truth in truths)


@run_async
async def test_a_preset_with_a_visit_gives_each_channel_its_site_to_start_from(tmp_path: Path) -> None:
    setup, _, _, _ = visit_setup(tmp_path)
    async with new_app(setup).run_test(size=SIZE) as pilot:
        await log_in(pilot)
        await shows(pilot, "2 found")
        await fill(pilot, "#address", "inprocess:sim1, inprocess:sim2")
        await pilot.press("enter")
        await on_screen(pilot, PatientScreen)
        await pilot.press(*"P0042", "enter")
        await on_screen(pilot, PresetScreen)
        await pilot.press(*["down"] * PRESETS.index("asc-exosome-hand-eczema"), "enter")
        await on_screen(pilot, PrescriptionScreen)
        for name, value in {"current_ma": "4", "electrode_area_cm2": "20", "duration_min": "20"}.items():
            await fill(pilot, f"#{name}", value)
        await pilot.press("ctrl+n")
        await on_screen(pilot, ChannelsScreen)
        sites = [pilot.app.screen.query_one(f"#site-{n}", Input).value for n in (1, 2)]
        assert sites == ["left hand", "right hand"]  # the exosome preset's visit: both hands
        await pilot.press("ctrl+n")
        await on_screen(pilot, VisitContactScreen)


EIGHT = ("left hand", "right hand", "left foot", "right foot", "left forearm", "right forearm", "left wrist",
         "right wrist")  # fmt: skip


@run_async
async def test_eight_channels_fit_an_80x24_terminal_each_panel_whole_and_every_key_shown(tmp_path: Path) -> None:
    setup, _, truths, gates = visit_setup(tmp_path, count=8)
    for gate in gates:
        gate.hold_when(energised_for(10.0))
    async with new_app(setup).run_test(size=(80, 24)) as pilot:
        await to_confirm(pilot, EIGHT, dose="20")
        await pilot.press("y")
        await on_screen(pilot, VisitRunScreen)
        await until(pilot, lambda: all(gate.held for gate in gates), "every channel delivering")
        await pilot.pause(0.3)  # a redraw
        for n in range(1, 9):
            panel = pilot.app.screen.query_one(f"#channel-{n}")
            assert fully_visible(pilot.app, panel), f"channel {n}'s panel is cut at 80x24: {panel.region}"
        shown_keys = {key.key for key in key_help(pilot.app) if fully_visible(pilot.app, key)}  # type: ignore[attr-defined]
        assert {"s", "a", "x", "b"} <= shown_keys, shown_keys
        await pilot.press("ctrl+c")  # every channel stops
        for gate in gates:
            gate.release()
        await on_screen(pilot, VisitEndScreen)
    assert outcomes(setup) == ["stopped"] * 8
    assert all(truth.current_ua < FLOOR_UA for truth in truths)
