"""Build one session record of each kind on the simulator and render page 1 of its chart PDF to PNG.

    python docs/examples/make_examples.py [OUT_DIR]     # default: docs/examples/

completed, faulted (an electrode lifts 4 minutes in) and refused (50 mA, as the exosome report gives it) run
through `ionctl run`'s own code (`ionctl.cli.run.treat`) on the simulated device inside ionctl (`sim:`), as the
demo's technician, with the chart details a request carries (treatment site, concentration, volume, prescriber,
electrode product) and skin checks before and after; demo is what `ionctl demo` itself writes. Each record is a
simulator's, so each page carries the "SIMULATED DEVICE" watermark. The clinic's name is an example's.
"""

from __future__ import annotations

import io
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from ionctl.cli import run
from ionctl.cli.demo import demo_people, demo_request
from ionctl.records import Store, timefmt
from ionctl.records.clinical import ClinicalDetails, TreatmentSite
from ionctl.records.pdf import build_pages
from ionctl.records.skin import AFTER, BEFORE, SKIN_CHECK_AFTER, SKIN_CHECK_BEFORE, Addendum, SkinCheck

CLINIC = "Riverside Dermatology Clinic (example)"
ZONE = "Europe/Berlin"
DETAILS = {
    "completed": ClinicalDetails(TreatmentSite("hand", "left"), "4 mg/mL", 1.5, "L2231", "Dr. A. Moreau",
                                 "patch-10cm2", "drug patch", simulated=True),
    "faulted": ClinicalDetails(TreatmentSite("hand", "right"), "4 mg/mL", 1.5, "L2231", "Dr. A. Moreau",
                               "patch-10cm2", "drug patch", simulated=True),
    "refused": ClinicalDetails(TreatmentSite("hand", "both"), "exosome suspension", 1.5, None, "Dr. A. Moreau",
                               "patch-20cm2", "drug patch", simulated=True),
}  # fmt: skip
RUNS = {  # preset, device address
    "completed": ("dexamethasone", "sim:?load=normal&seed=1"),
    "faulted": ("dexamethasone", "sim:?load=normal&seed=2&fault=electrode-lift@240"),
    "refused": ("asc-exosome-hand-eczema", "sim:?load=normal&seed=3"),
}
CLEAR = dict.fromkeys(("erythema", "blistering", "pain", "itching", "other"), "no")


class ChartStore(Store):
    """A store that gives each record it opens the chart details of the session being run (what the request
    carries when the front end asks for them)."""

    details: ClinicalDetails | None = None

    def open_record(self, **kwargs: Any) -> int:  # type: ignore[override]
        if self.details is not None and not kwargs.get("clinical"):
            kwargs["clinical"] = self.details.to_dict()
        return super().open_record(**kwargs)


def run_sessions(db: Path) -> dict[str, int]:
    ids = {}
    with ChartStore(db) as store:
        config, operator = demo_people(store)
        for kind, (preset, device) in RUNS.items():
            store.details = DETAILS[kind]
            if kind != "refused":
                pending = store.pending_skin_checks("DEMO")
                for row in pending:
                    store.append_addendum(int(row["id"]), operator.name,
                                          Addendum(SKIN_CHECK_AFTER, SkinCheck.of(AFTER, CLEAR)))  # fmt: skip
            report = run.treat(demo_request(preset, device, str(db)), err=io.StringIO(), stdin=sys.stdin,
                               store=store, config=config, yes=True, skin_checks=False, operator=operator)  # fmt: skip
            assert report.record_id is not None, kind
            ids[kind] = report.record_id
            if kind == "refused":
                continue
            store.append_addendum(
                report.record_id, operator.name, Addendum(SKIN_CHECK_BEFORE, SkinCheck.of(BEFORE, CLEAR))
            )
            reaction = (
                "mild erythema under the cathode, 2 cm across, faded within 20 minutes" if kind == "faulted" else ""
            )
            after = {**CLEAR, "erythema": "yes"} if reaction else CLEAR
            store.append_addendum(
                report.record_id,
                operator.name,
                Addendum(SKIN_CHECK_AFTER, SkinCheck.of(AFTER, after, reaction=reaction)),
            )
    return ids


def render(db: Path, record_id: int, png: Path) -> None:
    with Store(db, create=False) as store:
        pages = build_pages(store.get(record_id), head=store.chain_head(), clinic_name=CLINIC)
    pages[0].savefig(png, dpi=100)
    print(f"{png} (page 1 of {len(pages)})")


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent
    timefmt.use_zone(ZONE)
    with tempfile.TemporaryDirectory(prefix="ionctl-examples-") as tmp:
        db = Path(tmp) / "records.sqlite3"
        for kind, record_id in run_sessions(db).items():
            render(db, record_id, out / f"{kind}.png")
        demo = Path(tmp) / "demo"
        subprocess.run([sys.executable, "-m", "ionctl", "demo", "--out", str(demo)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        render(demo / "records.sqlite3", 1, out / "demo.png")


if __name__ == "__main__":
    main()
