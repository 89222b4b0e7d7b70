"""`ionctl demo`: a whole treatment session on the built-in simulator, through `ionctl run`'s own code path.

The simulator is started as its own process (`python -m sim`, as a user would start it; ionctl never
imports it) on a pseudo-terminal in a temporary directory, with a ground-truth trace. The demo runs a packaged
preset (`--preset`, default the dexamethasone one: 4 mA, 40 mA·min, cathode, on the catalog's 10 cm² patch)
against the simulator's load model for that preset's electrodes (`DEMO_PRESETS`: a drug patch on skin, or two
hands in tap-water trays) with the live progress display, writes the session record into a demo record
store (never the clinic's: by default `demo/` in the user data directory) and its chart PDF next to it,
prints where they are, then prints the true dose from the trace next to the host's. The packaged configuration is
used whatever the site's, so the demo needs no approval and changes nothing a clinic relies on. The demo is a site
of its own: on its store's first use it enrols its own administrator and technician (`demo_people`), names that
administrator in its own configuration (in memory, never a file a clinic reads), and logs the technician in without
asking anything; the record names and is signed by them. The simulator runs in a session of its own, so Ctrl-C
reaches only ionctl (which ramps the current down), and it is always terminated afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from ionctl.cli import run
from ionctl.core.vocabulary import ExitCode
from ionctl.treatment.request import TreatmentRequest
from sim.cli import time_scale as sim_time_scale  # the simulator's own option type: one definition

if TYPE_CHECKING:
    from ionctl.config import SiteConfig
    from ionctl.config.people import Identity
    from ionctl.records import Store
    from ionctl.treatment import Report

READY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0

DEMO_PATIENT = "DEMO"
DEMO_ADMINISTRATOR, DEMO_OPERATOR = "demo-admin", "demo-tech"
DEMO_FULL_NAMES = {DEMO_ADMINISTRATOR: "Demo Administrator", DEMO_OPERATOR: "Demo Technician"}
#: The demo's people's passwords, in the source for anyone to read: they open nothing but the demo's own store,
#: whose administrator only the demo's own configuration (in memory) names, never a clinic's site file.
DEMO_PASSWORDS = {DEMO_ADMINISTRATOR: "Lamp-harbour-71", DEMO_OPERATOR: "Reed-meadow-82"}
DEMO_INITIAL_PASSWORD = "Kite-initial-93"
DEMO_SOURCE = "ionctl demo's own site (the packaged defaults, naming the demo's administrator)"


class DemoPreset(NamedTuple):
    """How the demo gives a packaged preset: what it adds that the preset leaves to the clinician (an electrode
    of the catalog, a duration), and the simulator's load model (`python -m sim --load`) for the preset's
    electrodes on a patient."""

    electrode: str | None = None
    duration_min: float | None = None
    load: str = "normal"


#: Every packaged preset (tests/test_demo.py checks they agree with ionctl/data/site.toml).
DEMO_PRESETS = {
    # drug patches on skin: the simulator's default skin model (docs/SOURCES.md "Skin model starting values")
    "dexamethasone": DemoPreset("patch-10cm2", load="normal"),
    "lidocaine": DemoPreset("patch-10cm2", load="normal"),
    # two hands in 100 cm² tap-water trays: about 2 kΩ falling toward 1 kΩ (docs/SOURCES.md: tray devices drive
    # 30–60 V into 2–6 kΩ of body resistance); on the patch model 15 mA would need ~300 V and end at compliance
    "tap-water-hands": DemoPreset(load="tap-water-hands"),
    # as reported (50 mA), with the area and duration the report leaves out: the packaged limits refuse it
    # before any current flows, which is what the demo then shows
    "asc-exosome-hand-eczema": DemoPreset("patch-20cm2", 20.0, load="normal"),
}
DEFAULT_PRESET = "dexamethasone"


#: Where the demo's patch goes when its preset names no treatment site.
DEMO_SITE = "left forearm"


def demo_request(preset: str, device: str, db: str, config: SiteConfig) -> TreatmentRequest:
    """The session the demo of `preset` runs on the simulated device at `device`, recorded in `db`: at the
    preset's treatment site (in the demo's `config`), else on `DEMO_SITE`; its record says simulated."""
    demo = DEMO_PRESETS[preset]
    site = config.preset(preset).site or DEMO_SITE
    return TreatmentRequest(device=device, operator=DEMO_OPERATOR, patient=DEMO_PATIENT, preset=preset,
                            electrode=demo.electrode, duration_min=demo.duration_min, db=db, site=site,
                            simulated=True)  # fmt: skip


class SimulatorError(Exception):
    """The simulator did not start."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--time-scale",
        type=sim_time_scale,
        default=60.0,
        metavar="X",
        help="the simulated device's clock runs X times faster than wall time (default 60)",
    )
    parser.add_argument("--preset", choices=sorted(DEMO_PRESETS), default=DEFAULT_PRESET,
                        help="the packaged preset to run, on the simulator's matching load (default: "
                        f"{DEFAULT_PRESET})")  # fmt: skip
    parser.add_argument("--trace", metavar="FILE",
                        help="keep the simulator's ground-truth trace (JSON lines) here")  # fmt: skip
    parser.add_argument("--json", action="store_true",
                        help="print the result, with the simulator's true dose, as one JSON object")  # fmt: skip
    parser.add_argument("--out", metavar="DIR",
                        help="where the demo record store and chart PDFs go (default: demo/ in the user data "
                        "directory; never the clinic's record store)")  # fmt: skip


def default_out() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("ionctl", appauthor=False)) / "demo"


def main(args: argparse.Namespace) -> int:
    """Start the simulator, run the example session into the demo store, export its chart PDF, compare doses;
    exit with the session's exit code."""
    from ionctl.config.people import PeopleError
    from ionctl.records import Store, StoreError

    out = Path(args.out) if args.out else default_out()
    db = out / "records.sqlite3"
    with tempfile.TemporaryDirectory(prefix="ionctl-demo-") as tmp:
        link, trace = Path(tmp) / "ionto", Path(args.trace) if args.trace else Path(tmp) / "truth.jsonl"
        load = DEMO_PRESETS[args.preset].load
        print(f"ionctl demo: preset {args.preset} on a simulated device ({load} load) at {args.time_scale:g}x "
              "speed; [+m:ss] is device time since the session started", file=sys.stderr)  # fmt: skip
        try:
            out.mkdir(parents=True, exist_ok=True)
            store = Store(db)
        except (OSError, StoreError) as exc:
            print(f"ionctl demo: cannot open the demo record store {db}: {exc}", file=sys.stderr)
            return ExitCode.FAILED
        with store:
            try:
                config, operator = demo_people(store)
                print(f"ionctl demo: run by {operator.account.full_name} ({operator.name}, {operator.role}), the "
                      "demo's own technician, logged in by the demo", file=sys.stderr)  # fmt: skip
                with simulator(link, trace, args.time_scale, Path(tmp) / "sim.log", load=load):
                    request = demo_request(args.preset, str(link), str(db), config)
                    report = run.treat(
                        request,
                        err=sys.stderr,
                        stdin=sys.stdin,
                        store=store,
                        config=config,
                        yes=True,
                        skin_checks=False,
                        operator=operator,
                    )  # no skin to inspect
            except (SimulatorError, PeopleError) as exc:
                print(f"ionctl demo: {exc}", file=sys.stderr)
                return ExitCode.FAILED
            except KeyboardInterrupt:  # before the session's own SIGINT handling began: nothing was started
                print("ionctl demo: interrupted before the session started", file=sys.stderr)
                return ExitCode.REFUSED  # as `ionctl run`: no current flowed
            extra: dict[str, Any] = {"simulator_true_dose_ma_min": true_dose_ma_min(trace)}
            if report.record_id is not None:
                extra.update(
                    record_id=report.record_id,
                    db=str(db),
                    pdf=_chart(store, report.record_id, out, config.bench.clinic_name),
                )
    run.emit(report, as_json=args.json, extra=extra)
    if not args.json:
        if report.record_id is not None:
            print(f"chart PDF {extra['pdf']}" if extra["pdf"] else "chart PDF: not written (see above)")
            print(f"the record: `ionctl records show {report.record_id} --db {db}`")
        print(dose_comparison(report, extra["simulator_true_dose_ma_min"]))
    return int(report.exit_code)


def demo_people(store: Store) -> tuple[SiteConfig, Identity]:
    """The demo's site configuration (the packaged defaults, with an `[accounts]` table naming the demo's
    administrator) and its technician, logged in. On the store's first use the administrator enrols itself
    and the technician, who sets their own password at once (as anyone's first use does); later runs only log
    the technician in. PeopleError if the store's demo people are not the demo's (another password)."""
    from ionctl.config.people import People, Role, Trust
    from ionctl.config.site import packaged_text, parse_config

    known = People(store).all_accounts()  # the demo's own store: who it enrolled before (verified at login)
    admin = known.get(DEMO_ADMINISTRATOR) or People(store).bootstrap(
        DEMO_ADMINISTRATOR, DEMO_FULL_NAMES[DEMO_ADMINISTRATOR], DEMO_PASSWORDS[DEMO_ADMINISTRATOR]
    )
    text = f'{packaged_text()}\n[accounts]\nadministrators = ["{admin.fingerprint}"]\n'
    config = parse_config(text, source=DEMO_SOURCE)
    people = People(store, Trust.of(config))
    if DEMO_OPERATOR in known:
        return config, people.login(DEMO_OPERATOR, DEMO_PASSWORDS[DEMO_OPERATOR])
    by = people.login(DEMO_ADMINISTRATOR, DEMO_PASSWORDS[DEMO_ADMINISTRATOR])
    people.add(by, DEMO_OPERATOR, DEMO_FULL_NAMES[DEMO_OPERATOR], Role.TECHNICIAN, DEMO_INITIAL_PASSWORD)
    return config, people.activate(DEMO_OPERATOR, DEMO_INITIAL_PASSWORD, DEMO_PASSWORDS[DEMO_OPERATOR])


def _chart(store: Any, record_id: int, out: Path, clinic_name: str | None = None) -> str | None:
    """Write the record's chart PDF next to the demo store; its path, or None after saying why not."""
    from ionctl.records.pdf import write_pdf

    path = out / f"record-{record_id}.pdf"
    try:
        write_pdf(store.get(record_id), path, head=store.chain_head(), clinic_name=clinic_name)
    except (OSError, ValueError) as exc:
        print(f"ionctl demo: cannot write the chart PDF {path}: {exc}", file=sys.stderr)
        return None
    return str(path)


def dose_comparison(report: Report, true_dose: float | None) -> str:
    host = report.result.dose_ma_min
    if true_dose is None:
        return f"true dose (simulator trace): not available; host {host:.3f} mA·min"
    error = f"{100 * (host - true_dose) / true_dose:+.2f} %" if true_dose > 0 else "n/a"
    return f"true dose (simulator trace) {true_dose:.3f} mA·min; host {host:.3f} mA·min (host error {error})"


def true_dose_ma_min(trace: Path) -> float | None:
    """The last trace row's true dose (µA·s) in mA·min; None if the trace is empty or unreadable."""
    try:
        with trace.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4096))
            rows = f.read().splitlines()
        last = json.loads(rows[-1]) if rows else None
    except (OSError, ValueError):
        return None
    return float(last["dose_uas"]) / 60_000 if isinstance(last, dict) and "dose_uas" in last else None


@contextmanager
def simulator(link: Path, trace: Path, scale: float, log: Path, *,
              load: str = "normal") -> Iterator[subprocess.Popen[str]]:  # fmt: skip
    """`python -m sim` serving a device on a pty at `link` (`sim.process`); waits for `ready`, always stops it."""
    from sim.process import SimulatorError as NotStarted
    from sim.process import start

    try:
        sim = start("--serial-link", str(link), "--time-scale", repr(scale), "--trace", str(trace), "--load", load,
                    timeout_s=READY_TIMEOUT_S, log=log, new_session=True)  # fmt: skip
    except NotStarted as exc:
        raise SimulatorError(str(exc)) from None
    try:
        yield sim.process
    finally:
        sim.stop(STOP_TIMEOUT_S)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`ionctl demo` among the commands (`ionctl.cli.main`); `main` runs it."""
    demo = commands.add_parser(
        "demo",
        help="run a full treatment session on the built-in simulator",
        description="Start the built-in simulator with the load model of the preset's electrodes, run a packaged "
        "preset (default: dexamethasone, 4 mA, 40 mA·min, cathode, 10 cm²) through `ionctl run`, and print the true "
        "dose from the simulator's trace next to the host's. Exits with the session's exit code.",
    )
    add_arguments(demo)
    demo.set_defaults(handler=main)
