"""Run every benchmark and print one JSON document: {"date", "machine", "figures": [...], ...}.

A full run (every suite, not --quick) also writes the document to docs/performance.json and its table to
docs/PERFORMANCE.md; --no-write writes nothing. A quick or partial run writes only where -o/--markdown say,
so it never replaces the full run's figures in docs/.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import sys
import time
from pathlib import Path

from benchmarks import clinic, codec, drivers, faults, host_cpu, records, report, session, sim, startup, visit

SUITES = {
    "clinic": clinic.run,
    "codec": codec.run,
    "drivers": drivers.run,
    "faults": faults.run,
    "host_cpu": host_cpu.run,
    "records": records.run,
    "session": session.run,
    "sim": sim.run,
    "startup": startup.run,
    "visit": visit.run,
}
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_JSON = ROOT / "docs" / "performance.json"
DEFAULT_MARKDOWN = ROOT / "docs" / "PERFORMANCE.md"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes: checks the benchmarks run, figures meaningless"
    )
    parser.add_argument("--only", choices=sorted(SUITES), action="append", help="run only this suite (repeatable)")
    parser.add_argument("-o", "--output", type=Path, help=f"write the JSON here (full run: {DEFAULT_JSON.name})")
    parser.add_argument("--markdown", type=Path, help=f"write the table here (full run: {DEFAULT_MARKDOWN.name})")
    parser.add_argument("--no-write", action="store_true", help="write no file, whatever else is given")
    args = parser.parse_args(argv)
    full = not args.quick and not args.only
    json_path = args.output or (DEFAULT_JSON if full else None)
    markdown_path = args.markdown or (DEFAULT_MARKDOWN if full else None)
    t0 = time.perf_counter()
    figures = []
    for name in args.only or sorted(SUITES):
        print(f"running {name} ...", file=sys.stderr)
        figures += SUITES[name](quick=args.quick)
    document = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": shlex.join(["python", "-m", "benchmarks", *argv]),
        "machine": report.machine(),
        "quick": args.quick,
        "wall_s": round(time.perf_counter() - t0, 1),
        "figures": figures,
    }
    print(json.dumps(document, indent=1))
    if not args.no_write:
        for path in report.write(document, json_path=json_path, markdown_path=markdown_path):
            print(f"wrote {path}", file=sys.stderr)
    unmeasured = [f["name"] for f in figures if "target" in f and f.get("meets_target") is None]
    if unmeasured:
        print(f"not measured: {', '.join(unmeasured)} (see each figure's not_measured)", file=sys.stderr)
    failed = [f["name"] for f in figures if f.get("meets_target") is False]
    if failed and not args.quick:
        print(f"targets missed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
