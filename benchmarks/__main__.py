"""Run every benchmark and print one JSON document: {"machine": ..., "figures": [...]}."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys

from benchmarks import codec, drivers, faults, records, session, sim

SUITES = {
    "codec": codec.run,
    "drivers": drivers.run,
    "faults": faults.run,
    "records": records.run,
    "session": session.run,
    "sim": sim.run,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes: checks the benchmarks run, figures meaningless"
    )
    parser.add_argument("--only", choices=sorted(SUITES), action="append", help="run only this suite (repeatable)")
    parser.add_argument("-o", "--output", help="also write the JSON to this file")
    args = parser.parse_args(argv)
    figures = []
    for name in args.only or sorted(SUITES):
        print(f"running {name} ...", file=sys.stderr)
        figures += SUITES[name](quick=args.quick)
    document = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "platform": platform.platform(),
            "processor": platform.machine(),
            "cpus": os.cpu_count(),
        },
        "quick": args.quick,
        "figures": figures,
    }
    text = json.dumps(document, indent=1)
    print(text)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as out:
            out.write(text + "\n")
    failed = [f["name"] for f in figures if f.get("meets_target") is False]
    if failed and not args.quick:
        print(f"targets missed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
