"""Gaps the campaign found, each pinned by a test that makes it happen (docs/SAFETY.md, "Known gaps").

A test here is marked `xfail(strict=True)` while its gap is open: it fails the run the day the gap is
closed, so the marker (and the entry in SAFETY.md) go with it. Closed gaps keep their test as a regression
test without the marker."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ionctl.core.session import Session
from ionctl.drivers.base import Polarity, Telemetry
from ionctl.safety import Prescription, SiteLimits
from sim.device import FaultSpec
from sim.plant import LOAD_PRESETS
from tests.session.inprocess import InProcessSource, simulated

LOAD = replace(LOAD_PRESETS["normal"], rp_rest_ohm=5000.0, rp_min_ohm=min(LOAD_PRESETS["normal"].rp_min_ohm, 5000.0))
RX = Prescription(drug="dexamethasone", polarity=Polarity.CATHODE, electrode_area_cm2=10.0, current_ma=4.0,
                  dose_ma_min=4.0, ramp_up_s=5.0, ramp_down_s=5.0, patient_id="P-GAP",
                  operator_id="OP-GAP")  # fmt: skip


def run_with_batches(batch_s: float) -> tuple[float, float, list[float]]:
    """A short during the hold, on a host that reads its telemetry `batch_s` device seconds at a time once the
    hold is under way (as one does that fell behind: a command waiting out its retransmissions, a slow disk).
    (host dose, true dose, device times of the samples the session handed to `on_sample`)."""
    source, truth = simulated(LOAD, faults=[FaultSpec.parse("short@30")])
    seen: list[float] = []

    def lag(s: InProcessSource) -> None:
        if batch_s and (s.since_energised_s or 0.0) > 20:
            s.advance(batch_s)

    def sample(_: Session, s: Telemetry) -> None:
        seen.append(s.t_s)

    source.before_read = lag
    result = Session(source, RX, SiteLimits.load(None), on_sample=sample).run()
    assert (result.outcome, result.fault) == ("fault", "low_impedance")
    return result.dose_ma_min, truth.dose_ma_min, seen


def test_a_host_reading_every_sample_as_it_comes_settles_the_dose_of_the_trace() -> None:
    host, true, seen = run_with_batches(0.0)
    assert host == pytest.approx(true, rel=0.01)
    assert max(b - a for a, b in zip(seen, seen[1:], strict=False)) < 0.5


def test_samples_after_the_one_that_ends_the_session_are_counted_and_recorded() -> None:
    # Closed: `_deliver` dropped the rest of a batch after the sample that ended the session (neither the dose
    # meter nor the record saw them); a host reading 10 s batches over-counted the dose by 8 %.
    host, true, seen = run_with_batches(10.0)
    assert max(b - a for a, b in zip(seen, seen[1:], strict=False)) < 0.5  # no sample skipped
    assert host == pytest.approx(true, rel=0.01)
