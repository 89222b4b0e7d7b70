"""Check the INSTALLED product, as a bench PC gets it from `pip install`: run by the python of a venv that holds
the built wheel, from a folder outside the source tree, with the source tree not on sys.path (`python -I`).

    python -I .ci/installed_check.py [--source SOURCE_TREE]

1. imports every module of ionctl, firmware_protocol and sim from the venv's site-packages (and, given the
   source tree, checks that each of its modules is installed);
2. runs `ionctl --help` and the `--help` of every command and action `ionctl.cli.build_parser()` has;
3. runs `ionctl demo` into a temporary folder and checks the record and the chart PDF it names;
4. sets up a clinic as README's "People" says, with the installed `ionctl` only: an administrator bootstrapped
   and named in a site file, a supervisor and a technician enrolled, the file approved by the supervisor (who
   sets a password at first use), a session run by the technician on `sim:`, countersigned by the supervisor,
   and `ionctl records verify`; a technician's approval refused;
4b. gives that clinic a clinic store as README's "The clinic store" says: a throwaway PostgreSQL server (the
   source tree's benchmarks/pgserver.py starts it; the harness, not the product), `ionctl clinic init` binding
   the bench to its login, `[clinic]` in the site file (approved again), `ionctl records sync`, then
   `records list`, `records show BENCH/ID` and `records verify` reading the clinic store;
5. drives a whole console session with Textual's pilot against the simulator started as its own process
   (`python -m sim --tcp 0`), in that clinic: the technician's login, device, patient, preset, prescription,
   contact, skin check, confirm, run, end
   screen (skin check after, chart PDF); then checks the record in the store.

Prints one line per step; exits 1 naming the first failure.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import pkgutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

TOP_LEVEL = ("ionctl", "firmware_protocol", "sim")
STEPS = ("imports", "help", "demo", "clinic", "clinic-store", "console")
SITE = Path(sysconfig.get_paths()["purelib"]).resolve()
BIN = Path(sys.executable).parent
PATIENCE_S = 120.0  # real seconds any one wait may take on a slow, shared CI machine


Completed = subprocess.CompletedProcess[str]


class CheckFailed(Exception):
    pass


def check(condition: object, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def step(text: str) -> None:
    print(f"installed-check: {text}", flush=True)


def installed_file(module: Any) -> Path:
    file = getattr(module, "__file__", None)
    check(file, f"{module.__name__} has no __file__ (a namespace package: not installed as a package)")
    path = Path(file).resolve()
    check(path.is_relative_to(SITE), f"{module.__name__} was imported from {path}, not from {SITE}")
    return path


# -- 1. every module --------------------------------------------------------------------------------------------


def source_modules(source: Path) -> set[str]:
    """The dotted names of every module of the source tree's packages (read as files; nothing imported)."""
    names: set[str] = set()
    for top in TOP_LEVEL:
        for file in (source / top).rglob("*.py"):
            if "__pycache__" in file.parts or not (file.parent / "__init__.py").is_file():
                continue
            parts = file.relative_to(source).with_suffix("").parts
            names.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def import_everything(source: Path | None) -> None:
    source_root = source.resolve() if source else None
    for entry in sys.path:
        check(not (source_root and entry and Path(entry).resolve() == source_root),
              f"the source tree {source_root} is on sys.path")  # fmt: skip
    imported: set[str] = set()
    for top in TOP_LEVEL:
        package = importlib.import_module(top)
        installed_file(package)
        imported.add(top)
        failures: list[str] = []
        for info in pkgutil.walk_packages(package.__path__, f"{top}.", onerror=failures.append):
            if info.name.rsplit(".", 1)[-1] == "__main__":
                imported.add(info.name)  # runs the program when imported; `python -m` runs it below
                continue
            module = importlib.import_module(info.name)
            installed_file(module)
            imported.add(info.name)
        check(not failures, f"packages that failed to import while walking {top}: {failures}")
    step(f"imported {len(imported)} modules, all from {SITE}")
    if source is not None:
        wanted = source_modules(source)
        check(len(wanted) > 20, f"found only {len(wanted)} modules in the source tree {source}")
        missing = sorted(wanted - imported)
        check(not missing, f"modules of the source tree not installed: {missing}")
        step(f"all {len(wanted)} modules of the source tree are installed")


# -- 2. every command's --help ----------------------------------------------------------------------------------


def command_paths(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command and nested action of the parser, as the words that name it."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name)
                yield from command_paths(sub, (*prefix, name))


def run(command: list[str], *, timeout_s: float = PATIENCE_S, cwd: Path | None = None,
        stdin: str | None = None) -> Completed:  # fmt: skip
    try:
        if stdin is not None:
            return subprocess.run(command, capture_output=True, text=True, input=stdin, timeout=timeout_s, cwd=cwd)
        return subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=timeout_s,
                              cwd=cwd)  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        raise CheckFailed(f"{' '.join(command)} did not end within {timeout_s:g} s") from exc


def every_help() -> None:
    from ionctl.cli import build_parser

    ionctl = str(BIN / "ionctl")
    check(Path(ionctl).is_file(), f"the ionctl command is not installed in {BIN}")
    paths = [(), *command_paths(build_parser())]
    check(len(paths) > 10, f"build_parser() gave only {len(paths)} commands: {paths}")
    for path in paths:
        done = run([ionctl, *path, "--help"])
        shown = " ".join(["ionctl", *path, "--help"])
        check(done.returncode == 0, f"`{shown}` exited {done.returncode}: {done.stderr.strip()[-2000:]}")
        check(done.stdout.startswith("usage:"), f"`{shown}` printed no usage: {done.stdout[:200]!r}")
        check(not done.stderr.strip(), f"`{shown}` wrote to stderr: {done.stderr.strip()[-2000:]}")
    step(f"`ionctl --help` and {len(paths) - 1} commands' --help: exit 0 with usage")


# -- 3. the demo ------------------------------------------------------------------------------------------------


def demo(work: Path) -> None:
    out = work / "demo"
    done = run([str(BIN / "ionctl"), "demo", "--out", str(out), "--json"], timeout_s=600, cwd=work)
    check(done.returncode == 0, f"`ionctl demo` exited {done.returncode}: {done.stderr.strip()[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    check(result.get("outcome") == "completed", f"the demo session ended {result.get('outcome')!r}")
    pdf, db = Path(result["pdf"]), Path(result["db"])
    check(pdf.is_file() and pdf.read_bytes().startswith(b"%PDF"), f"the demo's chart PDF {pdf} is missing")
    check(db.is_file() and db.is_relative_to(out), f"the demo's record store {db} is missing")
    shown = run([str(BIN / "ionctl"), "records", "show", str(result["record_id"]), "--db", str(db)])
    check(shown.returncode == 0 and "Completed as prescribed" in shown.stdout,
          f"`ionctl records show {result['record_id']}` of the demo: {shown.stdout[-500:]} {shown.stderr[-500:]}")
    step(f"`ionctl demo`: completed, record {result['record_id']} in {db}, chart {pdf.name}")
    # both hands at once: one simulator serving two devices, each channel's dose against its own device's trace
    done = run([str(BIN / "ionctl"), "demo", "--visit", "--out", str(work / "demo-visit"), "--json"], timeout_s=600,
               cwd=work)  # fmt: skip
    check(done.returncode == 0, f"`ionctl demo --visit` exited {done.returncode}: {done.stderr.strip()[-2000:]}")
    visit = json.loads(done.stdout.strip().splitlines()[-1])
    channels = visit.get("channels", [])
    check(len(channels) == 2, f"`ionctl demo --visit` ran {len(channels)} channels, not 2")
    for channel in channels:
        truth, host = channel["simulator_true_dose_ma_min"], channel["record"]["dose_ma_min"]
        check(channel["outcome"] == "completed" and abs(host - truth) <= 0.01 * truth,
              f"`ionctl demo --visit` channel {channel['channel']}: {channel['outcome']}, {host} mA·min recorded, "
              f"{truth} in its device's trace")  # fmt: skip
        check(Path(channel["pdf"]).is_file(), f"the visit demo's chart PDF {channel['pdf']} is missing")
    doses = ", ".join(f"{c['label']} {c['record']['dose_ma_min']:.3f} (trace {c['simulator_true_dose_ma_min']:.3f})"
                      for c in channels)  # fmt: skip
    step(f"`ionctl demo --visit`: both channels completed; mA·min {doses}")


# -- 4. a clinic's people -------------------------------------------------------------------------------------


def clinic(work: Path) -> None:
    folder = work / "clinic"
    folder.mkdir()
    db, site = folder / "records.sqlite3", folder / "site.toml"
    ionctl = str(BIN / "ionctl")

    def ok(*args: str, stdin: str = "", expect: int = 0) -> Completed:
        done = run([ionctl, *args], stdin=stdin, cwd=work)
        shown = " ".join(("ionctl", *args))
        check(done.returncode == expect, f"`{shown}` exited {done.returncode}, not {expect}: "
                                         f"{done.stdout[-1500:]} {done.stderr[-1500:]}")  # fmt: skip
        return done

    boot = ok("users", "bootstrap", "aadmin", "--full-name", "Alex Admin", "--db", str(db), "--password-stdin",
              stdin="Lantern-keeper-71\n")  # fmt: skip
    found = [w.strip(".,;:()\"'") for w in (boot.stdout + boot.stderr).split() if w.startswith("SHA256:")]
    check(found, f"`ionctl users bootstrap` printed no fingerprint: {boot.stdout} {boot.stderr}")
    ok("config", "init", str(site))
    site.write_text(site.read_text() + f'\n[accounts]\nadministrators = ["{found[0]}"]\n')
    common = ("--db", str(db), "--config", str(site), "--password-stdin")
    ok("users", "add", "sjones", "--full-name", "Sam Jones", "--role", "supervisor", "--as", "aadmin", *common,
       stdin="Lantern-keeper-71\nInitial-pass-22\n")  # fmt: skip
    ok("users", "add", "tkim", "--full-name", "Tara Kim", "--role", "technician", "--as", "aadmin", *common,
       stdin="Lantern-keeper-71\nInitial-pass-33\n")  # fmt: skip
    listed = ok("users", "list", "--db", str(db), "--config", str(site)).stdout
    check("sjones" in listed and "tkim" in listed and "Initial-pass" not in listed, f"users list: {listed}")
    ok("config", "approve", "--as", "tkim", *common, stdin="Initial-pass-33\nMeadow-river-44\n", expect=2)
    ok("config", "approve", "--as", "sjones", *common, stdin="Initial-pass-22\nHarbour-stone-55\n")
    ran = ok("run", "--device", "sim:?load=normal&seed=4", "--preset", "dexamethasone", "--electrode-area", "10",
             "--site", "left forearm", "--concentration", "4 mg/mL", "--volume-ml", "2.5",
             "--patient", "P-CI-2", "--operator", "tkim", "--yes", "--json", *common,
             stdin="Meadow-river-44\n")  # fmt: skip
    result = json.loads(ran.stdout.strip().splitlines()[-1])
    check(result.get("outcome") == "completed", f"the clinic's session ended {result.get('outcome')!r}")
    record = str(result["record_id"])
    ok("records", "sign", record, "--as", "sjones", *common, stdin="Harbour-stone-55\n")
    shown = ok("records", "show", record, "--db", str(db)).stdout
    check("Tara Kim" in shown and "Sam Jones" in shown, f"`records show` does not show both signatures: {shown}")
    verified = ok("records", "verify", "--db", str(db), "--config", str(site))
    step(f"clinic: bootstrap, enrol, approve, run, countersign; verify: {verified.stdout.strip().splitlines()[-1]}")


# -- 4b. the clinic's store on PostgreSQL -----------------------------------------------------------------------


def clinic_store(work: Path, source: Path | None) -> None:
    check(source is not None, "the clinic-store step needs --source (benchmarks/pgserver.py starts the server)")
    assert source is not None
    import importlib.util

    spec = importlib.util.spec_from_file_location("ionctl_ci_pg", source / "benchmarks" / "pgserver.py")
    check(spec is not None and spec.loader is not None, "cannot load benchmarks/pgserver.py")
    assert spec is not None and spec.loader is not None
    pg = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = pg  # dataclasses look their module up while the class is made
    spec.loader.exec_module(pg)
    import sqlite3

    # a copy of the clinic step's store and site file: the console step after this one keeps the originals
    made, folder = work / "clinic", work / "clinic-store"
    check((made / "records.sqlite3").is_file(), "the clinic step left no record store")
    folder.mkdir()
    db, site = folder / "records.sqlite3", folder / "site.toml"
    with sqlite3.connect(made / "records.sqlite3") as original, sqlite3.connect(db) as copy:
        original.backup(copy)
    site.write_text((made / "site.toml").read_text())
    ionctl = str(BIN / "ionctl")

    def ok(*args: str, stdin: str = "", expect: int = 0) -> Completed:
        done = run([ionctl, *args], stdin=stdin, cwd=work)
        shown = " ".join(("ionctl", *args))
        check(done.returncode == expect, f"`{shown}` exited {done.returncode}, not {expect}: "
                                         f"{done.stdout[-1500:]} {done.stderr[-1500:]}")  # fmt: skip
        return done

    with pg.PostgresServer.started(work) as server:
        psql = [str(server.bin / "psql"), "-v", "ON_ERROR_STOP=1", "-X", "-q", server.conninfo()]
        made = run(psql + ["-c", "CREATE ROLE bench_a LOGIN"], cwd=work)
        check(made.returncode == 0, f"psql CREATE ROLE: {made.stderr}")
        ok("clinic", "init", server.conninfo(), "--bench", "bench-a=bench_a")
        site.write_text(site.read_text() + f'\n[clinic]\nstore = "{server.conninfo(user="bench_a")}"\n'
                        'bench = "bench-a"\n')  # fmt: skip
        common = ("--db", str(db), "--config", str(site))
        ok("config", "approve", "--as", "sjones", *common, "--password-stdin", stdin="Harbour-stone-55\n")
        synced = ok("records", "sync", *common)
        listed = ok("records", "list", *common).stdout
        check("bench-a/1" in listed, f"`records list` does not list bench-a/1 from the clinic store: {listed}")
        shown = ok("records", "show", "bench-a/1", *common).stdout
        check("Tara Kim" in shown, f"`records show bench-a/1` from the clinic store: {shown}")
        verified = ok("records", "verify", *common).stdout
        refused = run(psql[:-1] + [server.conninfo(user="bench_a"), "-c", "DELETE FROM ionctl.links"], cwd=work)
        check(refused.returncode != 0 and "permission denied" in refused.stderr,
              f"a bench login's DELETE was not refused: {refused.returncode} {refused.stderr}")
    step(f"clinic store: init, sync ({synced.stdout.strip().splitlines()[-1] if synced.stdout.strip() else ''}), "
         f"list/show/verify from it ({verified.strip().splitlines()[-1]}); a bench's DELETE refused")


# -- 5. a console session ---------------------------------------------------------------------------------------


def start_simulator(work: Path) -> tuple[subprocess.Popen[str], str]:
    """`python -m sim --tcp 0` as its own process; its socket address once it says ready."""
    log = (work / "sim.log").open("w")
    process = subprocess.Popen([sys.executable, "-I", "-m", "sim", "--tcp", "0", "--time-scale", "60"], cwd=work,
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, text=True)  # fmt: skip
    assert process.stdout is not None
    address = None
    deadline = time.monotonic() + PATIENCE_S
    while time.monotonic() < deadline:
        line = process.stdout.readline().strip()
        if line.startswith("tcp: "):
            address = line.split(": ", 1)[1]
        elif line == "ready":
            break
        elif not line and process.poll() is not None:
            raise CheckFailed(f"the simulator exited {process.returncode}: {(work / 'sim.log').read_text()}")
    check(address, "the simulator did not give its TCP address")
    assert address is not None
    return process, address


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def console_session(work: Path, address: str) -> None:
    from textual.widgets import Input, Static

    from ionctl.config import load_config
    from ionctl.console.app import ConsoleApp
    from ionctl.console.screens.checks import ConfirmScreen, ContactScreen, SkinBeforeScreen
    from ionctl.console.screens.end import EndScreen
    from ionctl.console.screens.login import LoginScreen
    from ionctl.console.screens.prescription import PrescriptionScreen
    from ionctl.console.screens.run import RunScreen
    from ionctl.console.screens.setup import DeviceScreen, PatientScreen, PresetScreen
    from ionctl.console.setup import ConsoleSetup
    from ionctl.drivers.discovery import Found
    from ionctl.records import Store

    for module in (ConsoleApp, DeviceScreen, EndScreen, RunScreen, ConfirmScreen, PrescriptionScreen):
        installed_file(sys.modules[module.__module__])
    if not (work / "clinic").is_dir():
        clinic(work)  # the console runs in the clinic that step set up, as its technician
    store_path = work / "clinic" / "records.sqlite3"
    setup = ConsoleSetup.from_config(
        load_config(work / "clinic" / "site.toml"), store_path, device=address, export_dir=store_path.parent,
        discover=lambda: ([Found(address, "serial", "simulator")], None),
    )  # fmt: skip
    app = ConsoleApp(setup)

    def text() -> str:
        return "\n".join(str(w.render()) for w in app.screen.query(Static))

    async def until(condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + PATIENCE_S
        while not condition():
            if app._exception is not None:
                raise CheckFailed(f"the console died waiting for {what}: {app._exception!r}")
            if time.monotonic() > deadline:
                raise CheckFailed(f"timed out waiting for {what}; the screen shows:\n{text()}")
            await pilot.pause(0.05)

    async def on(kind: type) -> None:
        await until(lambda: isinstance(app.screen, kind), f"the {kind.__name__}")
        step(f"console: {kind.__name__}")

    async def shows(words: str) -> None:
        await until(lambda: words in text(), repr(words))

    def put(selector: str, value: str) -> None:
        app.screen.query_one(selector, Input).value = value

    async def skin_all_no() -> None:
        """Answer every item of the skin check on the screen "no", by its key, as a technician does."""
        from ionctl.records.skin import ITEMS

        first = f"#skin-{next(iter(ITEMS))}"
        await until(lambda: bool(app.screen.query(first)), "the skin check form")
        for item in ITEMS:
            app.screen.query_one(f"#skin-{item}").focus()
            await pilot.press("n")

    # The driver's reader thread keeps the process busy, and the pilot waits for idle after each key: forms are
    # filled in directly, the steps are keys (as the console's own socket test does).
    async with app.run_test(size=(100, 36)) as pilot:
        await on(LoginScreen)
        put("#login-name", "tkim")
        app.screen.query_one("#login-password", Input).focus()
        await pilot.press(*"Meadow-river-44", "enter")
        await on(DeviceScreen)
        await pilot.press("enter")
        await on(PatientScreen)
        put("#patient", "P-CI-1")
        await shows("Tara Kim (tkim, technician)")
        await pilot.press("ctrl+n")
        await on(PresetScreen)
        await pilot.press("enter")
        await on(PrescriptionScreen)
        for name, value in (("current_ma", "2"), ("electrode_area_cm2", "10"), ("dose_ma_min", "5"),
                            ("ramp_up_s", "10"), ("ramp_down_s", "10"), ("site", "left forearm")):  # fmt: skip
            put(f"#{name}", value)
        await shows("0.200 mA/cm²")
        await pilot.press("ctrl+n")
        await on(ContactScreen)
        await shows("within the window")
        await pilot.press("ctrl+n")
        await on(SkinBeforeScreen)
        await skin_all_no()
        await pilot.press("ctrl+n")
        await on(ConfirmScreen)
        await pilot.press("y")
        await on(RunScreen)
        await shows("State: DELIVERING")
        await on(EndScreen)
        await shows("Session ended: COMPLETED")
        await skin_all_no()
        await pilot.press("ctrl+s")
        await shows("Skin check after recorded")
        await pilot.press("ctrl+o")
        await shows("Chart PDF written")
        end = app.screen
        assert isinstance(end, EndScreen)
        pdf = end.pdf_path
        await pilot.press("ctrl+q")
    check(app._exception is None, f"the console died: {app._exception!r}")
    check(app.return_code == 0, f"the console ended with return code {app.return_code}")
    check(pdf is not None and pdf.read_bytes().startswith(b"%PDF"), f"no chart PDF at {pdf}")
    with Store(store_path) as store:
        rows = store.list_records(patient="P-CI-1")
        check(len(rows) == 1, f"the store holds {len(rows)} records of the console's patient, not 1")
        (row,) = rows
        check(row["outcome"] == "completed", f"the record's outcome is {row['outcome']!r}")
        check(row["operator"] == "tkim", f"the record names {row['operator']!r}, not the technician logged in")
        signed = store.audit(action="record-sign", record_id=row["id"])
        check([e["actor"] for e in signed] == ["tkim"], f"the record is signed by {signed}, not tkim alone")
        check(abs(row["dose_ma_min"] - 5.0) < 0.1, f"the record's dose is {row['dose_ma_min']} mA·min, not 5")
        check(store.audit(action="skin-check-after", record_id=row["id"]), "no skin check after in the record")
        check(store.verify() is None, f"the store's chain does not verify: {store.verify()}")
    step(f"console: a whole session, record {row['id']} completed with {row['dose_ma_min']:.3f} mA·min")


def console(work: Path) -> None:
    process, address = start_simulator(work)
    step(f"simulator (its own process) at {address}")
    try:
        asyncio.run(console_session(work, address))
    finally:
        stop(process)
    check(process.returncode == 0, f"the simulator exited {process.returncode}: {(work / 'sim.log').read_text()}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--source", type=Path, help="the source tree: check that each of its modules is installed")
    parser.add_argument("--only", action="append", choices=STEPS, help="run only this step (repeatable)")
    args = parser.parse_args()
    step(f"python {sys.executable}, cwd {Path.cwd()}")
    with tempfile.TemporaryDirectory(prefix="ionctl-installed-") as tmp:
        work = Path(tmp)
        try:
            for name, action in (("imports", lambda: import_everything(args.source)), ("help", every_help),
                                 ("demo", lambda: demo(work)), ("clinic", lambda: clinic(work)),
                                 ("clinic-store", lambda: clinic_store(work, args.source)),
                                 ("console", lambda: console(work))):  # fmt: skip
                if args.only and name not in args.only:
                    continue
                step(f"{name} ...")
                action()
        except CheckFailed as exc:
            print(f"installed-check: FAILED ({name}): {exc}", file=sys.stderr, flush=True)
            return 1
        except Exception:
            print(f"installed-check: FAILED ({name}) on an exception:\n{traceback.format_exc()}", file=sys.stderr,
                  flush=True)  # fmt: skip
            return 1
    step("all checks passed")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TEXTUAL_ANIMATIONS", "none")
    sys.exit(main())
