"""The soak: back-to-back `ionctl run` sessions in one host process, each against a fresh simulator process over
its pty with a seeded random fault (or none), all into one record store.

What it shows: no session hangs (each has a wall-clock timeout); the host process's resident memory stays
flat (first vs last session); no session ends in an internal error; every record is closed and the store's
hash chain verifies at the end. The sessions go through `ionctl.cli.run.execute`, the code `ionctl run` runs,
with the record written as the session runs.

    python -m tests.campaign.soak [--sessions 200] [--seed 7] [--json]
"""

from __future__ import annotations

import argparse
import collections
import io
import json
import random
import signal
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType

from ionctl.cli.run import execute, parse
from ionctl.config import load_config
from ionctl.config.verification import verify_store
from ionctl.records import Store
from sim.device import FAULT_KINDS
from tests.campaign.fault_matrix import FAULT_ARGS
from tests.people import TECHNICIAN, make_clinic
from tests.sim.endpoints import running_sim

TIME_SCALE = 100.0
RAMP_S = 5.0
DOSE_MA_MIN = 2.0
PLANNED_S = DOSE_MA_MIN * 60 / 4.0 + RAMP_S  # 4 mA: 30 s hold-equivalent plus half of each ramp
RX = ["--drug", "dexamethasone", "--polarity", "cathode", "--electrode-area", "10", "--current", "4",
      "--dose", f"{DOSE_MA_MIN:g}", "--ramp-up", f"{RAMP_S:g}", "--ramp-down", f"{RAMP_S:g}", "--patient", "P-SOAK",
      "--yes"]  # fmt: skip
LOAD = ["--rp", "5000"]
NO_FAULT = 0.2  # share of sessions without a fault
SESSION_TIMEOUT_S = 90.0  # wall: longer than the longest legitimate session (a lost link's 30 s reconnect window)
LINK_DROP_WALL_S = 3.0


class SessionHung(BaseException):
    """A session ran past its wall-clock timeout (a BaseException, so the session's own handlers pass it on)."""


@dataclass
class SoakReport:
    sessions: int = 0
    wall_s: float = 0.0
    rss_first_kib: int = 0
    rss_last_kib: int = 0
    rss_max_kib: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    exit_codes: dict[str, int] = field(default_factory=dict)
    faults_injected: dict[str, int] = field(default_factory=dict)
    hung: list[str] = field(default_factory=list)
    internal: list[str] = field(default_factory=list)
    not_closed: list[int] = field(default_factory=list)
    records: int = 0
    verify: str | None = None
    longest_session_s: float = 0.0

    @property
    def sessions_per_s(self) -> float:
        return self.sessions / self.wall_s if self.wall_s else 0.0

    @property
    def rss_growth_kib(self) -> int:
        return self.rss_last_kib - self.rss_first_kib

    def figures(self) -> dict[str, object]:
        d = asdict(self)
        d["sessions_per_s"] = round(self.sessions_per_s, 2)
        d["rss_growth_kib"] = self.rss_growth_kib
        return d


def rss_kib() -> int:
    """This process's resident set size (VmRSS), KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def random_fault(rng: random.Random) -> str | None:
    """A fault in `--fault` syntax at a random device time within the session, or None."""
    if rng.random() < NO_FAULT:
        return None
    kind = rng.choice(FAULT_KINDS)
    at_s = round(rng.uniform(0.0, PLANNED_S), 2)
    duration = f":{LINK_DROP_WALL_S * TIME_SCALE:g}" if kind == "link-drop" else ""
    return f"{FAULT_ARGS[kind]}@{at_s:g}{duration}"


def _hung(signum: int, frame: FrameType | None) -> None:
    raise SessionHung


def run_soak(sessions: int = 200, seed: int = 7, progress: bool = False) -> SoakReport:
    rng = random.Random(seed)
    report = SoakReport()
    outcomes: collections.Counter[str] = collections.Counter()
    exits: collections.Counter[str] = collections.Counter()
    injected: collections.Counter[str] = collections.Counter()
    previous = signal.signal(signal.SIGALRM, _hung)
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="soak-") as tmp, ExitStack() as stack:
            clinic = make_clinic(Path(tmp) / "clinic")  # each session runs as its technician, who logs in
            run_as = ["--config", str(clinic.config), "--operator", TECHNICIAN, "--password-stdin"]
            store = stack.enter_context(Store(clinic.store))
            for i in range(sessions):
                fault = random_fault(rng)
                injected[fault.partition("@")[0].partition("=")[0] if fault else "none"] += 1
                link, label = Path(tmp) / "dev", f"session {i + 1} ({fault or 'no fault'})"
                sim = ["--serial-link", str(link), "--time-scale", f"{TIME_SCALE:g}", "--seed", str(seed + i), *LOAD]
                session_started = time.monotonic()
                with running_sim(*sim, *(["--fault", fault] if fault else [])):
                    args = parse(
                        ["--site", "left forearm", "--device", str(link), *RX, "--db", str(store.path), *run_as]
                    )
                    signal.setitimer(signal.ITIMER_REAL, SESSION_TIMEOUT_S)
                    try:
                        result = execute(args, err=io.StringIO(), stdin=io.StringIO(clinic.stdin(TECHNICIAN)),
                                         store=store, skin_checks=False)  # fmt: skip
                    except SessionHung:
                        report.hung.append(label)
                        continue
                    finally:
                        signal.setitimer(signal.ITIMER_REAL, 0)
                report.longest_session_s = max(report.longest_session_s, time.monotonic() - session_started)
                r = result.result
                outcomes[f"{r.outcome}/{r.fault}" if r.fault else r.outcome] += 1
                exits[str(result.exit_code)] += 1
                if r.fault == "internal":
                    report.internal.append(f"{label}: {r.message}")
                if result.record_id is None or store.get(result.record_id).fields["outcome"] is None:
                    report.not_closed.append(i + 1)
                kib = rss_kib()
                report.rss_first_kib = report.rss_first_kib or kib
                report.rss_last_kib = kib
                report.rss_max_kib = max(report.rss_max_kib, kib)
                report.sessions += 1
                if progress:
                    print(f"{label}: {r.outcome} {r.fault or ''} rss {kib} KiB", file=sys.stderr)
            report.records = len(store.list_records())
            report.not_closed += [-record_id for record_id in store.open_ids()]  # negative: open in the store
            broken = store.verify()  # the chain; then every signature against the clinic's administrators
            checked = verify_store(store, load_config(clinic.config))
            report.verify = str(broken) if broken is not None else None if checked.ok else "; ".join(checked.problems)
    finally:
        signal.signal(signal.SIGALRM, previous)
    report.wall_s = time.monotonic() - started
    report.outcomes = dict(sorted(outcomes.items()))
    report.exit_codes = dict(sorted(exits.items()))
    report.faults_injected = dict(sorted(injected.items()))
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.campaign.soak", description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.add_argument("--progress", action="store_true", help="one line per session on stderr")
    args = parser.parse_args(argv)
    report = run_soak(args.sessions, args.seed, progress=args.progress)
    if args.json:
        print(json.dumps(report.figures(), indent=1))
    else:
        print(f"sessions: {report.sessions} in {report.wall_s:.1f} s wall ({report.sessions_per_s:.2f} sessions/s); "
              f"longest {report.longest_session_s:.1f} s")  # fmt: skip
        print(f"host RSS: first {report.rss_first_kib / 1024:.1f} MiB, last {report.rss_last_kib / 1024:.1f} MiB, "
              f"max {report.rss_max_kib / 1024:.1f} MiB (growth {report.rss_growth_kib / 1024:+.1f} MiB)")  # fmt: skip
        print(f"faults injected: {report.faults_injected}")
        print(f"outcomes: {report.outcomes}")
        print(f"exit codes: {report.exit_codes}")
        print(f"records: {report.records}, not closed: {report.not_closed or 'none'}, verify: {report.verify or 'ok'}")
        print(f"hung: {report.hung or 'none'}; internal errors: {report.internal or 'none'}")
    return 0 if not (report.hung or report.internal or report.not_closed or report.verify) else 1


if __name__ == "__main__":
    sys.exit(main())
