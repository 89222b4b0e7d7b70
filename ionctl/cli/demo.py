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
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from ionctl.cli import run
from ionctl.core.vocabulary import ExitCode

if TYPE_CHECKING:
    import subprocess

    from ionctl.cli.visit import Spec
    from ionctl.config import SiteConfig
    from ionctl.config.people import Identity
    from ionctl.records import Store
    from ionctl.treatment import Report
    from ionctl.treatment.request import TreatmentRequest
    from ionctl.treatment.visit import VisitReport

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
    #: `--visit`: the current each channel runs at when the preset's own is one the packaged limits refuse (None:
    #: the preset's); a value the technician changes at the bench, checked against the limits like any other.
    visit_current_ma: float | None = None


#: Every packaged preset (tests/test_demo.py checks they agree with ionctl/data/site.toml).
DEMO_PRESETS = {
    # drug patches on skin: the simulator's default skin model (docs/SOURCES.md "Skin model starting values")
    "dexamethasone": DemoPreset("patch-10cm2", load="normal"),
    "lidocaine": DemoPreset("patch-10cm2", load="normal"),
    # two hands in 100 cm² tap-water trays: about 2 kΩ falling toward 1 kΩ (docs/SOURCES.md: tray devices drive
    # 30–60 V into 2–6 kΩ of body resistance); on the patch model 15 mA would need ~300 V and end at compliance
    "tap-water-hands": DemoPreset(load="tap-water-hands"),
    # as reported (50 mA), with the area and duration the report leaves out: the packaged limits refuse it
    # before any current flows, which is what the demo then shows. Its visit (`--visit`, both hands) runs at the
    # packaged max_current_ma instead: 4 mA for 20 min, about 78 mA·min per hand with the ramps (the packaged
    # max_dose_ma_min is 80); the demo's numbers, not the report's
    "asc-exosome-hand-eczema": DemoPreset("patch-20cm2", 20.0, load="normal", visit_current_ma=4.0),
}
DEFAULT_PRESET = "dexamethasone"
#: `ionctl demo --visit` without `--preset`: the regimen that treats both hands at once.
DEFAULT_VISIT_PRESET = "asc-exosome-hand-eczema"


#: Where the demo's patch goes when its preset names no treatment site.
DEMO_SITE = "left forearm"


def sim_time_scale(text: str) -> float:
    """The simulator's own `--time-scale` option type (one definition), imported when the option is given (the
    simulator's modules are not for `ionctl --help` to load)."""
    from sim.cli import time_scale

    return time_scale(text)


def demo_request(preset: str, device: str, db: str, config: SiteConfig) -> TreatmentRequest:
    """The session the demo of `preset` runs on the simulated device at `device`, recorded in `db`: at the
    preset's treatment site (in the demo's `config`), else on `DEMO_SITE`; its record says simulated."""
    from ionctl.treatment.request import TreatmentRequest

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
    parser.add_argument("--preset", choices=sorted(DEMO_PRESETS),
                        help="the packaged preset to run, on the simulator's matching load (default: "
                        f"{DEFAULT_PRESET}; with --visit, {DEFAULT_VISIT_PRESET})")  # fmt: skip
    parser.add_argument("--visit", action="store_true",
                        help="run the preset's visit (its `visit` sites, e.g. both hands) as `ionctl run --channel "
                        "ADDR` runs it: one simulator serving a device per channel, one confirmation, a record per "
                        "channel, each channel's dose next to its device's true dose")  # fmt: skip
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
    """Start the simulator, run the example session (or with `--visit`, the preset's visit) into the demo store,
    export its chart PDF, compare doses; exit with the session's (the visit's) exit code."""
    import tempfile

    from ionctl.config.people import PeopleError
    from ionctl.records import Store, StoreError

    preset = args.preset or (DEFAULT_VISIT_PRESET if args.visit else DEFAULT_PRESET)
    sites = visit_sites(preset) if args.visit else ()
    if args.visit and not sites:
        with_visit = ", ".join(name for name in sorted(DEMO_PRESETS) if visit_sites(name))
        print(f"ionctl demo: --visit: preset {preset!r} names no visit (a packaged preset with one: {with_visit})",
              file=sys.stderr)  # fmt: skip
        return ExitCode.REFUSED
    out = Path(args.out) if args.out else default_out()
    db = out / "records.sqlite3"
    with tempfile.TemporaryDirectory(prefix="ionctl-demo-") as tmp:
        link, trace = Path(tmp) / "ionto", Path(args.trace) if args.trace else Path(tmp) / "truth.jsonl"
        load = DEMO_PRESETS[preset].load
        what = (f"preset {preset}'s visit ({', '.join(sites)}) on {len(sites)} simulated devices, one per channel"
                if sites else f"preset {preset} on a simulated device")  # fmt: skip
        print(f"ionctl demo: {what} ({load} load) at {args.time_scale:g}x speed; [+m:ss] is device time since the "
              "session started", file=sys.stderr)  # fmt: skip
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
                with simulator(link, trace, args.time_scale, Path(tmp) / "sim.log", load=load,
                               devices=len(sites) or 1):  # fmt: skip
                    if sites:
                        visit = run_visit(preset, [f"{link}-{n}" for n in range(1, len(sites) + 1)], str(db),
                                          config, operator, store)  # fmt: skip
                    else:  # no skin to inspect: no skin checks
                        request = demo_request(preset, str(link), str(db), config)
                        report = run.treat(request, err=sys.stderr, stdin=sys.stdin, store=store, config=config,
                                           yes=True, skin_checks=False, operator=operator)  # fmt: skip
            except (SimulatorError, PeopleError) as exc:
                print(f"ionctl demo: {exc}", file=sys.stderr)
                return ExitCode.FAILED
            except KeyboardInterrupt:  # before the session's own SIGINT handling began: nothing was started
                print("ionctl demo: interrupted before the session started", file=sys.stderr)
                return ExitCode.REFUSED  # as `ionctl run`: no current flowed
            if sites:
                return visit if isinstance(visit, int) else show_visit(visit, trace, store, out, config, args.json)
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


def visit_sites(preset: str) -> tuple[str, ...]:
    """The packaged preset's visit (the demo's configuration is the packaged one): its sites, () for none."""
    from ionctl.config.site import packaged_text, parse_config

    return parse_config(packaged_text()).preset(preset).visit


def run_visit(preset: str, devices: list[str], db: str, config: SiteConfig, operator: Identity,
              store: Store) -> VisitReport | int:  # fmt: skip
    """The preset's visit on the simulated `devices` as `ionctl run --preset PRESET --channel ADDR ...` runs it
    (`treat_visit`: the channels take the preset's visit sites in order; Ctrl-C ramps every channel down), the
    one confirmation given; its report, or the exit code of a visit refused before any device was opened."""
    from ionctl.cli.visit import treat_visit

    demo = DEMO_PRESETS[preset]
    base = demo_request(preset, "", db, config)
    if demo.visit_current_ma is not None:
        print(f"ionctl demo: each channel at {demo.visit_current_ma:g} mA, the demo's value within the packaged "
              f"limits (the preset's {config.preset(preset).current_ma:g} mA is above them)",
              file=sys.stderr)  # fmt: skip
        base = replace(base, current_ma=demo.visit_current_ma)
    specs: list[Spec] = [("", device, {}, None) for device in devices]  # ADDR alone: the preset's visit's sites
    return treat_visit(base, specs, err=sys.stderr, stdin=sys.stdin, store=store, config=config, yes=True,
                       operator=operator, supervisor=None, skin_checks=False)  # fmt: skip


def show_visit(visit: VisitReport, trace: Path, store: Store, out: Path, config: SiteConfig, as_json: bool) -> int:
    """Print the visit's result, each channel's chart PDF and its dose next to its device's true dose (channel K
    is simulator device K); the visit's exit code."""
    from ionctl.cli.visit import emit_visit

    truths = true_doses_ma_min(trace, len(visit.reports))
    extra: list[dict[str, Any]] = []
    for n, report in enumerate(visit.reports, start=1):
        more: dict[str, Any] = {"simulator_device": n, "simulator_true_dose_ma_min": truths[n]}
        if report.record_id is not None:
            more.update(db=str(store.path), pdf=_chart(store, report.record_id, out, config.bench.clinic_name))
        extra.append(more)
    emit_visit(visit, as_json=as_json, store=store, extra=extra)
    if not as_json:
        for n, (label, report, more) in enumerate(zip(visit.labels, visit.reports, extra, strict=True), start=1):
            if report.record_id is not None:
                pdf = f"chart PDF {more['pdf']}" if more["pdf"] else "chart PDF: not written (see above)"
                print(f"channel {n} ({label}): record {report.record_id}, {pdf}")
        print(f"the records: `ionctl records list --db {store.path}`")
        for n, (label, report) in enumerate(zip(visit.labels, visit.reports, strict=True), start=1):
            print(f"channel {n} ({label}, simulated device {n}): {dose_comparison(report, truths[n])}")
    return int(visit.exit_code)


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
    from ionctl.records.narrative import visit_channels_in
    from ionctl.records.pdf import write_pdf

    path = out / f"record-{record_id}.pdf"
    try:
        record = store.get(record_id)
        write_pdf(record, path, head=store.chain_head(), clinic_name=clinic_name,
                  visit=visit_channels_in(store, record))  # fmt: skip
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
    """The true dose (mA·min) of the trace's only device; None if the trace is empty or unreadable."""
    return true_doses_ma_min(trace)[1]


def true_doses_ma_min(trace: Path, devices: int = 1) -> dict[int, float | None]:
    """Each device's (1..`devices`) true dose: the `dose_uas` of its last trace row (rows name their `device`), in
    mA·min; None for one without a row, or if the trace is unreadable. Read from the end, a growing window at a
    time: a device that stopped earlier has its last row further back."""
    found: dict[int, float] = {}
    try:
        with trace.open("rb") as f:
            size = f.seek(0, os.SEEK_END)
            window = 4096
            while len(found) < devices:
                begin = max(0, size - window)
                f.seek(begin)
                rows = f.read(size - begin).splitlines()[(1 if begin else 0) :]  # the first may be torn
                for line in reversed(rows):
                    try:
                        row = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(row, dict) and "dose_uas" in row:
                        found.setdefault(int(row.get("device", 1)), float(row["dose_uas"]) / 60_000)
                if begin == 0:
                    break
                window *= 4
    except OSError:
        pass
    return {n: found.get(n) for n in range(1, devices + 1)}


@contextmanager
def simulator(link: Path, trace: Path, scale: float, log: Path, *, load: str = "normal",
              devices: int = 1) -> Iterator[subprocess.Popen[str]]:  # fmt: skip
    """`python -m sim` serving a device on a pty at `link` (`sim.process`; of `devices` > 1, device K at
    `link`-K, each its own load, all writing `trace`); waits for `ready`, always stops it."""
    from sim.process import SimulatorError as NotStarted
    from sim.process import start

    try:
        sim = start("--serial-link", str(link), "--time-scale", repr(scale), "--trace", str(trace), "--load", load,
                    timeout_s=READY_TIMEOUT_S, log=log, new_session=True, devices=devices)  # fmt: skip
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
