"""`ionctl run --channel ...`: a two-hand visit as a user runs it (a subprocess) against two simulated devices, each
over its own pty with its own ground-truth trace, which judges each channel's dose; and SIGKILL of the host during
a visit: every device at zero by its own watchdog, every record of the visit closed `interrupted` at recovery."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from ionctl.records import Store
from tests.sim.endpoints import ROOT, running_sim
from tests.test_run import SCALE, TESS, in_clinic, ionctl, trace_rows, within_1pct

HANDS = ("left hand", "right hand")
#: The exosome regimen's shape on dexamethasone's limits: each hand under the cathode.
RX = ("--drug", "dexamethasone", "--polarity", "cathode", "--electrode-area", "10", "--current", "3", "--dose",
      "10", "--patient", "P-VISIT")  # fmt: skip


@contextmanager
def devices(tmp_path: Path, count: int = 2) -> Iterator[list[tuple[str, Path]]]:
    """`count` simulated firmware devices, each its own process on its own pty: [(address, trace)]."""
    with ExitStack() as stack:
        found = []
        for n in range(1, count + 1):
            link, trace = tmp_path / f"ionto{n}", tmp_path / f"truth{n}.jsonl"
            stack.enter_context(running_sim("--serial-link", str(link), "--time-scale", SCALE, "--trace", str(trace),
                                            "--seed", str(n)))  # fmt: skip
            found.append((str(link), trace))
        yield found


def channels(found: list[tuple[str, Path]]) -> list[str]:
    return [arg for (address, _), site in zip(found, HANDS, strict=True) for arg in ("--channel", f"{site}={address}")]


def test_a_two_hand_visit_completes_each_hand_with_the_dose_its_own_device_measured(tmp_path: Path) -> None:
    with devices(tmp_path) as found:
        done = ionctl("run", *channels(found), *RX, *in_clinic(tmp_path), "--yes", "--json", input=TESS,
                      timeout_s=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    visit = json.loads(done.stdout)
    assert visit["exit_code"] == 0 and [c["label"] for c in visit["channels"]] == list(HANDS)
    for channel, (_, trace) in zip(visit["channels"], found, strict=True):
        truth = trace_rows(trace)[-1]["dose_uas"] / 60_000
        assert channel["outcome"] == "completed"
        assert within_1pct(channel["dose_ma_min"], truth), (channel["label"], channel["dose_ma_min"], truth)
        assert within_1pct(truth, 10.0)
    ids = [c["record_id"] for c in visit["channels"]]
    with Store(tmp_path / "clinic" / "records.sqlite3") as store:
        clinical = [json.loads(store.get(i).fields["clinical"] or "{}") for i in ids]
        assert store.verify() is None
    assert {c["visit"]["id"] for c in clinical} == {visit["visit_id"]}
    assert [c["visit"]["channel"] for c in clinical] == [1, 2]


def test_a_visit_is_refused_before_any_device_opens_when_two_channels_name_one_site(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-port")
    done = ionctl("run", "--channel", f"left hand={missing}1", "--channel", f"Left hand={missing}2", *RX,
                  *in_clinic(tmp_path), "--yes", input=TESS)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "both treat the left hand" in done.stderr and "no device was opened" in done.stderr


def _at_zero(trace: Path) -> bool:
    rows = trace_rows(trace)
    return bool(rows) and rows[-1]["current_ua"] == 0 and rows[-1]["state"] != "RUNNING"


def test_sigkill_during_a_visit_every_device_ramps_to_zero_and_every_record_closes_interrupted(tmp_path: Path) -> None:
    db = tmp_path / "clinic" / "records.sqlite3"
    run_as = in_clinic(tmp_path)
    long_rx = (*RX[:-4], "--dose", "40", *RX[-2:])
    with devices(tmp_path) as found:
        process = subprocess.Popen([sys.executable, "-m", "ionctl", "run", *channels(found), *long_rx, *run_as,
                                    "--yes"], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, text=True)  # fmt: skip
        assert process.stderr is not None and process.stdin is not None
        process.stdin.write(TESS)
        process.stdin.close()
        delivering: set[str] = set()
        for line in process.stderr:
            delivering |= {site for site in HANDS if f"{site}] delivering:" in line}
            if delivering == set(HANDS):
                break
        else:
            raise AssertionError(f"not every channel delivered; exit {process.wait()}")
        time.sleep(0.5)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        deadline = time.monotonic() + 15  # each device's host-loss watchdog, then its ramp to zero
        while not all(_at_zero(trace) for _, trace in found):
            assert time.monotonic() < deadline, [trace_rows(t)[-1] for _, t in found]
            time.sleep(0.2)
    assert process.returncode == -signal.SIGKILL
    for _, trace in found:
        rows = trace_rows(trace)
        assert max(r["current_ua"] for r in rows) > 2900  # it had been delivering
    listed = ionctl("records", "list", "--db", str(db), "--json")
    assert listed.returncode == 0, listed.stderr
    assert listed.stderr.count("closed as interrupted") == 2, listed.stderr
    records = json.loads(listed.stdout)
    assert [r["outcome"] for r in records] == ["interrupted", "interrupted"]
    with Store(db) as store:
        assert store.verify() is None
        visits = {json.loads(store.get(r["id"]).fields["clinical"] or "{}").get("visit", {}).get("id") for r in records}
    assert len(visits) == 1 and None not in visits


# -- a preset's visit names the sites: `--channel ADDRESS` alone -------------------------------------------------

#: The exosome preset's visit (both hands, each under the cathode) on the packaged limits: the reported 50 mA is
#: above max_current_ma, so the current is the clinician's here, as are the area and the dose the report leaves out.
EXOSOME = ("--preset", "asc-exosome-hand-eczema", "--current", "3", "--electrode", "patch-10cm2", "--dose", "10",
           "--patient", "P-VISIT")  # fmt: skip


def test_channels_given_by_address_alone_take_the_presets_visit_sites_in_order(tmp_path: Path) -> None:
    with devices(tmp_path) as found:
        addresses = [arg for address, _ in found for arg in ("--channel", address)]
        done = ionctl("run", *addresses, *EXOSOME, *in_clinic(tmp_path), "--yes", "--json", input=TESS,
                      timeout_s=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    visit = json.loads(done.stdout)
    assert [c["label"] for c in visit["channels"]] == list(HANDS)  # the preset's visit, in order
    for channel, (_, trace) in zip(visit["channels"], found, strict=True):
        assert channel["outcome"] == "completed"
        assert within_1pct(channel["dose_ma_min"], trace_rows(trace)[-1]["dose_uas"] / 60_000)
    with Store(tmp_path / "clinic" / "records.sqlite3") as store:
        sites = [json.loads(store.get(c["record_id"]).fields["clinical"] or "{}")["site"] for c in visit["channels"]]
    assert sites == [{"body_site": "hand", "laterality": "left"}, {"body_site": "hand", "laterality": "right"}]


@pytest.mark.parametrize(
    ("channels", "rx", "says"),
    [(3, EXOSOME, "preset 'asc-exosome-hand-eczema''s visit treats 2 sites (left hand, right hand), one channel each, "
                  "in that order: give 2 --channel ADDRESS, not 3"),
     (2, ("--preset", "dexamethasone", "--electrode", "patch-10cm2", "--patient", "P-VISIT"),
      "preset 'dexamethasone' names no visit, so --channel ADDRESS has no treatment site"),
     (2, RX, "give --preset NAME (a preset with `visit`), or each channel as SITE=ADDRESS")],
)  # fmt: skip
def test_channels_without_sites_need_a_preset_whose_visit_has_as_many_sites(
    tmp_path: Path, channels: int, rx: tuple[str, ...], says: str
) -> None:
    missing = [arg for n in range(1, channels + 1) for arg in ("--channel", str(tmp_path / f"no-such-port{n}"))]
    done = ionctl("run", *missing, *rx, *in_clinic(tmp_path), "--yes", input=TESS)
    assert done.returncode == 2, done.stderr
    assert says in done.stderr and "no device was opened" in done.stderr, done.stderr


@pytest.mark.parametrize(
    ("text", "spec"),
    [("left hand=/dev/ttyUSB0", ("left hand", "/dev/ttyUSB0", {}, None)),
     (" L-hand = /dev/ttyUSB0 ,area=20", ("L-hand", "/dev/ttyUSB0", {"electrode_area_cm2": 20.0}, None)),
     ("/dev/ttyUSB0", ("", "/dev/ttyUSB0", {}, None)),
     ("/dev/ttyUSB1,area=20,return=tray", ("", "/dev/ttyUSB1", {"electrode_area_cm2": 20.0}, "tray")),
     ("socket://127.0.0.1:7777", ("", "socket://127.0.0.1:7777", {}, None)),
     ("visa:USB0::0x0957::0x1234::MY123::INSTR", ("", "visa:USB0::0x0957::0x1234::MY123::INSTR", {}, None)),
     ("socket://127.0.0.1:7777?logging=debug", ("", "socket://127.0.0.1:7777?logging=debug", {}, None)),
     ("right hand=socket://127.0.0.1:7777?logging=debug",
      ("right hand", "socket://127.0.0.1:7777?logging=debug", {}, None)),
     ("COM3,current=2", ("", "COM3", {"current_ma": 2.0}, None))],
)  # fmt: skip
def test_a_channel_names_its_site_before_an_equals_sign_or_gives_its_address_alone(
    text: str, spec: tuple[object, ...]
) -> None:
    from ionctl.cli.visit import channel_spec

    assert channel_spec(text) == spec


@pytest.mark.parametrize(
    ("text", "says"),
    [("left hand", "names a treatment site but no device"), ("left hand=", "a channel is SITE=ADDRESS"),
     ("=/dev/ttyUSB0", "a channel is SITE=ADDRESS"), ("", "a channel is SITE=ADDRESS"),
     ("/dev/ttyUSB0,area", "'area' is not KEY=VALUE")],
)  # fmt: skip
def test_a_channel_without_a_device_is_an_error_naming_the_form(text: str, says: str) -> None:
    import argparse

    from ionctl.cli.visit import channel_spec

    with pytest.raises(argparse.ArgumentTypeError, match=says):
        channel_spec(text)


def test_channels_either_all_name_their_sites_or_none_does() -> None:
    from ionctl.cli.visit import channel_spec, preset_sites
    from ionctl.config import load_config

    config = load_config(None)
    mixed = [channel_spec("left hand=/dev/a"), channel_spec("/dev/b")]
    assert "channel 2 gives no treatment site but channel 1 does" in str(
        preset_sites(mixed, "asc-exosome-hand-eczema", config)
    )
    bare = [channel_spec("/dev/a"), channel_spec("/dev/b,area=20")]
    assert preset_sites(bare, "asc-exosome-hand-eczema", config) == [
        ("left hand", "/dev/a", {}, None),
        ("right hand", "/dev/b", {"electrode_area_cm2": 20.0}, None),
    ]
    assert "no such preset" in str(preset_sites(bare, "no-such", config))
